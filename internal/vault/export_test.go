package vault

import (
	"context"
	"fmt"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/pack"

	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// PacksOf returns the object names of the packs the in-memory index says
// the points' blobs live in (tests compare them with what a collection keeps).
func PacksOf(ctx context.Context, v *Vault, pts []*manifest.Point) (map[string]bool, error) {
	out := map[string]bool{}
	for _, p := range pts {
		root := &tree.Node{Type: tree.Dir, Subtree: &p.Root}
		out[mustLoc(v, p.Root)] = true
		err := v.Walk(ctx, root, "", func(_ string, n *tree.Node) error {
			if n.Subtree != nil {
				out[mustLoc(v, *n.Subtree)] = true
			}
			for _, e := range n.Content {
				if e.ID != nil {
					out[mustLoc(v, *e.ID)] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func mustLoc(v *Vault, id [32]byte) string {
	l, ok := v.idx.Lookup(id)
	if !ok {
		return "missing"
	}
	return l.Pack.ObjectName()
}

// PackKeyVersions returns the data key versions in a pack's headers: its
// trailer's, then each blob's (tests check that re-encryption left none old).
func PackKeyVersions(ctx context.Context, v *Vault, name string) ([]uint32, error) {
	p, err := blob.ParsePackName(name)
	if err != nil {
		return nil, err
	}
	data, err := storage.ReadAll(ctx, v.be, name)
	if err != nil {
		return nil, err
	}
	es, err := v.readPackTrailer(ctx, p, data)
	if err != nil {
		return nil, err
	}
	tl := pack.TrailerLength(data[len(data)-4:])
	tv, _ := crypto.KeyVersion(data[len(data)-4-int(tl):])
	out := []uint32{tv}
	for _, e := range es {
		bv, ok := crypto.KeyVersion(data[e.Offset : e.Offset+e.Length])
		if !ok {
			return nil, fmt.Errorf("blob %s in %s: no envelope header", e.ID, name)
		}
		out = append(out, bv)
	}
	return out, nil
}

// IsFeatureObject reports whether an object under keys/ is a feature object.
var IsFeatureObject = isFeatureObject

// SetPwrite replaces the pwrite(2) restores write files with, until the
// returned function runs. f is called from several goroutines at once.
func SetPwrite(f func(fd int, p []byte, off int64) (int, error)) (reset func()) {
	old := pwrite
	pwrite = f
	return func() { pwrite = old }
}

// RacySlack is how long before a backup's start a file must have last
// changed for the next backup to trust it unchanged.
const RacySlack = racySlack

// SetFchown replaces the fchown(2) restores set owners with, until the
// returned function runs.
func SetFchown(f func(fd, uid, gid int) error) (reset func()) {
	old := fchown
	fchown = f
	return func() { fchown = old }
}

// SetSessionBeat sets how often write sessions write a heartbeat (in real
// time; staleness stays measured in storage time) until the returned
// function runs.
func SetSessionBeat(d time.Duration) (reset func()) {
	old := sessionBeat
	sessionBeat = d
	return func() { sessionBeat = old }
}
