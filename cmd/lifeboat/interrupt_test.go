package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// Ctrl-C during a first backup, a real SIGINT to the process (stopped just
// after it stored its first pack, then resumed): exit 130, a line saying
// what is kept, and the next backup stores only the rest.
func TestInterruptedBackupResumes(t *testing.T) {
	interruptedBackupResumes(t, passEnv(), filepath.Join(t.TempDir(), "vault"))
}

// The same on the real S3 server (packs are whole puts there, not streams).
func TestInterruptedBackupResumesOnS3(t *testing.T) {
	env := testenv.Require(t, "LIFEBOAT_TEST_S3_ENDPOINT", "LIFEBOAT_TEST_S3_ACCESS", "LIFEBOAT_TEST_S3_SECRET", "LIFEBOAT_TEST_S3_BUCKET")
	e := append(passEnv(), "AWS_ENDPOINT_URL=http://"+env["LIFEBOAT_TEST_S3_ENDPOINT"],
		"AWS_ACCESS_KEY_ID="+env["LIFEBOAT_TEST_S3_ACCESS"], "AWS_SECRET_ACCESS_KEY="+env["LIFEBOAT_TEST_S3_SECRET"])
	interruptedBackupResumes(t, e, fmt.Sprintf("s3://%s/resume-%d", env["LIFEBOAT_TEST_S3_BUCKET"], time.Now().UnixNano()))
}

