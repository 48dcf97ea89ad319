package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// A restore that stopped after writing says what it left and where, keeps
// its error's exit code, and an interruption stays one (exit 130) with the
// note. (An interrupted restore said only "interrupted", and --to-original
// never said its targets held part of the point.)
func TestIncompleteRestore(t *testing.T) {
	dir := t.TempDir()
	empty, partial, partial2 := filepath.Join(dir, "empty"), filepath.Join(dir, "p1"), filepath.Join(dir, "p2")
	os.Mkdir(empty, 0o755)
	for _, p := range []string{partial, partial2} {
		os.MkdirAll(filepath.Join(p, "sub"), 0o755)
	}
	full := lifeboat.Errorf(lifeboat.EUnavailable, "restore %s/sub/f: write: no space left on device", partial)
	for _, tc := range []struct {
		name    string
		err     error
		targets []string
		code    int
		want    []string
	}{
		{"interrupted", fmt.Errorf("restore: %w", context.Canceled), []string{partial}, 130, []string{"interrupted; the restore is incomplete: " + partial + " holds part", "restore of point 0123abcd again with --resume to finish it"}},
		{"full, to-original", full, []string{partial, partial2, empty}, 6, []string{"no space left on device; the restore is incomplete: " + partial + ", " + partial2 + " hold part"}},
		{"nothing left", full, []string{empty, filepath.Join(dir, "gone")}, 6, []string{"no space left on device"}},
		{"refused after others", lifeboat.Errorf(lifeboat.EExists, "restore target %s is not empty", partial2), []string{partial}, 8, []string{"not empty; the restore is incomplete: " + partial + " holds part", "remove what is in the way, then run the same restore of point 0123abcd again with --resume"}},
	} {
		err := incompleteRestore(tc.err, tc.targets, "0123abcd"+strings.Repeat("0", 24))
		if got := ExitCode(err); got != tc.code {
			t.Errorf("%s: exit %d, want %d (%v)", tc.name, got, tc.code, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
		if tc.name == "nothing left" && strings.Contains(err.Error(), "incomplete") {
			t.Errorf("%s: %q says incomplete", tc.name, err)
		}
		if !errors.Is(err, tc.err) && tc.name != "interrupted" {
			t.Errorf("%s: the cause is lost: %v", tc.name, err)
		}
	}
}
