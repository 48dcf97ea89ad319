package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// Run runs the suite. newBackend returns an empty backend for each subtest;
// the suite closes it.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	open := func(t *testing.T) storage.Backend {
		t.Helper()
		b := newBackend(t)
		t.Cleanup(func() { b.Close() })
		return b
	}
	for _, tc := range []struct {
		name string
		test func(t *testing.T, b storage.Backend)
	}{
		{"PutGet", testPutGet},
		{"ListSeesPutAtOnce", testListSeesPut},
		{"NeverOverwrites", testNeverOverwrites},
		{"ConcurrentPutsOneWins", testConcurrentSameName},
		{"ConcurrentPutsManyNames", testConcurrentManyNames},
		{"Ranges", testRanges},
		{"Missing", testMissing},
		{"List", testList},
		{"DeleteThenPut", testDeleteThenPut},
		{"BadNames", testBadNames},
		{"Cancelled", testCancelled},
		{"Streamer", testStreamer},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open(t)) })
	}
}

// sane reports whether a storage timestamp is plausible now: the storage's
// clock may differ from ours, but not by an hour (the vault refuses to
// prune beyond that), and it is never the zero time.
func sane(t *testing.T, what string, mod time.Time) {
	t.Helper()
	if d := time.Since(mod); d < -time.Hour || d > time.Hour {
		t.Errorf("%s: ModTime %v is more than an hour from now", what, mod)
	}
}

func testPutGet(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	for _, n := range []int{0, 1, 1000, 5<<20 + 17} {
		data := randData(n)
		name := fmt.Sprintf("data/ab/obj-%d", n)
		if err := b.Put(ctx, name, data); err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
		if got := mustRead(t, b, name, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back %d bytes that differ", n, len(got))
		}
		got, err := storage.ReadAll(ctx, b, name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadAll %d bytes: %d bytes, %v", n, len(got), err)
		}
		oi, err := b.Stat(ctx, name)
		if err != nil || oi.Size != int64(n) || oi.Name != name {
			t.Fatalf("stat: %+v %v; want size %d", oi, err, n)
		}
		sane(t, "stat "+name, oi.ModTime)
	}
	// Names at the top level and deep down work too.
	for _, name := range []string{"lifeboat.json", "a/b/c/d/e/f", "K_x-1.y"} {
		if err := b.Put(ctx, name, []byte(name)); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
		if got := mustRead(t, b, name, 0, -1); string(got) != name {
			t.Fatalf("get %s: %q", name, got)
		}
	}
}

