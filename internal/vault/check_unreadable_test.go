package vault_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
)

// An object the storage refuses to read while it answers for the others (a
// pack with the wrong permissions, an S3 object another account owns):
// check reports it with the points and files it breaks and checks the rest.
// (It stopped at the first such object, exit 6, naming no point.) With the
// storage down altogether it stops, unavailable.
func TestCheckUnreadableObjects(t *testing.T) {
	ctx := context.Background()
	src := resumeSource(t)
	v, h := newHookedVault(t)
	p := mustBackup(t, v, src)
	type sized struct {
		name string
		size int64
	}
	var packs []sized
	h.List(ctx, "data/", func(oi storage.ObjectInfo) error { packs = append(packs, sized{oi.Name, oi.Size}); return nil })
	sort.Slice(packs, func(i, j int) bool { return packs[i].size < packs[j].size })
	refuse := func(name string) func(string) error {
		return func(n string) error {
			if n == name {
				return fmt.Errorf("get %s: %w: permission denied", n, storage.ErrUnavailable)
			}
			return nil
		}
	}
	for _, c := range []struct {
		what, object string
		readData     bool
		path         string // a path the problem must name ("" for a manifest)
	}{
		{"data pack", packs[len(packs)-1].name, true, "app/"},
		{"tree pack", packs[0].name, false, "/"},
		{"manifest", manifest.ObjectName(p.ID), false, ""},
	} {
		h.onGet = refuse(c.object)
		rep, err := reopen(t, h).Check(ctx, vault.CheckOptions{ReadData: c.readData})
		h.onGet = nil
		if err != nil {
			t.Fatalf("%s unreadable: check stopped: %v", c.what, err)
		}
		found := false
		for _, pr := range rep.Problems {
			if pr.Object != c.object {
				t.Errorf("%s unreadable: a problem elsewhere: %+v", c.what, pr)
				continue
			}
			found = true
			if !strings.Contains(pr.What, "could not be read") || len(pr.Points) != 1 || pr.Points[0] != p.ID {
				t.Errorf("%s unreadable: problem %+v does not say so or name the point", c.what, pr)
			}
			if c.path != "" && !slicesHasPrefixed(pr.Paths, p.ID[:8]+":"+c.path) {
				t.Errorf("%s unreadable: problem %+v names no path under %s", c.what, pr, c.path)
			}
		}
		if !found {
			t.Errorf("%s unreadable: not reported: %+v", c.what, rep.Problems)
		}
		if c.readData && rep.PacksRead != len(packs)-1 {
			t.Errorf("%s unreadable: %d packs read of the %d others", c.what, rep.PacksRead, len(packs)-1)
		}
	}

	vv := reopen(t, h)
	h.onGet = func(n string) error { return fmt.Errorf("get %s: %w: connection refused", n, storage.ErrUnavailable) }
	if _, err := vv.Check(ctx, vault.CheckOptions{ReadData: true}); lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
		t.Errorf("check with the storage down: %v, want unavailable", err)
	}
}

func slicesHasPrefixed(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// A restore that needs a data key another process added, while the storage
// fails to give that key's object: the restore fails as unavailable (exit
// 6), not as damage, and the failure is not remembered: once the storage
// answers, the same handle restores the point.
func TestRestoreDataKeyFetchFails(t *testing.T) {
	ctx := context.Background()
	src := resumeSource(t)
	v, h := newHookedVault(t)
	old := reopen(t, h) // knows only the first data key
	ver, err := v.RotateDataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := mustBackup(t, v, src) // sealed under the new key
	h.onGet = func(n string) error {
		if strings.HasPrefix(n, "datakeys/") {
			return fmt.Errorf("get %s: %w: connection reset", n, storage.ErrUnavailable)
		}
		return nil
	}
	_, err = old.Restore(ctx, p, vault.RestoreOptions{Target: t.TempDir() + "/r"})
	if lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
		t.Fatalf("restore needing data key %d, its object unreadable: %v, want unavailable", ver, err)
	}
	h.onGet = nil
	mustRestoreEqual(t, old, p.ID, "app", snapshot(t, src))
}
