package testenv

import (
	"os"
	"strings"
	"testing"
)

// NoSkipVar is the variable that turns skips into failures when it is "1".
const NoSkipVar = "LIFEBOAT_TEST_NO_SKIP"

// NoSkip reports whether skips are forbidden (CI).
func NoSkip() bool { return os.Getenv(NoSkipVar) == "1" }

// Skip skips the test with reason, or fails it when skips are forbidden.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if NoSkip() {
		t.Fatalf("%s (%s=1 forbids skipping; start the services with scripts/test-services.sh, or run make test)", reason, NoSkipVar)
	}
	t.Skip(reason)
}

// Require returns the values of the named environment variables. If any is
// unset or empty it skips the test — or fails it when LIFEBOAT_TEST_NO_SKIP=1
// — naming every missing variable.
func Require(t testing.TB, vars ...string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(vars))
	var missing []string
	for _, v := range vars {
		val := os.Getenv(v)
		if val == "" {
			missing = append(missing, v)
		}
		out[v] = val
	}
	if len(missing) > 0 {
		Skip(t, "needs "+strings.Join(missing, ", ")+" (scripts/test-services.sh start writes them to /tmp/lifeboat-test-services/env)")
	}
	return out
}
