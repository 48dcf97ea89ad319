package vault

import (
	"context"

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