func testListSeesPut(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	for i := range 5 {
		name := fmt.Sprintf("condemned/%d", i)
		data := randData(100 + i)
		if err := b.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
		var got []storage.ObjectInfo
		if err := b.List(ctx, "condemned/", func(oi storage.ObjectInfo) error { got = append(got, oi); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != i+1 {
			t.Fatalf("list right after put %d: %d objects", i, len(got))
		}
		i := slices.IndexFunc(got, func(oi storage.ObjectInfo) bool { return oi.Name == name })
		if i < 0 {
			t.Fatalf("list right after put does not show %s: %v", name, got)
		}
		if got[i].Size != int64(len(data)) {
			t.Errorf("list: size %d, want %d", got[i].Size, len(data))
		}
		sane(t, "list "+name, got[i].ModTime)
		st, err := b.Stat(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		// List and Stat may round differently (S3: milliseconds, seconds).
		if d := got[i].ModTime.Sub(st.ModTime); d < -time.Second || d > time.Second {
			t.Errorf("list ModTime %v, stat ModTime %v", got[i].ModTime, st.ModTime)
		}
	}
}

func testNeverOverwrites(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	if err := b.Put(ctx, "points/p1", []byte("first")); err != nil {
		t.Fatal(err)
	}
	for _, second := range [][]byte{[]byte("second, longer"), []byte("first"), nil} {
		err := b.Put(ctx, "points/p1", second)
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second put (%q): %v, want ErrExists", second, err)
		}
	}
	if got := mustRead(t, b, "points/p1", 0, -1); string(got) != "first" {
		t.Fatalf("object overwritten: %q", got)
	}
}

func testConcurrentSameName(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	for round := range 3 {
		name := fmt.Sprintf("index/race%d", round)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		payloads := make([][]byte, n)
		for i := range n {
			payloads[i] = randData(200<<10 + i)
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = b.Put(ctx, name, payloads[i]) }()
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
			t.Fatalf("%d puts won, want exactly 1", wins)
		}
		got := mustRead(t, b, name, 0, -1)
		winner := -1
		for i, p := range payloads {
			if bytes.Equal(p, got) {
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("stored object (%d bytes) is none of the candidates, or incomplete", len(got))
		}
		if errs[winner] != nil {
			t.Fatalf("the stored content is that of a put that failed (%v)", errs[winner])
		}
	}
}

func testConcurrentManyNames(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	var want []string
	for i := range n {
		name := fmt.Sprintf("data/%02x/obj%d", i%8, i) // new directories, shared
		want = append(want, name)
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = b.Put(ctx, name, []byte(name)) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if got := list(t, b, "data/"); fmt.Sprint(got) != fmt.Sprint(sorted(want)) {
		t.Fatalf("list: %v\nwant %v", got, sorted(want))
	}
	for _, name := range want {
		if got := mustRead(t, b, name, 0, -1); string(got) != name {
			t.Fatalf("get %s: %q", name, got)
		}
	}
}

func testRanges(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	const size = 10000
	data := randData(size)
	if err := b.Put(ctx, "data/00/r", data); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ off, n int64 }{
		{0, 10}, {5000, 100}, {9990, -1}, {9990, 100}, {0, -1}, {0, size}, {9999, 1},
		{size, 5}, {size, -1}, {size + 10, -1}, {size + 10, 3}, {123, 0}, {0, 0},
	} {
		want := data[min(c.off, size):]
		if c.n >= 0 && c.n < int64(len(want)) {
			want = want[:c.n]
		}
		if got := mustRead(t, b, "data/00/r", c.off, c.n); !bytes.Equal(got, want) {
			t.Errorf("range %d+%d: got %d bytes, want %d", c.off, c.n, len(got), len(want))
		}
	}
	if err := b.Put(ctx, "data/00/empty", nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ off, n int64 }{{0, -1}, {0, 10}, {5, -1}} {
		if got := mustRead(t, b, "data/00/empty", c.off, c.n); len(got) != 0 {
			t.Errorf("empty object, range %d+%d: %d bytes", c.off, c.n, len(got))
		}
	}
	if _, err := b.Get(ctx, "data/00/r", -1, 10); err == nil {
		t.Error("negative offset accepted")
	}
}

func testMissing(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	b.Put(ctx, "data/00/other", []byte("x"))
	for _, name := range []string{"data/00/none", "data/ff/none", "none"} {
		if _, err := b.Get(ctx, name, 0, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("get %s: %v", name, err)
		}
		if _, err := b.Get(ctx, name, 10, 5); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ranged get %s: %v", name, err)
		}
		if _, err := b.Get(ctx, name, 0, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("empty get %s: %v", name, err)
		}
		if _, err := b.Stat(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("stat %s: %v", name, err)
		}
		if err := b.Delete(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("delete %s: %v", name, err)
		}
	}
}

func testList(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	names := []string{"data/a/0", "data/ab/1", "data/ab/2", "data/abc/3", "data/b/4", "data/ab/x/y/5", "index/6", "lifeboat.json", "lifeboat.json.bak"}
	for _, n := range names {
		if err := b.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	for prefix, want := range map[string][]string{
		"":               names,
		"data/":          {"data/a/0", "data/ab/1", "data/ab/2", "data/abc/3", "data/b/4", "data/ab/x/y/5"},
		"data/a":         {"data/a/0", "data/ab/1", "data/ab/2", "data/abc/3", "data/ab/x/y/5"},
		"data/a/":        {"data/a/0"},
		"data/ab":        {"data/ab/1", "data/ab/2", "data/abc/3", "data/ab/x/y/5"},
		"data/ab/":       {"data/ab/1", "data/ab/2", "data/ab/x/y/5"},
		"data/ab/x/y/":   {"data/ab/x/y/5"},
		"data/ab/1":      {"data/ab/1"},
		"data/ab/1/":     nil,
		"index/":         {"index/6"},
		"keys/":          nil,
		"d":              {"data/a/0", "data/ab/1", "data/ab/2", "data/abc/3", "data/b/4", "data/ab/x/y/5"},
		"lifeboat.json":  {"lifeboat.json", "lifeboat.json.bak"},
		"lifeboat.json/": nil,
		"zzz":            nil,
	} {
		if got := list(t, b, prefix); fmt.Sprint(got) != fmt.Sprint(sorted(want)) {
			t.Errorf("list %q: %v, want %v", prefix, got, sorted(want))
		}
	}
	var sizes []int64
	b.List(ctx, "data/ab/", func(oi storage.ObjectInfo) error { sizes = append(sizes, oi.Size); return nil })
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[9 9 13]" {
		t.Errorf("list sizes %v", sizes)
	}
	stop := errors.New("stop")
	calls := 0
	if err := b.List(ctx, "", func(storage.ObjectInfo) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("list callback error: %v after %d calls", err, calls)
	}
	if err := b.List(ctx, "../", func(storage.ObjectInfo) error { return nil }); err == nil {
		t.Error("list with prefix ../ accepted")
	}
}

func testDeleteThenPut(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	b.Put(ctx, "data/ab/1", []byte("one"))
	b.Put(ctx, "data/ab/2", []byte("two"))
	if err := b.Delete(ctx, "data/ab/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "data/ab/1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stat after delete: %v", err)
	}
	if _, err := b.Get(ctx, "data/ab/1", 0, -1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if got := list(t, b, "data/ab/"); fmt.Sprint(got) != "[data/ab/2]" {
		t.Errorf("list after delete: %v", got)
	}
	if err := b.Delete(ctx, "data/ab/1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if err := b.Put(ctx, "data/ab/1", []byte("again")); err != nil {
		t.Fatalf("put after delete: %v", err)
	}
	if got := mustRead(t, b, "data/ab/1", 0, -1); string(got) != "again" {
		t.Errorf("after delete and put: %q", got)
	}
}

func testBadNames(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	b.Put(ctx, "data/ab/x", []byte("x"))
	for _, name := range []string{"", "/abs", "../x", "data/../x", "data//x", "data/./x", "data/ab/", ".", "..", "a\x00b", `a\b`, "a b", "data/ab/x?y"} {
		errs := map[string]error{"put": b.Put(ctx, name, []byte("x")), "delete": b.Delete(ctx, name)}
		_, errs["get"] = b.Get(ctx, name, 0, -1)
		_, errs["stat"] = b.Stat(ctx, name)
		for op, err := range errs {
			switch {
			case err == nil:
				t.Errorf("%s %q accepted", op, name)
			case errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExists):
				t.Errorf("%s %q: %v: an invalid name is neither missing nor taken", op, name, err)
			case !bytes.Contains([]byte(err.Error()), []byte(strconv.Quote(name))):
				t.Errorf("%s %q: error %q does not name it", op, name, err)
			}
		}
	}
	if got := list(t, b, ""); fmt.Sprint(got) != "[data/ab/x]" {
		t.Errorf("after invalid puts: %v", got)
	}
}

func testCancelled(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	b.Put(ctx, "data/00/there", []byte("x"))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	errs := map[string]error{
		"put":    b.Put(cctx, "data/00/c", []byte("x")),
		"delete": b.Delete(cctx, "data/00/there"),
		"list":   b.List(cctx, "", func(storage.ObjectInfo) error { return nil }),
	}
	_, errs["get"] = b.Get(cctx, "data/00/there", 0, -1)
	_, errs["stat"] = b.Stat(cctx, "data/00/there")
	for op, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", op, err)
		}
	}
	if _, err := b.Stat(ctx, "data/00/c"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a put with a cancelled context stored the object: %v", err)
	}
	if _, err := b.Stat(ctx, "data/00/there"); err != nil {
		t.Errorf("a delete with a cancelled context deleted the object: %v", err)
	}
}

