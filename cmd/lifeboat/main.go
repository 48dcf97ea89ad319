// Command lifeboat is the recovery vault's single binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"golang.org/x/term"

	"github.com/lifeboat-vault/lifeboat/internal/cli"
)

func main() {
	// A lower GC target keeps peak memory low during backups and restores
	// (measured faster too); GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// The first Ctrl-C (or SIGTERM) stops cleanly: a backup keeps what it
	// stored, a restore removes what it began, serve drains. A second one
	// quits at once: the default action is back before anything sees the
	// cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		cancel()
	}()
	// LIFEBOAT_CPUPROFILE=FILE writes a CPU profile (for performance work).
	if p := os.Getenv("LIFEBOAT_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	env := cli.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		IsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		env.ReadPassword = func() ([]byte, error) { return readPassword(ctx, fd) }
	}
	code := cli.Main(ctx, os.Args[1:], env)
	signal.Stop(sigs)
	pprof.StopCPUProfile()
	os.Exit(code)
}

// readPassword reads a line from the terminal without echo. Ctrl-C gives
// the terminal back as it was (echo on) and interrupts, so that neither a
// prompt ignores the first Ctrl-C nor a second one leaves echo off.
func readPassword(ctx context.Context, fd int) ([]byte, error) {
	st, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		ch <- line{b, err}
	}()
	select {
	case l := <-ch:
		return l.b, l.err
	case <-ctx.Done():
		_ = term.Restore(fd, st)
		return nil, ctx.Err()
	}
}
