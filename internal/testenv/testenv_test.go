package testenv_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// recorder is a testing.TB that records Skip and Fatal instead of ending
// the test; like the real ones, they stop the calling goroutine.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls Require on a recorder in its own goroutine.
func run(t *testing.T, vars ...string) (rec *recorder, got map[string]string) {
	rec = &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = testenv.Require(rec, vars...)
	}()
	<-done
	return rec, got
}

func TestRequire(t *testing.T) {
	t.Setenv("LIFEBOAT_TEST_X_SET", "value")
	t.Setenv("LIFEBOAT_TEST_X_EMPTY", "")

	t.Setenv(testenv.NoSkipVar, "")
	rec, got := run(t, "LIFEBOAT_TEST_X_SET")
	if rec.skipped != "" || rec.failed != "" || got["LIFEBOAT_TEST_X_SET"] != "value" {
		t.Errorf("all set: skipped %q, failed %q, got %v", rec.skipped, rec.failed, got)
	}
	rec, _ = run(t, "LIFEBOAT_TEST_X_SET", "LIFEBOAT_TEST_X_EMPTY", "LIFEBOAT_TEST_X_UNSET")
	if rec.failed != "" || !strings.Contains(rec.skipped, "LIFEBOAT_TEST_X_EMPTY, LIFEBOAT_TEST_X_UNSET") {
		t.Errorf("missing, skips allowed: skipped %q, failed %q", rec.skipped, rec.failed)
	}

	t.Setenv(testenv.NoSkipVar, "1")
	rec, _ = run(t, "LIFEBOAT_TEST_X_UNSET")
	if rec.skipped != "" || !strings.Contains(rec.failed, "LIFEBOAT_TEST_X_UNSET") || !strings.Contains(rec.failed, testenv.NoSkipVar) {
		t.Errorf("missing, skips forbidden: skipped %q, failed %q", rec.skipped, rec.failed)
	}
	rec, got = run(t, "LIFEBOAT_TEST_X_SET")
	if rec.skipped != "" || rec.failed != "" || got["LIFEBOAT_TEST_X_SET"] != "value" {
		t.Errorf("all set, skips forbidden: skipped %q, failed %q", rec.skipped, rec.failed)
	}
}
