package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process-level garbage-collection tests: real backups and collectors,
// paused with SIGSTOP (at polled moments, or at exact ones: the engine stops
// itself when LIFEBOAT_TEST_STOP names a stage) and resumed with SIGCONT.

const gcGrace = time.Second

type gcProc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	errb bytes.Buffer
	done chan struct{}
}

func gcStart(t *testing.T, env []string, args ...string) *gcProc {
	t.Helper()
	p := &gcProc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGCONT); p.cmd.Process.Kill(); <-p.done })
	return p
}

func (p *gcProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *gcProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%v did not finish", p.cmd.Args)
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitStopped waits until the process is stopped (state T) or has exited.
func (p *gcProc) waitStopped(t *testing.T) bool {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if p.exited() {
			return false
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err == nil {
			if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
				return true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	t.Fatalf("%v never stopped: %q %v; stderr %s", p.cmd.Args, b, err, p.errb.String())
	return false
}

type gcReportOut struct {
	PointsPurged   []string `json:"points_purged"`
	PacksCondemned int      `json:"packs_condemned"`
	PacksDeleted   int      `json:"packs_deleted"`
	Unreadable     int      `json:"unreadable"`
}

func gcRun(t *testing.T, vlt string, extra ...string) gcReportOut {
	t.Helper()
	args := append([]string{"vault", "gc", "--vault", vlt, "--grace", gcGrace.String(), "--soft-delete-retention", "0", "-o", "json"}, extra...)
	r := mustRun(t, passEnv(), args...)
	var rep gcReportOut
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("gc json: %v\n%s", err, r.stdout)
	}
	return rep
}

func gcPointIDs(t *testing.T, vlt string) []string {
	t.Helper()
	r := mustRun(t, passEnv(), "vault", "points", "--vault", vlt, "-o", "json")
	var pts []struct{ ID string }
	if err := json.Unmarshal([]byte(r.stdout), &pts); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range pts {
		ids = append(ids, p.ID)
	}
	return ids
}

func gcForgetAll(t *testing.T, vlt string) {
	t.Helper()
	for _, id := range gcPointIDs(t, vlt) {
		mustRun(t, passEnv(), "vault", "forget", "--vault", vlt, id, "--reason", "gc test")
	}
}

func gcRestoreState(t *testing.T, vlt, id string, want map[string]string) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "r")
	mustRun(t, passEnv(), "vault", "restore", "--vault", vlt, id, "--to", dst, "--path", "app")
	got := dirState(t, dst)
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("point %s: %s: want %q got %q", id, k, v, got[k])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("point %s: %d entries, want %d", id, len(got), len(want))
	}
}

