package vault

import (
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// testStop stops the process with SIGSTOP when LIFEBOAT_TEST_STOP names
// stage (a comma-separated list may name several), so that process-level
// tests (cmd/lifeboat) can pause a backup or a collector at an exact moment
// and resume it with SIGCONT. Test only: nothing sets the variable in
// production.
//
// Stages: "backup-pack-stored" (a pack of the backup is durable),
// "backup-abort" (the backup failed or was interrupted, and is about to keep
// what it stored), "restore-file-restored" (a file of a restore is
// whole), "backup-before-commit" (packs and index durable, manifest
// not yet written), "gc-before-condemn" (references computed, no tombstone
// written), "gc-before-delete" (packs to delete chosen, none deleted). The
// process stops the first time it reaches each stage only.
func testStop(stage string) {
	env := os.Getenv("LIFEBOAT_TEST_STOP")
	if env == "" || !slices.Contains(strings.Split(env, ","), stage) {
		return
	}
	testStopMu.Lock()
	first := !testStopped[stage]
	testStopped[stage] = true
	testStopMu.Unlock()
	if first {
		_ = unix.Kill(unix.Getpid(), unix.SIGSTOP)
	}
}

var (
	testStopMu  sync.Mutex
	testStopped = map[string]bool{}
)
