// Package storagetest is the conformance suite every storage.Backend passes:
// local, memory and s3 (against a real S3-compatible server) run the same
// tests. It imports storage only.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// Run runs the suite; newBackend returns an empty backend for each subtest.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	ctx := context.Background()
	t.Run("PutGet", func(t *testing.T) {
		b := newBackend(t)
		for _, n := range []int{0, 1, 1000, 5 << 20} {
			data := randData(n)
			name := fmt.Sprintf("data/ab/obj-%d", n)
			if err := b.Put(ctx, name, data); err != nil {
				t.Fatalf("put %d bytes: %v", n, err)
			}
			if got := mustRead(t, b, name, 0, -1); !bytes.Equal(got, data) {
				t.Fatalf("%d bytes: read back %d bytes, differ", n, len(got))
			}
			oi, err := b.Stat(ctx, name)
			if err != nil || oi.Size != int64(n) || oi.Name != name {
				t.Fatalf("stat: %+v %v", oi, err)
			}
			if d := time.Since(oi.ModTime); d < -time.Hour || d > time.Hour {
				t.Errorf("mod time %v is far from now", oi.ModTime)
			}
		}
	})
	t.Run("NeverOverwrites", func(t *testing.T) {
		b := newBackend(t)
		if err := b.Put(ctx, "points/p1", []byte("first")); err != nil {
			t.Fatal(err)
		}
		err := b.Put(ctx, "points/p1", []byte("second, longer"))
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second put: %v, want ErrExists", err)
		}
		if got := mustRead(t, b, "points/p1", 0, -1); string(got) != "first" {
			t.Fatalf("object overwritten: %q", got)
		}
	})
	t.Run("ConcurrentPutsOneWins", func(t *testing.T) {
		b := newBackend(t)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		payloads := make([][]byte, n)
		for i := range n {
			payloads[i] = randData(100000 + i)
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = b.Put(ctx, "index/race", payloads[i]) }()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, storage.ErrExists):
				t.Fatalf("put: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d puts won, want 1", wins)
		}
		got := mustRead(t, b, "index/race", 0, -1)
		ok := false
		for _, p := range payloads {
			ok = ok || bytes.Equal(p, got)
		}
		if !ok {
			t.Fatalf("stored object (%d bytes) is none of the candidates", len(got))
		}
	})
	t.Run("Ranges", func(t *testing.T) {
		b := newBackend(t)
		data := randData(10000)
		b.Put(ctx, "data/00/r", data)
		for _, c := range []struct{ off, n int64 }{{0, 10}, {5000, 100}, {9990, -1}, {9990, 100}, {0, -1}, {10000, 5}, {123, 0}} {
			want := data[min(c.off, 10000):]
			if c.n >= 0 && c.n < int64(len(want)) {
				want = want[:c.n]
			}
			if got := mustRead(t, b, "data/00/r", c.off, c.n); !bytes.Equal(got, want) {
				t.Errorf("range %d+%d: got %d bytes, want %d", c.off, c.n, len(got), len(want))
			}
		}
	})
	t.Run("Missing", func(t *testing.T) {
		b := newBackend(t)
		if _, err := b.Get(ctx, "data/00/none", 0, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("get: %v", err)
		}
		if _, err := b.Get(ctx, "data/00/none", 10, 5); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ranged get: %v", err)
		}
		if _, err := b.Stat(ctx, "data/00/none"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("stat: %v", err)
		}
		if err := b.Delete(ctx, "data/00/none"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("delete: %v", err)
		}
	})
	t.Run("ListAndDelete", func(t *testing.T) {
		b := newBackend(t)
		names := []string{"data/ab/1", "data/ab/2", "data/abc/3", "data/b/4", "index/5", "lifeboat.json"}
		for _, n := range names {
			if err := b.Put(ctx, n, []byte(n)); err != nil {
				t.Fatal(err)
			}
		}
		for prefix, want := range map[string][]string{
			"data/":    {"data/ab/1", "data/ab/2", "data/abc/3", "data/b/4"},
			"data/ab":  {"data/ab/1", "data/ab/2", "data/abc/3"},
			"data/ab/": {"data/ab/1", "data/ab/2"},
			"index/":   {"index/5"},
			"keys/":    nil,
			"":         names,
		} {
			got := list(t, b, prefix)
			if fmt.Sprint(got) != fmt.Sprint(sorted(want)) {
				t.Errorf("list %q: %v, want %v", prefix, got, sorted(want))
			}
		}
		if err := b.Delete(ctx, "data/ab/1"); err != nil {
			t.Fatal(err)
		}
		if got := list(t, b, "data/ab/"); fmt.Sprint(got) != "[data/ab/2]" {
			t.Errorf("after delete: %v", got)
		}
		if err := b.Put(ctx, "data/ab/1", []byte("again")); err != nil {
			t.Fatalf("put after delete: %v", err)
		}
		stop := errors.New("stop")
		if err := b.List(ctx, "", func(storage.ObjectInfo) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("list callback error: %v", err)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		b := newBackend(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Put(cctx, "data/00/c", []byte("x")); err == nil {
			t.Errorf("put with a cancelled context succeeded")
		}
	})
	t.Run("Streamer", func(t *testing.T) {
		b := newBackend(t)
		s, ok := b.(storage.Streamer)
		if !ok {
			t.Log("backend does not stream; nothing to check")
			return
		}
		w, err := s.Create(ctx, "data/ab/stream")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("hello "))
		if _, err := b.Stat(ctx, "data/ab/stream"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("object visible before commit: %v", err)
		}
		w.Write([]byte("world"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, b, "data/ab/stream", 0, -1); string(got) != "hello world" {
			t.Errorf("streamed object: %q", got)
		}
		w2, _ := s.Create(ctx, "data/ab/aborted")
		w2.Write([]byte("nope"))
		w2.Abort()
		if got := list(t, b, "data/ab/"); fmt.Sprint(got) != "[data/ab/stream]" {
			t.Errorf("after abort: %v", got)
		}
		w3, err := s.Create(ctx, "data/ab/race")
		if err != nil {
			t.Fatal(err)
		}
		b.Put(ctx, "data/ab/race", []byte("first"))
		w3.Write([]byte("second"))
		if err := w3.Commit(); !errors.Is(err, storage.ErrExists) {
			t.Errorf("commit over an existing object: %v", err)
		}
		if got := mustRead(t, b, "data/ab/race", 0, -1); string(got) != "first" {
			t.Errorf("object overwritten by commit: %q", got)
		}
	})
}

func randData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func mustRead(t *testing.T, b storage.Backend, name string, off, n int64) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), name, off, n)
	if err != nil {
		t.Fatalf("get %s %d+%d: %v", name, off, n, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return got
}

func list(t *testing.T, b storage.Backend, prefix string) []string {
	t.Helper()
	var names []string
	if err := b.List(context.Background(), prefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return sorted(names)
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}
