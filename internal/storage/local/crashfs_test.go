package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/storagetest"
)

func TestConformanceOnCrashFS(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := Create("/vault", Options{FS: NewCrashFS()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestCrashFSModel(t *testing.T) {
	c := NewCrashFS()
	c.Mkdir("/d")
	c.SyncDir("/")
	f, _ := c.CreateExcl("/d/a")
	f.Write([]byte("hello"))
	f.Sync()
	f.Write([]byte(" world")) // not synced
	c.SyncDir("/d")
	g, _ := c.CreateExcl("/d/b") // entry not synced
	g.Write([]byte("x"))
	g.Sync()
	c.Mkdir("/e") // parent not synced
	c.Crash()
	r, err := c.Open("/d/a")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 20)
	n, _ := r.ReadAt(buf, 0)
	if string(buf[:n]) != "hello" {
		t.Errorf("after crash: %q", buf[:n])
	}
	if _, err := c.Stat("/d/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unsynced entry survived: %v", err)
	}
	if _, err := c.Stat("/e"); err == nil {
		t.Errorf("unsynced directory survived")
	}
	c.SetFailAfter(1)
	if err := c.Mkdir("/x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir("/y"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("after the failure point: %v", err)
	}
	if _, err := c.Stat("/"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("reads after the failure point: %v", err)
	}
	c.Crash()
	if _, err := c.Stat("/x"); err == nil {
		t.Errorf("unsynced mkdir survived")
	}
}

// powerLossRun writes objects with the machine dying at a random moment, then
// crashes it, and returns how many acknowledged objects were lost or damaged.
func powerLossRun(t *testing.T, skip string, seed uint64) (acked, lost int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 42))
	c := NewCrashFS()
	b, err := Create("/srv/vault", Options{FS: c, SkipSync: skip})
	if err != nil {
		t.Fatal(err)
	}
	if skip == "" {
		c.Crash() // Create itself must be durable
	}
	b, _ = Open("/srv/vault", Options{FS: c, SkipSync: skip})
	want := map[string][]byte{}
	c.SetFailAfter(r.IntN(60))
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s/%02x/obj%d", []string{"data", "index", "points"}[i%3], r.IntN(4), i)
		data := bytes.Repeat([]byte{byte(i)}, 1+r.IntN(5000))
		if err := b.Put(context.Background(), name, data); err != nil {
			if !errors.Is(err, ErrCrashed) {
				t.Fatalf("put: %v", err)
			}
			break
		}
		want[name] = data
		if i > 200 {
			break
		}
	}
	c.Crash()
	b, err = Open("/srv/vault", Options{FS: c})
	if err != nil {
		return len(want), len(want)
	}
	for name, data := range want {
		got, err := storage.ReadAll(context.Background(), b, name)
		if err != nil || !bytes.Equal(got, data) {
			lost++
		}
	}
	// Unacknowledged objects may be missing but never partial.
	b.List(context.Background(), "", func(oi storage.ObjectInfo) error {
		if _, ok := want[oi.Name]; !ok && skip == "" {
			got, _ := storage.ReadAll(context.Background(), b, oi.Name)
			if len(got) == 0 {
				t.Errorf("partial unacknowledged object %s", oi.Name)
			}
		}
		return nil
	})
	return len(want), lost
}

func TestPowerLossKeepsAcknowledgedPuts(t *testing.T) {
	total := 0
	for seed := range uint64(200) {
		acked, lost := powerLossRun(t, "", seed)
		total += acked
		if lost > 0 {
			t.Fatalf("seed %d: %d of %d acknowledged objects lost", seed, lost, acked)
		}
	}
	if total == 0 {
		t.Fatal("no put was ever acknowledged: the test proves nothing")
	}
}

// TestEveryFsyncIsNeeded: without any one of the backend's fsyncs, power loss
// loses acknowledged objects — so the test above would catch its removal.
func TestEveryFsyncIsNeeded(t *testing.T) {
	for _, site := range []string{"file", "dir", "mkdir-parent"} {
		lost := 0
		for seed := range uint64(50) {
			_, l := powerLossRun(t, site, seed)
			lost += l
		}
		if lost == 0 {
			t.Errorf("skipping the %q fsync lost nothing: the power-loss test cannot see it", site)
		}
	}
}
