package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the master (the user's side) and
// the slave (the program's terminal).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

func echoOn(t *testing.T, fd int) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// The passphrase prompt reads a line without echo, and Ctrl-C at the
// prompt interrupts it at once and turns echo back on (a second Ctrl-C,
// which kills the process, would leave the terminal without echo).
func TestReadPasswordInterrupted(t *testing.T) {
	m, s := openPTY(t)
	fd := int(s.Fd())
	if !echoOn(t, fd) {
		t.Fatal("a new terminal without echo")
	}
	type res struct {
		b   []byte
		err error
	}
	read := func(ctx context.Context) chan res {
		ch := make(chan res, 1)
		go func() { b, err := readPassword(ctx, fd); ch <- res{b, err} }()
		for deadline := time.Now().Add(10 * time.Second); echoOn(t, fd); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the prompt never turned echo off")
			}
		}
		return ch
	}

	ch := read(context.Background())
	m.Write([]byte("s3cret words\n"))
	if r := <-ch; r.err != nil || string(r.b) != "s3cret words" {
		t.Fatalf("read %q, %v", r.b, r.err)
	}
	if !echoOn(t, fd) {
		t.Fatal("echo off after the prompt")
	}

	ctx, cancel := context.WithCancel(context.Background())
	ch = read(ctx)
	cancel() // the first Ctrl-C
	select {
	case r := <-ch:
		if r.err != context.Canceled {
			t.Errorf("interrupted prompt: %q, %v; want context.Canceled", r.b, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt did not return when interrupted")
	}
	if !echoOn(t, fd) {
		t.Error("echo left off after an interrupted prompt")
	}
	m.Write([]byte("\n")) // let the abandoned read finish
}