func gcCheck(t *testing.T, vlt string) {
	t.Helper()
	if r := lifeboat(t, passEnv(), "vault", "check", "--vault", vlt, "--read-data"); r.code != 0 {
		t.Fatalf("check: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func gcBackupID(t *testing.T, stdout string) string {
	t.Helper()
	var p struct{ ID string }
	if err := json.Unmarshal([]byte(stdout), &p); err != nil || p.ID == "" {
		t.Fatalf("backup reported success without a point: %q", stdout)
	}
	return p.ID
}

func gcChangeFiles(t *testing.T, src string, r *rand.Rand, tag string, n int) {
	t.Helper()
	for j := range n {
		b := make([]byte, 256<<10+r.IntN(1<<20))
		for k := range b {
			b[k] = byte(r.Uint32())
		}
		os.WriteFile(filepath.Join(src, fmt.Sprintf("d%d", j%7), fmt.Sprintf("new-%s-%d.bin", tag, j)), b, 0o644)
	}
}

// TestGCBackupPausedPastGrace pauses a backup after its packs and index are
// durable and before its manifest (exactly, then at random moments), lets
// collections purge the parent it deduplicated against and delete the packs
// past the grace period, then resumes it: it must fail and be retryable, or
// succeed with a point that restores exactly — never succeed with data missing.
func TestGCBackupPausedPastGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	src, vlt, env, r := newTreeVault(t, 11, 12, 80)
	mustRun(t, env, "vault", "backup", "--vault", vlt, src)

	randomPauses := 0
	for i := range 5 {
		exact := i == 0
		gcForgetAll(t, vlt) // the backup below still uses them as parent
		gcChangeFiles(t, src, r, fmt.Sprint(i), 3+7*min(i, 1))
		state := dirState(t, src)
		benv := env
		if exact {
			benv = append(benv, "LIFEBOAT_TEST_STOP=backup-before-commit")
		}
		b := gcStart(t, benv, "vault", "backup", "--vault", vlt, "-q", "-o", "json", src)
		paused := false
		if exact {
			paused = b.waitStopped(t)
			if !paused {
				t.Fatalf("backup did not stop at the hook: %s", b.errb.String())
			}
		} else {
			time.Sleep(time.Duration(50+r.IntN(300)) * time.Millisecond)
			if !b.exited() {
				b.cmd.Process.Signal(syscall.SIGSTOP)
				if paused = b.waitStopped(t); paused {
					randomPauses++
				}
			}
		}
		if paused {
			time.Sleep(gcGrace + 100*time.Millisecond)
			rep := gcRun(t, vlt) // purges the parents, condemns their packs (and the paused backup's)
			if len(rep.PointsPurged) == 0 || rep.PacksCondemned == 0 {
				t.Fatalf("round %d: first gc: %+v", i, rep)
			}
			time.Sleep(gcGrace + 100*time.Millisecond)
			if rep := gcRun(t, vlt); rep.PacksDeleted == 0 {
				t.Fatalf("round %d: second gc deleted nothing: %+v", i, rep)
			}
			b.cmd.Process.Signal(syscall.SIGCONT)
		}
		code := b.wait(t)
		t.Logf("round %d: paused %v, exit %d", i, paused, code)
		switch {
		case code == 0:
			if exact {
				t.Fatalf("a backup whose parent's packs were deleted under it succeeded")
			}
			gcRestoreState(t, vlt, gcBackupID(t, b.out.String()), state)
		case code == 6 && strings.Contains(b.errb.String(), "condemned"):
			// Retryable, and the retry works.
			rr := mustRun(t, env, "vault", "backup", "--vault", vlt, "-q", "-o", "json", src)
			gcRestoreState(t, vlt, gcBackupID(t, rr.stdout), state)
		default:
			t.Fatalf("round %d: backup exit %d: %s", i, code, b.errb.String())
		}
		gcCheck(t, vlt)
	}
	if randomPauses == 0 {
		t.Errorf("no backup was paused at a random moment: the test proved less than it should")
	}
}

// TestGCBackupCopiesOutOfCondemnedPacks pauses a backup after its packs and
// index are durable and before its manifest, lets a collection purge the
// parent it deduplicated against and condemn that parent's packs (not yet
// delete them), then resumes it: it copies what it needs out of them and
// succeeds, and once later collections have deleted them, its point still
// restores exactly and check finds nothing wrong.
func TestGCBackupCopiesOutOfCondemnedPacks(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	src, vlt, env, r := newTreeVault(t, 13, 14, 60)
	mustRun(t, env, "vault", "backup", "--vault", vlt, src)
	gcForgetAll(t, vlt)
	gcChangeFiles(t, src, r, "x", 3)
	state := dirState(t, src)
	b := gcStart(t, append(env, "LIFEBOAT_TEST_STOP=backup-before-commit"), "vault", "backup", "--vault", vlt, "-q", "-o", "json", src)
	if !b.waitStopped(t) {
		t.Fatalf("backup did not stop at the hook: %s", b.errb.String())
	}
	time.Sleep(gcGrace + 100*time.Millisecond)
	if rep := gcRun(t, vlt); len(rep.PointsPurged) == 0 || rep.PacksCondemned == 0 || rep.PacksDeleted != 0 {
		t.Fatalf("gc while the backup is paused: %+v", rep)
	}
	b.cmd.Process.Signal(syscall.SIGCONT)
	if code := b.wait(t); code != 0 {
		t.Fatalf("backup exit %d: %s", code, b.errb.String())
	}
	id := gcBackupID(t, b.out.String())
	deleted := 0
	for range 2 {
		time.Sleep(gcGrace + 100*time.Millisecond)
		deleted += gcRun(t, vlt).PacksDeleted
	}
	if deleted == 0 {
		t.Fatalf("the condemned packs were never deleted: the point still needs them")
	}
	gcCheck(t, vlt)
	gcRestoreState(t, vlt, id, state)
}

// TestGCCollectorPaused pauses a collector at exact moments while a backup
// runs and commits, then resumes it.
func TestGCCollectorPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	env := passEnv()
	for _, stage := range []string{"gc-before-condemn", "gc-before-delete"} {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "app")
			writeTree(t, src, rand.New(rand.NewPCG(21, 22)), 60)
			state := dirState(t, src)
			vlt := filepath.Join(dir, "vault")
			mustRun(t, env, "vault", "init", "--vault", vlt)
			mustRun(t, env, "vault", "backup", "--vault", vlt, src)
			gcForgetAll(t, vlt)
			time.Sleep(gcGrace + 100*time.Millisecond)
			if stage == "gc-before-delete" {
				// Condemn first, so that the paused run is the deleting one.
				if rep := gcRun(t, vlt); rep.PacksCondemned == 0 {
					t.Fatalf("setup gc: %+v", rep)
				}
				time.Sleep(gcGrace + 100*time.Millisecond)
			}
			c := gcStart(t, append(env, "LIFEBOAT_TEST_STOP="+stage), "vault", "gc", "--vault", vlt, "--grace", gcGrace.String(), "--soft-delete-retention", "0", "-o", "json")
			if !c.waitStopped(t) {
				t.Fatalf("collector did not stop: %s", c.errb.String())
			}
			// While the collector sleeps, a backup of the same data commits:
			// before-condemn, it dedups against packs about to be condemned;
			// before-delete, those packs are condemned and it stores anew.
			rr := mustRun(t, env, "vault", "backup", "--vault", vlt, "-q", "-o", "json", src)
			id := gcBackupID(t, rr.stdout)
			c.cmd.Process.Signal(syscall.SIGCONT)
			if code := c.wait(t); code != 0 {
				t.Fatalf("resumed collector: exit %d: %s", code, c.errb.String())
			}
			var rep gcReportOut
			json.Unmarshal(c.out.Bytes(), &rep)
			t.Logf("resumed collector: %+v", rep)
			// The next collections must see the new point: delete nothing
			// it needs (condemned packs it uses are kept, still condemned).
			rep = gcRun(t, vlt)
			time.Sleep(gcGrace + 100*time.Millisecond)
			gcRun(t, vlt)
			gcCheck(t, vlt)
			gcRestoreState(t, vlt, id, state)
		})
	}
}

