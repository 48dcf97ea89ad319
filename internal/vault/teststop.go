package vault

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// testStop stops the process with SIGSTOP when LIFEBOAT_TEST_STOP names
// stage, so that process-level tests (cmd/lifeboat/gc_test.go) can pause a
// backup or a collector at an exact moment and resume it with SIGCONT. Test
// only: nothing sets the variable in production.
//
// Stages: "backup-pack-stored" (a pack of the backup is durable, the first
// time), "backup-before-commit" (packs and index durable, manifest not yet
// written), "gc-before-condemn" (references computed, no tombstone written),
// "gc-before-delete" (packs to delete chosen, none deleted). The process
// stops the first time it reaches the stage only.
func testStop(stage string) {
	if s := os.Getenv("LIFEBOAT_TEST_STOP"); s != "" && s == stage {
		testStopped.Do(func() { _ = unix.Kill(unix.Getpid(), unix.SIGSTOP) })
	}
}

var testStopped sync.Once
