package capture

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh"
	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh/sshtest"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// sshTestTarget is a RemoteTarget on the test's OpenSSH server, with
// failures injected where a test says.
type sshTestTarget struct {
	*ssh.Client
	swapFile func() error // runs first in SwapFile; an error fails it
	failRun  func(argv []string) bool
}

func (t *sshTestTarget) RemoveAll(ctx context.Context, p string) error {
	return t.Run(ctx, []string{"rm", "-rf", "--", p}, nil, io.Discard)
}

func (t *sshTestTarget) List(context.Context, string) ([]vault.RemoteEntry, error) {
	return nil, errors.New("not listed in this test")
}

func (t *sshTestTarget) Run(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
	if t.failRun != nil && t.failRun(argv) {
		return errors.New("injected failure")
	}
	return t.Client.Run(ctx, argv, stdin, stdout)
}

func (t *sshTestTarget) SwapFile(st, rel, target, tag string) ([]string, bool, error) {
	if t.swapFile != nil {
		if err := t.swapFile(); err != nil {
			return nil, false, err
		}
	}
	return t.Client.SwapFile(st, rel, target, tag)
}

// newSSHTestTarget dials the test's OpenSSH server and makes a directory
// its login user owns.
func newSSHTestTarget(t *testing.T) (*sshTestTarget, string) {
	c := sshtest.Config(t)
	return &sshTestTarget{Client: sshtest.Dial(t, c)}, sshtest.SharedDir(t, c.User)
}

// damagedDB writes a database that is no database, with a log beside it.
func damagedDB(db string) {
	os.WriteFile(db, []byte("damaged"), 0o666)
	os.WriteFile(db+"-wal", []byte("the last transactions"), 0o666)
}