// interruptStopped waits for the process to stop itself at its
// LIFEBOAT_TEST_STOP stage, sends it Ctrl-C, resumes it, and expects exit
// 130 (interrupted).
func (p *gcProc) interruptStopped(t *testing.T) {
	t.Helper()
	if !p.waitStopped(t) {
		t.Fatalf("%v did not stop at its stage: %s", p.cmd.Args, p.errb.String())
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Process.Signal(syscall.SIGCONT)
	if code := p.wait(t); code != 130 {
		t.Fatalf("%v interrupted: exit %d, want 130: %s", p.cmd.Args, code, p.errb.String())
	}
}

func interruptedBackupResumes(t *testing.T, env []string, vlt string) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	data := make([]byte, 40<<20) // incompressible: three packs of 16 MiB
	rand.NewChaCha8([32]byte{9}).Read(data)
	if err := os.WriteFile(filepath.Join(src, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "vault", "init", "--vault", vlt)
	b := gcStart(t, append(env, "LIFEBOAT_TEST_STOP=backup-pack-stored"), "vault", "backup", "--vault", vlt, "-q", src)
	b.interruptStopped(t)
	if msg := b.errb.String(); !strings.Contains(msg, "interrupted") || !strings.Contains(msg, "is kept for the next backup to reuse") || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("interrupted backup's message, want one line saying what is kept: %q", msg)
	}
	if r := lifeboat(t, env, "vault", "points", "--vault", vlt, "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("the interrupted backup left a point: %q", r.stdout)
	}

	r := mustRun(t, env, "vault", "backup", "--vault", vlt, "-q", "-o", "json", src)
	var p struct {
		ID    string `json:"id"`
		Stats struct {
			BytesNew int64 `json:"bytes_new"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("backup -o json: %v: %s", err, r.stdout)
	}
	if p.Stats.BytesNew > int64(len(data))-15<<20 {
		t.Errorf("the backup after the interruption stored %d of %d bytes: the stored pack was not reused", p.Stats.BytesNew, len(data))
	}
	to := filepath.Join(dir, "restored")
	mustRun(t, env, "vault", "restore", "--vault", vlt, p.ID, "--to", to, "-q")
	got, err := os.ReadFile(filepath.Join(to, "src", "big.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored file differs (%v)", err)
	}
	mustRun(t, env, "vault", "check", "--vault", vlt, "--read-data")
}

// A second Ctrl-C quits at once: here while the first one's clean stop is
// under way (the backup stops itself just before keeping what it stored).
// The process dies of the signal, and the vault stays sound.
func TestSecondInterruptQuits(t *testing.T) {
	dir := t.TempDir()
	src, vlt := filepath.Join(dir, "src"), filepath.Join(dir, "vault")
	os.MkdirAll(src, 0o755)
	data := make([]byte, 40<<20)
	rand.NewChaCha8([32]byte{10}).Read(data)
	if err := os.WriteFile(filepath.Join(src, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	env := passEnv()
	mustRun(t, env, "vault", "init", "--vault", vlt)
	b := gcStart(t, append(env, "LIFEBOAT_TEST_STOP=backup-abort"), "vault", "backup", "--vault", vlt, "-q", src)
	// The first Ctrl-C once the backup runs (its write session exists: its
	// signal handling is long in place); it stops itself at backup-abort.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(vlt, "locks", "session-*")); len(m) > 0 {
			break
		}
		if b.exited() || time.Now().After(deadline) {
			t.Fatalf("the backup never started its write session: %s", b.errb.String())
		}
	}
	b.cmd.Process.Signal(syscall.SIGINT)
	if !b.waitStopped(t) {
		t.Fatalf("backup did not stop at backup-abort after Ctrl-C: %s", b.errb.String())
	}
	b.cmd.Process.Signal(syscall.SIGINT) // the second, during the clean stop
	b.cmd.Process.Signal(syscall.SIGCONT)
	b.wait(t)
	if ws, ok := b.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Fatalf("after a second Ctrl-C the backup went on: %v, stderr %q", b.cmd.ProcessState, b.errb.String())
	}
	mustRun(t, env, "vault", "check", "--vault", vlt, "--read-data")
	mustRun(t, env, "vault", "backup", "--vault", vlt, "-q", src)
}

// Ctrl-C during a restore (a real SIGINT, the process stopped just after
// its first whole file): exit 130, one line naming the target that holds
// part of the point and how to finish; every file left there is whole and
// exact (unfinished ones were removed); restore --resume into the same
// target keeps them and finishes.
func TestInterruptedRestore(t *testing.T) {
	dir := t.TempDir()
	src, vlt := filepath.Join(dir, "src"), filepath.Join(dir, "vault")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	r := rand.NewChaCha8([32]byte{11})
	want := map[string][]byte{"small.txt": []byte("a small file\n")}
	for _, name := range []string{"a.bin", "b.bin", "sub/c.bin"} {
		want[name] = make([]byte, 12<<20)
		r.Read(want[name])
	}
	for name, b := range want {
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := passEnv()
	mustRun(t, env, "vault", "init", "--vault", vlt)
	mustRun(t, env, "vault", "backup", "--vault", vlt, "-q", src)

	to := filepath.Join(dir, "restored")
	p := gcStart(t, append(env, "LIFEBOAT_TEST_STOP=restore-file-restored"), "vault", "restore", "--vault", vlt, "latest", "--to", to, "-q")
	p.interruptStopped(t)
	msg := strings.TrimSpace(p.errb.String())
	if !strings.HasPrefix(msg, "lifeboat: interrupted") || !strings.Contains(msg, to+" holds part of the point") || strings.Contains(msg, "\n") {
		t.Errorf("interrupted restore's message, want one line naming %s: %q", to, msg)
	}
	found := 0
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(to, "src", name))
		switch {
		case os.IsNotExist(err):
		case err != nil || !bytes.Equal(got, b):
			t.Errorf("%s left by the interrupted restore is not whole (%d of %d bytes, %v)", name, len(got), len(b), err)
		default:
			found++
		}
	}
	if found == 0 || found == len(want) {
		t.Errorf("the interrupted restore left %d of %d files; want some, not all", found, len(want))
	}

	if !strings.Contains(msg, "--resume") {
		t.Errorf("the message does not say how to finish the restore: %q", msg)
	}

	// Finished with --resume, into the same place: what was whole is kept.
	if r := lifeboat(t, env, "vault", "restore", "--vault", vlt, "latest", "--to", to, "-q"); r.code != 8 || !strings.Contains(r.stderr, "--resume") {
		t.Errorf("restore again into the partial target without --resume: exit %d %q; want refused (8), naming --resume", r.code, r.stderr)
	}
	rr := mustRun(t, env, "vault", "restore", "--vault", vlt, "latest", "--to", to, "-q", "--resume")
	if !strings.Contains(rr.stdout, fmt.Sprintf("(%d files,", found)) || !strings.Contains(rr.stdout, "found whole and kept") {
		t.Errorf("resumed restore's summary does not say the %d files found whole were kept: %q", found, rr.stdout)
	}
	for name, b := range want {
		if got, err := os.ReadFile(filepath.Join(to, "src", name)); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s after the resumed restore differs (%v)", name, err)
		}
	}
}