// TestGCCommands covers the commands' outputs and exit codes.
func TestGCCommands(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app")
	writeTree(t, src, rand.New(rand.NewPCG(31, 32)), 10)
	vlt := filepath.Join(dir, "vault")
	env := passEnv()
	mustRun(t, env, "vault", "init", "--vault", vlt)
	id := gcBackupID(t, mustRun(t, env, "vault", "backup", "--vault", vlt, "-o", "json", src).stdout)
	mustRun(t, env, "vault", "hold", "--vault", vlt, id[:8])
	if r := lifeboat(t, env, "vault", "forget", "--vault", vlt, id[:8]); r.code != 2 || !strings.Contains(r.stderr, "held") {
		t.Fatalf("forget of a held point: %d %q", r.code, r.stderr)
	}
	mustRun(t, env, "vault", "release", "--vault", vlt, id[:8])
	r := mustRun(t, env, "vault", "forget", "--vault", vlt, id[:8], "--reason", "test", "-o", "json")
	if !strings.Contains(r.stdout, `"deleted": true`) {
		t.Fatalf("forget: %s", r.stdout)
	}
	if r := lifeboat(t, env, "vault", "ls", "--vault", vlt, "latest"); r.code != 4 {
		t.Errorf("latest after forgetting the only point: %d", r.code)
	}
	mustRun(t, env, "vault", "undelete", "--vault", vlt, id[:8])
	mustRun(t, env, "vault", "ls", "--vault", vlt, "latest")
	if rep := gcRun(t, vlt); len(rep.PointsPurged) != 0 || rep.PacksCondemned != 0 {
		t.Fatalf("gc purged an undeleted point: %+v", rep)
	}
	if r := lifeboat(t, env, "vault", "forget", "--vault", vlt, "ffffffff"); r.code != 4 {
		t.Errorf("forget of an unknown point: %d", r.code)
	}
	if r := lifeboat(t, env, "vault", "gc", "--vault", vlt, "--grace", "-1s"); r.code != 2 {
		t.Errorf("negative grace: %d", r.code)
	}
	if r := lifeboat(t, env, "vault", "gc", "--vault", filepath.Join(dir, "nope")); r.code != 4 {
		t.Errorf("gc of a missing vault: %d", r.code)
	}
	r = mustRun(t, env, "vault", "gc", "--help")
	if !strings.Contains(r.stdout, "Exit codes") {
		t.Errorf("gc help lists no exit codes")
	}
}

// A backup killed while writing a pack leaves its temp file, which no
// listing shows; once it has not been written for a day, `vault gc`
// removes it and says so, and the vault still checks clean.
func TestGCRemovesKilledBackupsTempFiles(t *testing.T) {
	dir := t.TempDir()
	vlt := filepath.Join(dir, "vault")
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	big := make([]byte, 96<<20)
	cc := rand.NewChaCha8([32]byte{3, 4})
	cc.Read(big)
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, passEnv(), "vault", "init", "--vault", vlt)
	temps := func() []string {
		var out []string
		filepath.WalkDir(vlt, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".tmp-") {
				out = append(out, p)
			}
			return nil
		})
		return out
	}
	// Killed while stopped just after its first pack is durable: the next
	// pack's temp file exists then (it is made when the first fills).
	// (Killed once a polled temp file showed up, it could be a small
	// object's, committed before the kill.)
	p := gcStart(t, append(passEnv(), "LIFEBOAT_TEST_STOP=backup-pack-stored"), "vault", "backup", "--vault", vlt, src)
	if !p.waitStopped(t) {
		t.Fatalf("backup did not stop after its first pack: %s", p.errb.String())
	}
	p.cmd.Process.Kill()
	p.wait(t)
	left := temps()
	if len(left) == 0 {
		t.Fatal("the killed backup left no temp file to collect (it finished first?)")
	}
	old := time.Now().Add(-25 * time.Hour)
	for _, f := range left {
		os.Chtimes(f, old, old)
	}
	r := mustRun(t, passEnv(), "vault", "gc", "--vault", vlt)
	if !strings.Contains(r.stdout, fmt.Sprintf("removed %d unfinished objects of killed writers", len(left))) {
		t.Errorf("gc output: %s", r.stdout)
	}
	if still := temps(); len(still) > 0 {
		t.Errorf("temp files left after gc: %q", still)
	}
	mustRun(t, passEnv(), "vault", "check", "--vault", vlt)
}