// staged makes a staging for db holding a restored copy, restore.db.
func staged(t *testing.T, rt RemoteTarget, db string) string {
	t.Helper()
	st, err := rt.MkdirStaging(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.WriteFile(st, "restore.db", 0o600, strings.NewReader("restored")); err != nil {
		t.Fatal(err)
	}
	return st
}

// crashedSwap runs swapSQLite (of job1) in a process that dies in the
// swap, once die has run.
func crashedSwap(rt *sshTestTarget, st, db string, die func()) {
	rt.swapFile = func() error { die(); panic("crash") }
	defer func() {
		recover()
		rt.swapFile = nil
	}()
	swapSQLite(context.Background(), rt, &Swap{}, st, "restore.db", db, "job1")
}

// TestSwapSQLiteKeepsTheLog: a database replaced in stopped mode on an SSH
// host is kept with its log (-wal here) beside it; when the swap fails the
// log is back beside the database; when it cannot be put back, the staging
// holding it is kept and named. The log is never deleted, and never left
// beside the restored database.
func TestSwapSQLiteKeepsTheLog(t *testing.T) {
	rt, dir := newSSHTestTarget(t)
	ctx := context.Background()
	db := filepath.Join(dir, "app.db")
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return string(b)
	}
	// setup makes the database, its log and a staging holding the restore.
	setup := func(t *testing.T) string {
		t.Helper()
		damagedDB(db)
		os.WriteFile(db+"-shm", []byte("shm"), 0o666)
		return staged(t, rt, db)
	}
	clean := func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}

	t.Run("swapped", func(t *testing.T) {
		defer clean()
		st := setup(t)
		sw := &Swap{}
		keep, err := swapSQLite(ctx, rt, sw, st, "restore.db", db, "job1")
		if err != nil || !keep {
			t.Fatal(keep, err)
		}
		old := filepath.Join(dir, ".lifeboat-old-app.db-job1")
		if !slices.Equal(sw.Old, []string{old, old + "-wal"}) || len(sw.Left) != 0 {
			t.Fatalf("kept %q, left %q: want the replaced database and its log", sw.Old, sw.Left)
		}
		if read(db) != "restored" || read(old) != "damaged" || read(old+"-wal") != "the last transactions" {
			t.Errorf("after the swap: %s %q, kept %q with log %q", db, read(db), read(old), read(old+"-wal"))
		}
		for _, p := range []string{db + "-wal", db + "-shm", st} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s is there after the swap", p)
			}
		}
	})

	t.Run("swap fails", func(t *testing.T) {
		defer clean()
		st := setup(t)
		rt.swapFile = func() error { return errors.New("injected swap failure") }
		defer func() { rt.swapFile = nil }()
		keep, err := swapSQLite(ctx, rt, &Swap{}, st, "restore.db", db, "job1")
		if err == nil || keep {
			t.Fatalf("a failed swap: %v, keep staging %v", err, keep)
		}
		if read(db) != "damaged" || read(db+"-wal") != "the last transactions" {
			t.Errorf("after the failed swap: %q with log %q, want both as they were", read(db), read(db+"-wal"))
		}
	})

	t.Run("swap fails, the log cannot go back", func(t *testing.T) {
		defer clean()
		st := setup(t)
		// The app wrote a new log meanwhile: the kept one must not replace it.
		rt.swapFile = func() error {
			os.WriteFile(db+"-wal", []byte("written since"), 0o666)
			return errors.New("injected swap failure")
		}
		defer func() { rt.swapFile = nil }()
		keep, err := swapSQLite(ctx, rt, &Swap{}, st, "restore.db", db, "job1")
		if err == nil || !keep || !strings.Contains(err.Error(), st) {
			t.Fatalf("%v, keep staging %v: want an error naming the staging %s, kept", err, keep, st)
		}
		if read(filepath.Join(st, "old-wal")) != "the last transactions" || read(db+"-wal") != "written since" {
			t.Errorf("the staging's log %q, beside the database %q", read(filepath.Join(st, "old-wal")), read(db+"-wal"))
		}
	})

	t.Run("swap fails, another database there", func(t *testing.T) {
		defer clean()
		st := setup(t)
		// The database was replaced meanwhile: its old log must not go
		// beside the new one (SQLite would replay it there).
		rt.swapFile = func() error {
			os.WriteFile(db+".new", []byte("another database"), 0o666)
			os.Rename(db+".new", db)
			return errors.New("injected swap failure")
		}
		defer func() { rt.swapFile = nil }()
		keep, err := swapSQLite(ctx, rt, &Swap{}, st, "restore.db", db, "job1")
		if err == nil || !keep {
			t.Fatalf("%v, keep staging %v", err, keep)
		}
		if _, err := os.Lstat(db + "-wal"); err == nil {
			t.Errorf("the old log is beside another database")
		}
		if read(filepath.Join(st, "old-wal")) != "the last transactions" {
			t.Errorf("the staging's log: %q", read(filepath.Join(st, "old-wal")))
		}
	})

	t.Run("removing the logs fails", func(t *testing.T) {
		defer clean()
		st := setup(t)
		rt.failRun = func(argv []string) bool { return argv[0] == "rm" } // -shm
		defer func() { rt.failRun = nil }()
		keep, err := swapSQLite(ctx, rt, &Swap{}, st, "restore.db", db, "job1")
		if err == nil || keep || read(db) != "damaged" || read(db+"-wal") != "the last transactions" {
			t.Errorf("%v, keep staging %v; after it %q with log %q", err, keep, read(db), read(db+"-wal"))
		}
	})

	t.Run("a log cannot be moved aside", func(t *testing.T) {
		defer clean()
		st := setup(t)
		os.WriteFile(db+"-journal", []byte("a hot journal"), 0o644)
		// In the way: -wal moves, -journal does not. (What is in the
		// staging is taken for moved, so this is kept there too.)
		os.Mkdir(filepath.Join(st, "old-journal"), 0o755)
		keep, err := swapSQLite(ctx, rt, &Swap{}, st, "restore.db", db, "job1")
		if err == nil {
			t.Fatalf("%v, keep staging %v", err, keep)
		}
		if read(db) != "damaged" || read(db+"-wal") != "the last transactions" || read(db+"-journal") != "a hot journal" {
			t.Errorf("after it: %q with logs %q and %q, want all as they were", read(db), read(db+"-wal"), read(db+"-journal"))
		}
	})

	t.Run("an earlier attempt kept the database and its log", func(t *testing.T) {
		defer clean()
		st := setup(t)
		prior := filepath.Join(dir, ".lifeboat-old-app.db-job1")
		os.WriteFile(prior, []byte("before the job"), 0o644)
		os.WriteFile(prior+"-wal", []byte("its log"), 0o644)
		sw := &Swap{}
		if _, err := swapSQLite(ctx, rt, sw, st, "restore.db", db, "job1"); err != nil {
			t.Fatal(err)
		}
		if len(sw.Old) != 4 || sw.Old[0] != prior || !strings.HasPrefix(sw.Old[1], prior+"-") || sw.Old[2] != prior+"-wal" || sw.Old[3] != sw.Old[1]+"-wal" {
			t.Fatalf("kept %q: want the earlier copy, the replaced database, then each one's log", sw.Old)
		}
		if !slices.Equal(sw.Prior, []string{prior, prior + "-wal"}) || !sw.Earlier {
			t.Errorf("prior %q, earlier %v: want the earlier attempt's copy with its log", sw.Prior, sw.Earlier)
		}
		if read(sw.Old[1]) != "damaged" || read(sw.Old[3]) != "the last transactions" {
			t.Errorf("kept %q with log %q", read(sw.Old[1]), read(sw.Old[3]))
		}
	})

	t.Run("an earlier restore's staging holds a log", func(t *testing.T) {
		defer clean()
		st := setup(t)
		crashed := filepath.Join(dir, ".lifeboat-staging-app.db-0123456789abcdef")
		other := filepath.Join(dir, ".lifeboat-staging-app.db-x-0123456789abcdef") // another database's (app.db-x)
		for _, d := range []string{crashed, other} {
			os.Mkdir(d, 0o755) // readable by the SSH user (root made it here)
			os.WriteFile(filepath.Join(d, "old-wal"), []byte("moved before a crash"), 0o644)
		}
		sw := &Swap{}
		if _, err := swapSQLite(ctx, rt, sw, st, "restore.db", db, "job1"); err != nil {
			t.Fatal(err)
		}
		// The database it moved the log of, replaced now, is kept for good
		// too, with its own log.
		old := filepath.Join(dir, ".lifeboat-old-app.db-job1")
		if !slices.Equal(sw.Left, []string{crashed, old, old + "-wal"}) || len(sw.Old) != 0 || !sw.Earlier || !strings.Contains(sw.Notes[0], crashed) {
			t.Errorf("left %q, kept %q, earlier %v, notes %q: want the crashed restore's staging named, and the replaced database kept for good", sw.Left, sw.Old, sw.Earlier, sw.Notes)
		}
	})

}