func testStreamer(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	s, ok := b.(storage.Streamer)
	if !ok {
		t.Log("backend does not implement storage.Streamer: nothing to check")
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
	if got := list(t, b, "data/ab/"); len(got) != 0 {
		t.Errorf("listed before commit: %v", got)
	}
	w.Write([]byte("world"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, b, "data/ab/stream", 0, -1); string(got) != "hello world" {
		t.Errorf("streamed object: %q", got)
	}
	w2, err := s.Create(ctx, "data/ab/aborted")
	if err != nil {
		t.Fatal(err)
	}
	w2.Write([]byte("nope"))
	if err := w2.Abort(); err != nil {
		t.Errorf("abort: %v", err)
	}
	if got := list(t, b, "data/ab/"); fmt.Sprint(got) != "[data/ab/stream]" {
		t.Errorf("after abort: %v", got)
	}
	if _, err := s.Create(ctx, "data/ab/stream"); !errors.Is(err, storage.ErrExists) {
		t.Errorf("create of an existing name: %v", err)
	}
	w3, err := s.Create(ctx, "data/ab/race")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "data/ab/race", []byte("first")); err != nil {
		t.Fatal(err)
	}
	w3.Write([]byte("second"))
	if err := w3.Commit(); !errors.Is(err, storage.ErrExists) {
		t.Errorf("commit over an existing object: %v", err)
	}
	if got := mustRead(t, b, "data/ab/race", 0, -1); string(got) != "first" {
		t.Errorf("object overwritten by commit: %q", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	w4, err := s.Create(cctx, "data/ab/cancelled")
	if err != nil {
		t.Fatal(err)
	}
	w4.Write([]byte("x"))
	cancel()
	if err := w4.Commit(); !errors.Is(err, context.Canceled) {
		t.Errorf("commit after cancel: %v", err)
	}
	if _, err := b.Stat(ctx, "data/ab/cancelled"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a commit after cancel stored the object: %v", err)
	}
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
		t.Fatalf("read %s %d+%d: %v", name, off, n, err)
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
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
