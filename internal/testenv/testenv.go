// Package testenv lets tests that need a real component (an S3 server, later
// PostgreSQL, MariaDB, OpenSSH, Chromium) find it through LIFEBOAT_TEST_*
// variables, which scripts/test-services.sh writes. Without them a test
// skips — unless LIFEBOAT_TEST_NO_SKIP=1 (set by .ci/run), where it fails, so
// CI can never go green by skipping. Imports the standard library only.
package testenv

import (
	"os"
	"strings"
	"testing"
)

// NoSkip reports whether skips are forbidden (CI).
func NoSkip() bool { return os.Getenv("LIFEBOAT_TEST_NO_SKIP") == "1" }

// Skip skips the test with reason, or fails it when skips are forbidden.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if NoSkip() {
		t.Fatalf("%s (LIFEBOAT_TEST_NO_SKIP=1 forbids skipping; run the tests with `make test`)", reason)
	}
	t.Skip(reason)
}

// Require returns the values of the named variables, skipping (or failing)
// the test if any is unset.
func Require(t testing.TB, vars ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var missing []string
	for _, v := range vars {
		val := os.Getenv(v)
		if val == "" {
			missing = append(missing, v)
		}
		out[v] = val
	}
	if len(missing) > 0 {
		Skip(t, "needs "+strings.Join(missing, ", ")+" (started by scripts/test-services.sh)")
	}
	return out
}