// lossyTarget runs the script that moves the logs aside for real but
// loses its output and fails, as a session cancelled right after the
// move does.
type lossyTarget struct{ *sshTestTarget }

func isAsideScript(argv []string) bool {
	return len(argv) > 2 && argv[0] == "sh" && strings.Contains(argv[2], `move "$t$s"`)
}

func (t lossyTarget) Run(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
	if isAsideScript(argv) {
		t.sshTestTarget.Run(context.Background(), argv, stdin, io.Discard)
		return errors.New("ssh: interrupted (context canceled)")
	}
	return t.sshTestTarget.Run(ctx, argv, stdin, stdout)
}

// cancelTarget cancels the restore as soon as the script moving the logs
// aside says anything (while it moves them).
type cancelTarget struct {
	*sshTestTarget
	cancel func()
}

type cancelOnWrite struct {
	w      io.Writer
	cancel func()
}

func (c cancelOnWrite) Write(p []byte) (int, error) { c.cancel(); return c.w.Write(p) }

func (t cancelTarget) Run(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
	if isAsideScript(argv) {
		stdout = cancelOnWrite{stdout, t.cancel}
	}
	return t.sshTestTarget.Run(ctx, argv, stdin, stdout)
}

// TestSwapSQLiteCancelledKeepsTheLog: a restore cancelled while it moves
// the log aside, or whose session loses what the move said, never loses
// the log: it is back beside the database, or in the staging, which the
// clean-up after a failure then keeps.
func TestSwapSQLiteCancelledKeepsTheLog(t *testing.T) {
	rt, dir := newSSHTestTarget(t)
	db := filepath.Join(dir, "app.db")
	try := func(t *testing.T, rt RemoteTarget, ctx context.Context) {
		t.Helper()
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
		damagedDB(db)
		st := staged(t, rt, db)
		keep, err := swapSQLite(ctx, rt, &Swap{}, st, "restore.db", db, "job1")
		if !keep {
			dropSQLiteStaging(ctx, rt, st, "restore.db") // as RestoreRemoteSQLite does
		}
		b1, e1 := os.ReadFile(db + "-wal")
		b2, e2 := os.ReadFile(filepath.Join(st, "old-wal"))
		if (e1 != nil || string(b1) != "the last transactions") && (e2 != nil || string(b2) != "the last transactions") {
			t.Fatalf("the log is lost: beside the database %q %v, in the staging %q %v (swap: keep %v, %v)", b1, e1, b2, e2, keep, err)
		}
	}
	t.Run("output lost", func(t *testing.T) {
		try(t, lossyTarget{rt}, context.Background())
		if b, _ := os.ReadFile(db + "-wal"); string(b) != "the last transactions" {
			t.Errorf("the log is not back beside the database")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		for range 40 {
			ctx, cancel := context.WithCancel(context.Background())
			try(t, cancelTarget{rt, cancel}, ctx)
			cancel()
		}
	})
}

// TestSwapSQLiteRetryAfterACrash: a crash between the swap's renames
// leaves the replaced database at its kept name and its log in the
// staging; the retry keeps the database and names the staging.
func TestSwapSQLiteRetryAfterACrash(t *testing.T) {
	rt, dir := newSSHTestTarget(t)
	ctx := context.Background()
	db := filepath.Join(dir, "app.db")
	old := filepath.Join(dir, ".lifeboat-old-app.db-job1")
	damagedDB(db)
	st1 := staged(t, rt, db)
	crashedSwap(rt, st1, db, func() { os.Rename(db, old) })
	st2 := staged(t, rt, db)
	sw := &Swap{}
	if _, err := swapSQLite(ctx, rt, sw, st2, "restore.db", db, "job1"); err != nil {
		t.Fatal(err)
	}
	if len(sw.Old) != 0 || !slices.Equal(sw.Left, []string{st1, old}) || !sw.Earlier {
		t.Errorf("kept %q, left %q, earlier %v: want the replaced database and the first staging, which holds its log, kept for good", sw.Old, sw.Left, sw.Earlier)
	}
	if b, _ := os.ReadFile(filepath.Join(st1, "old-wal")); string(b) != "the last transactions" {
		t.Errorf("the first staging's log: %q", b)
	}
}

// TestSwapSQLiteRetryRemovesTheFirstLog: a retry after a whole swap
// removes, once all is well, the first attempt's copy with its log.
func TestSwapSQLiteRetryRemovesTheFirstLog(t *testing.T) {
	rt, dir := newSSHTestTarget(t)
	ctx := context.Background()
	db := filepath.Join(dir, "app.db")
	damagedDB(db)
	for range 2 {
		st := staged(t, rt, db)
		sw := &Swap{remove: func(p string) error { return rt.RemoveAll(ctx, p) }}
		if _, err := swapSQLite(ctx, rt, sw, st, "restore.db", db, "job1"); err != nil {
			t.Fatal(err)
		}
		if err := sw.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".lifeboat-*")); len(left) != 0 {
		t.Errorf("left after both attempts' commits: %v", left)
	}
}

