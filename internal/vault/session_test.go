package vault

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
)

// hangingBeats is storage on which heartbeat puts from the hangFrom-th on
// hang until cancelled, and whose deletes honour their context, as S3's do.
type hangingBeats struct {
	*memory.Backend
	hangFrom int
	beats    int // heartbeat puts so far (one writer: the session's heartbeat)
	started  chan struct{}
}

func (h *hangingBeats) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, sessionPrefix) && !strings.HasSuffix(name, ".start") {
		if h.beats++; h.beats >= h.hangFrom {
			select {
			case h.started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return ctx.Err()
		}
	}
	return h.Backend.Put(ctx, name, data)
}

func (h *hangingBeats) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return h.Backend.Delete(ctx, name)
}

// sessionOn starts a session, with a 10 ms heartbeat, in a vault on
// storage whose heartbeats hang from the hangFrom-th, and waits until one
// hangs.
func sessionOn(t *testing.T, ctx context.Context, hangFrom int) (*hangingBeats, *session) {
	t.Helper()
	be := &hangingBeats{Backend: memory.New(), hangFrom: hangFrom, started: make(chan struct{}, 1)}
	v, err := Init(context.Background(), be, []byte("pw"), Options{KDF: &weakKDF})
	if err != nil {
		t.Fatal(err)
	}
	b, w := sessionBeat, sessionEndWait
	t.Cleanup(func() { sessionBeat, sessionEndWait = b, w })
	sessionBeat, sessionEndWait = 10*time.Millisecond, 100*time.Millisecond
	s, err := v.startSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-be.started
	return be, s
}

// A session ends though a heartbeat put hangs on the storage: end cancels
// it after a while. (A cancelled backup waited for the storage forever.)
func TestSessionEndsDespiteHangingHeartbeat(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	be, s := sessionOn(t, ctx, 1)
	cancel() // the backup is cancelled
	ended := make(chan struct{})
	go func() { s.end(ctx); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("session end still waiting for a hanging heartbeat put after 10 s")
	}
	if _, err := be.Stat(context.Background(), s.name("start")); err == nil {
		t.Error("the session's start object is left")
	}
}

// The heartbeat written before the one that hung is deleted too, though end
// cancelled the heartbeat's context. (It stayed, and the ended session
// looked alive to collections for half an hour.)
func TestSessionEndDeletesLastHeartbeat(t *testing.T) {
	be, s := sessionOn(t, context.Background(), 2)
	s.end(context.Background())
	var left []string
	be.Backend.List(context.Background(), sessionPrefix, func(oi storage.ObjectInfo) error { left = append(left, oi.Name); return nil })
	if len(left) != 0 {
		t.Fatalf("session objects left after end: %v", left)
	}
}
