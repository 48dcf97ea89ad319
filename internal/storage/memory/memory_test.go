package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return memory.New() })
}

func TestClockIsInjectable(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	b.Now = func() time.Time { return now }
	if err := b.Put(ctx, "condemned/x", []byte("t")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if err := b.Put(ctx, "condemned/y", nil); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]time.Time{"condemned/x": now.Add(-time.Hour), "condemned/y": now} {
		oi, err := b.Stat(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !oi.ModTime.Equal(want) {
			t.Errorf("stat %s: ModTime %v, want %v", name, oi.ModTime, want)
		}
	}
	var listed []time.Time
	b.List(ctx, "condemned/x", func(oi storage.ObjectInfo) error { listed = append(listed, oi.ModTime); return nil })
	if len(listed) != 1 || !listed[0].Equal(now.Add(-time.Hour)) {
		t.Errorf("list: %v", listed)
	}
}

func TestMutate(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	b.Put(ctx, "data/aa/x", []byte("abc"))
	r, err := b.Get(ctx, "data/aa/x", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Mutate("data/aa/x", func(d []byte) []byte { d[0] = 'X'; return d }) {
		t.Fatal("mutate of an existing object reported false")
	}
	if b.Mutate("data/aa/none", func(d []byte) []byte { return d }) {
		t.Error("mutate of a missing object reported true")
	}
	buf := make([]byte, 3)
	r.Read(buf)
	if string(buf) != "abc" {
		t.Errorf("a reader opened before Mutate saw %q", buf)
	}
	got, _ := storage.ReadAll(ctx, b, "data/aa/x")
	if string(got) != "Xbc" {
		t.Errorf("after mutate: %q", got)
	}
}