// TestSwapSQLiteRetryAfterACrashBeforeTheSwap: a crash after the log was
// moved into the staging, before the swap: the retry's safety point has
// the database without its log, so the retry says an earlier attempt began
// (the runner names that attempt's safety point) and keeps what it
// replaces for good.
func TestSwapSQLiteRetryAfterACrashBeforeTheSwap(t *testing.T) {
	rt, dir := newSSHTestTarget(t)
	ctx := context.Background()
	db := filepath.Join(dir, "app.db")
	damagedDB(db)
	st1 := staged(t, rt, db)
	crashedSwap(rt, st1, db, func() {})
	st2 := staged(t, rt, db)
	sw := &Swap{remove: func(p string) error { return rt.RemoveAll(ctx, p) }}
	if _, err := swapSQLite(ctx, rt, sw, st2, "restore.db", db, "job1"); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, ".lifeboat-old-app.db-job1")
	if !sw.Earlier || len(sw.Old) != 0 || !slices.Contains(sw.Left, old) || !slices.Contains(sw.Left, st1) {
		t.Fatalf("earlier %v, kept %q, left %q: want an earlier attempt, and the database and the first staging kept for good", sw.Earlier, sw.Old, sw.Left)
	}
	sw.Commit()
	if read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }; read(old) != "damaged" || read(filepath.Join(st1, "old-wal")) != "the last transactions" {
		t.Errorf("after the commit: %q, its log %q", read(old), read(filepath.Join(st1, "old-wal")))
	}
}

