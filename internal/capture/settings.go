package capture

import (
	"context"
	"path/filepath"
	"sort"

	"github.com/lifeboat-vault/lifeboat/internal/capture/config"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
)

// ReadSettings reads the settings of every config component of a point back
// from the vault (the captured files are parsed again, so the settings keyed
// as in Prepared.Settings).
func ReadSettings(ctx context.Context, v *vault.Vault, p *manifest.Point) (config.Settings, error) {
	var out config.Settings
	for _, c := range p.Components {
		if c.Kind != lifeboat.KindConfig {
			continue
		}
		meta, err := readMeta(ctx, v, p, c.Name)
		if err != nil {
			return nil, err
		}
		for _, f := range meta.Files {
			n, err := v.Lookup(ctx, p, c.Name+"/"+f.Stored)
			if err != nil {
				return nil, err
			}
			data, err := v.ReadFile(ctx, n)
			if err != nil {
				return nil, err
			}
			set, err := config.ParseFile(f.Path, data)
			if err != nil {
				return nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s: stored config file %s no longer parses: %v", p.ID[:8], f.Path, err)
			}
			for _, s := range set {
				s.Key = c.Name + "/" + filepath.Base(f.Path) + ":" + s.Key
				out = append(out, s)
			}
		}
		for _, s := range meta.Settings {
			s.Key = c.Name + "/" + s.Key
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
