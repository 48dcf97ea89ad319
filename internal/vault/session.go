package vault

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// Write sessions (docs/vault-format.md, "Garbage collection"). A backup's
// packs are named by no point until its manifest is written at the end, so
// a collection would condemn those older than its grace period: a backup
// running longer than that (a first backup of a large tree, a slow remote
// host) failed at commit, and again on every retry. A backup therefore
// announces itself: locks/session-<id>.start when it begins, then a
// heartbeat object locks/session-<id>.<n> every sessionBeat (the previous
// one deleted), all deleted when it ends (locks/ holds no object a point
// needs: a vault lock retains none of them). A collection never condemns a pack written
// (by the storage's clock) at or after the start object of a session
// whose newest object is younger than sessionStale: the session's packs
// are all written after its start object is durable.

const sessionPrefix = "locks/session-"

var (
	// sessionBeat is how often a live session writes a heartbeat object
	// (tests shorten it).
	sessionBeat = 10 * time.Minute
	// sessionStale: a session whose newest object is older is dead (its
	// writer was killed, or stalled that long).
	sessionStale = 30 * time.Minute
	// sessionEndWait is how long end waits for a heartbeat put in flight
	// before cancelling it: on storage that hangs, a cancelled backup
	// would otherwise wait for the storage too.
	sessionEndWait = 10 * time.Second
	// sessionCleanup bounds end's deletes, for the same reason: Ctrl-C on
	// a frozen server waited a minute. A session left behind goes stale.
	sessionCleanup = 15 * time.Second
)

// session is a live write session.
type session struct {
	v      *Vault
	id     string
	stop   chan struct{}
	cancel context.CancelFunc // the heartbeat's storage calls
	done   chan struct{}      // closed when the heartbeat has stopped
}

// startSession writes the session's start object and starts its heartbeat.
func (v *Vault) startSession(ctx context.Context) (*session, error) {
	s := &session{v: v, id: hex.EncodeToString(randBytes(16)), stop: make(chan struct{}), done: make(chan struct{})}
	if err := v.be.Put(ctx, s.name("start"), nil); err != nil {
		return nil, storageError(v.be, fmt.Errorf("write session %s: %w", s.name("start"), err))
	}
	// The heartbeat outlives a cancelled backup until end, which cancels
	// it only if it does not stop by itself.
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go s.beat(bctx)
	return s, nil
}

func (s *session) name(suffix string) string { return sessionPrefix + s.id + "." + suffix }

// beat writes a heartbeat object every sessionBeat until end; a failed one
// is tried again at the next beat (a collection may then take the session
// for dead, and the backup fail at commit, as without sessions).
func (s *session) beat(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(sessionBeat)
	defer t.Stop()
	prev := ""
	for n := 1; ; n++ {
		select {
		case <-s.stop:
			if prev != "" {
				// Not with ctx: end may have cancelled it to stop a put
				// that hung, and the last heartbeat would stay.
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sessionCleanup)
				s.v.be.Delete(dctx, prev)
				cancel()
			}
			return
		case <-t.C:
		}
		name := s.name(fmt.Sprintf("%08d", n))
		if err := s.v.be.Put(ctx, name, nil); err != nil {
			continue
		}
		if prev != "" {
			s.v.be.Delete(ctx, prev)
		}
		prev = name
	}
}

// end stops the heartbeat and deletes the session's objects. A session
// whose objects could not be deleted goes stale and a collection removes it.
func (s *session) end(ctx context.Context) {
	close(s.stop)
	t := time.NewTimer(sessionEndWait)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.cancel()
		// A storage call that ignores its context (a local fsync that
		// hangs) is left behind: the session goes stale.
		select {
		case <-s.done:
		case <-time.After(sessionEndWait):
		}
	}
	s.cancel()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sessionCleanup)
	defer cancel()
	s.v.be.Delete(dctx, s.name("start"))
}

// liveSessions lists the write sessions and returns the earliest start of
// those still alive at storage time now (zero when none), and the objects
// of sessions dead for longer than TempAge, to delete.
func (v *Vault) liveSessions(ctx context.Context, now time.Time) (earliest time.Time, stale []string, err error) {
	type info struct {
		start, newest time.Time
		hasStart      bool
		names         []string
	}
	byID := map[string]*info{}
	err = v.be.List(ctx, sessionPrefix, func(oi storage.ObjectInfo) error {
		id, suffix, ok := strings.Cut(strings.TrimPrefix(oi.Name, sessionPrefix), ".")
		if !ok {
			return nil
		}
		in := byID[id]
		if in == nil {
			in = &info{}
			byID[id] = in
		}
		in.names = append(in.names, oi.Name)
		if oi.ModTime.After(in.newest) {
			in.newest = oi.ModTime
		}
		switch {
		case suffix == "start":
			in.start, in.hasStart = oi.ModTime, true
		case !in.hasStart && (in.start.IsZero() || oi.ModTime.Before(in.start)):
			in.start = oi.ModTime // its start object is gone: its oldest
		}
		return nil
	})
	if err != nil {
		return time.Time{}, nil, storageError(v.be, err)
	}
	for _, in := range byID {
		switch age := now.Sub(in.newest); {
		case age < sessionStale:
			if earliest.IsZero() || in.start.Before(earliest) {
				earliest = in.start
			}
		case age > TempAge:
			stale = append(stale, in.names...)
		}
	}
	return earliest, stale, nil
}

// deleteStale deletes the objects of dead sessions.
func (v *Vault) deleteStale(ctx context.Context, names []string) error {
	for _, n := range names {
		if err := v.be.Delete(ctx, n); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return storageError(v.be, err)
		}
	}
	return nil
}