// TestSwapSQLiteRetryAvoidsAForeignLog: a clean-up stopped after removing
// a kept copy, before its log; the retry keeps what it replaces under
// another name, not beside that log.
func TestSwapSQLiteRetryAvoidsAForeignLog(t *testing.T) {
	rt, dir := newSSHTestTarget(t)
	ctx := context.Background()
	db := filepath.Join(dir, "app.db")
	old := filepath.Join(dir, ".lifeboat-old-app.db-job1")
	os.WriteFile(db, []byte("damaged"), 0o666)
	os.WriteFile(old+"-wal", []byte("the log of a copy removed half-way"), 0o666)
	st := staged(t, rt, db)
	sw := &Swap{}
	if _, err := swapSQLite(ctx, rt, sw, st, "restore.db", db, "job1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(old); err == nil || len(sw.Old) != 1 || !strings.HasPrefix(sw.Old[0], old+"-") {
		t.Errorf("kept %q: want the replaced database under a name of its own, not %s", sw.Old, old)
	}
}

// TestSwapSQLiteOutlivedMove: the command moving the log aside, cancelled,
// moves it after the restore looked into the staging: the staging then
// cannot be removed, and the clean-up says what it holds.
func TestSwapSQLiteOutlivedMove(t *testing.T) {
	base, dir := newSSHTestTarget(t)
	rt := &outlivedTarget{sshTestTarget: base}
	ctx := context.Background()
	db := filepath.Join(dir, "app.db")
	damagedDB(db)
	st := staged(t, rt, db)
	keep, err := swapSQLite(ctx, rt, &Swap{}, st, "restore.db", db, "job1")
	if err == nil || keep {
		t.Fatalf("%v, keep %v", err, keep)
	}
	derr := dropSQLiteStaging(ctx, rt, st, "restore.db")
	if b, _ := os.ReadFile(filepath.Join(st, "old-wal")); string(b) != "the last transactions" || derr == nil || !strings.Contains(derr.Error(), "old-wal") {
		t.Errorf("the staging's log %q; the clean-up's error %v: want it kept, and named", b, derr)
	}
	if _, err := os.Lstat(filepath.Join(st, "restore.db")); err == nil {
		t.Error("the restored copy is still in the staging")
	}
}

// outlivedTarget fails the script moving the logs aside at once, then
// runs it right after the restore looked into the staging.
type outlivedTarget struct {
	*sshTestTarget
	aside []string
}

func (t *outlivedTarget) Run(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
	if isAsideScript(argv) {
		t.aside = argv
		return errors.New("ssh: interrupted (context canceled)")
	}
	err := t.sshTestTarget.Run(ctx, argv, stdin, stdout)
	if t.aside != nil {
		t.sshTestTarget.Run(context.Background(), t.aside, nil, io.Discard)
		t.aside = nil
	}
	return err
}

// TestSwapSQLiteOddPath: a database under a directory whose name holds a
// backslash (which dash's echo would rewrite): a failed swap puts its log
// back, and an earlier staging is named where it is.
func TestSwapSQLiteOddPath(t *testing.T) {
	rt, base := newSSHTestTarget(t)
	ctx := context.Background()
	dir := filepath.Join(base, `data\backup "x"`)
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	db := filepath.Join(dir, "app.db")
	damagedDB(db)
	st := staged(t, rt, db)
	rt.swapFile = func() error { return errors.New("injected swap failure") }
	keep, err := swapSQLite(ctx, rt, &Swap{}, st, "restore.db", db, "job1")
	rt.swapFile = nil
	if b, _ := os.ReadFile(db + "-wal"); err == nil || keep || string(b) != "the last transactions" {
		t.Errorf("after a failed swap (%v, keep staging %v): the log beside the database %q", err, keep, b)
	}
	dropSQLiteStaging(ctx, rt, st, "restore.db")

	crashed := filepath.Join(dir, ".lifeboat-staging-app.db-0123456789abcdef")
	os.Mkdir(crashed, 0o755)
	os.WriteFile(filepath.Join(crashed, "old-wal"), []byte("moved before a crash"), 0o644)
	sw := &Swap{}
	if _, err := swapSQLite(ctx, rt, sw, staged(t, rt, db), "restore.db", db, "job1"); err != nil {
		t.Fatal(err)
	}
	if len(sw.Left) == 0 || sw.Left[0] != crashed {
		t.Errorf("left %q, want %s first", sw.Left, crashed)
	}
}
