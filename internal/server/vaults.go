package server

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/keys"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage/location"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// vaultCreds are an S3 vault's endpoint and credentials, sealed in the
// catalog under "vault/NAME/s3".
type vaultCreds struct {
	Endpoint  string `json:"endpoint,omitempty"`
	AccessKey string `json:"accessKey,omitempty"`
	SecretKey string `json:"secretKey,omitempty"`
	Region    string `json:"region,omitempty"`
}

func passName(vault string) string  { return "vault/" + vault + "/passphrase" }
func credsName(vault string) string { return "vault/" + vault + "/s3" }

// vaultSet keeps the server's open vaults.
type vaultSet struct {
	s    *Server
	mu   sync.Mutex
	open map[string]*vault.Vault
}

// createVault initialises a new vault (or adopts an existing one at the
// location, if its passphrase file is in the data directory), and records
// it. The passphrase is generated, written to a 0600 key file in the data
// directory and sealed in the catalog.
func (s *Server) createVault(ctx context.Context, actor string, v *lifeboat.Vault, creds vaultCreds) (*lifeboat.Vault, error) {
	if err := validName("vault", v.Name); err != nil {
		return nil, err
	}
	if v.Region == "" {
		v.Region = "local"
	}
	loc, err := location.Check(v.Location)
	if err != nil {
		return nil, err
	}
	v.Location = loc
	if !location.IsS3(loc) {
		if err := guardDataDir(s.cfg.DataDir, loc); err != nil {
			return nil, err
		}
	}
	keyFile := filepath.Join(s.cfg.DataDir, VaultKeysDir, v.Name+".passphrase")
	pass := keys.RandomPassphrase()
	be, err := location.Open(ctx, s.spec(v.Location, creds), true)
	if err != nil {
		return nil, err
	}
	vv, err := vault.Init(ctx, be, []byte(pass), vault.Options{KDF: s.cfg.VaultKDF, Now: s.now})
	if err != nil {
		be.Close()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return nil, err
	}
	os.Remove(keyFile) // from a vault of the same name that was never recorded
	if err := keys.WriteSecretFile(keyFile, []byte(pass+"\n")); err != nil {
		return nil, err
	}
	rec := &catalog.VaultRecord{Vault: *v, SealedPassphrase: s.mk.Seal(passName(v.Name), []byte(pass))}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		if _, err := tx.Vault(ctx, v.Name); err == nil {
			return lifeboat.Errorf(lifeboat.EExists, "vault %s already exists", v.Name)
		}
		if err := checkApproversGroup(ctx, tx, v.Name, v.Approvers); err != nil {
			return err
		}
		if v.Default {
			if d, err := tx.DefaultVault(ctx, v.Region); err == nil {
				return lifeboat.Errorf(lifeboat.EExists, "region %s already has a default vault (%s)", v.Region, d.Name)
			}
		}
		if err := tx.PutVault(ctx, rec); err != nil {
			return err
		}
		if location.IsS3(loc) {
			cb, _ := json.Marshal(creds)
			if err := tx.PutSecret(ctx, credsName(v.Name), s.mk.Seal(credsName(v.Name), cb)); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, actor, "vault.create", v.Name, "ok", map[string]string{"region": v.Region, "location": v.Location})
	})
	if err != nil {
		vv.Close()
		be.Close()
		return nil, err
	}
	s.vaults.mu.Lock()
	s.vaults.open[v.Name] = vv
	s.vaults.mu.Unlock()
	out := rec.Vault
	return &out, nil
}

func (s *Server) spec(loc string, c vaultCreds) location.Spec {
	return location.Spec{Location: loc, Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Region: c.Region}
}

// get returns the open vault named name, opening it on first use.
func (vs *vaultSet) get(ctx context.Context, name string) (*vault.Vault, error) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if v := vs.open[name]; v != nil {
		return v, nil
	}
	s := vs.s
	var rec *catalog.VaultRecord
	var creds vaultCreds
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		rec, err = tx.Vault(ctx, name)
		if errors.Is(err, catalog.ErrNotFound) {
			return lifeboat.Errorf(lifeboat.ENotFound, "vault %s not found", name)
		}
		if err != nil {
			return err
		}
		if rec.RetiredAt != nil {
			return lifeboat.Errorf(lifeboat.ENotFound, "vault %s was deleted at %s (its storage at %s is left as it was)", name, rec.RetiredAt.Format(time.RFC3339), rec.Location)
		}
		if location.IsS3(rec.Location) {
			sealed, err := tx.Secret(ctx, credsName(name))
			if err != nil {
				return lifeboat.Errorf(lifeboat.EInvalid, "vault %s: no S3 credentials recorded", name)
			}
			cb, err := s.mk.Open(credsName(name), sealed)
			if err != nil {
				return err
			}
			return json.Unmarshal(cb, &creds)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pass, err := s.mk.Open(passName(name), rec.SealedPassphrase)
	if err != nil {
		return nil, err
	}
	be, err := location.Open(ctx, s.spec(rec.Location, creds), false)
	if err != nil {
		return nil, err
	}
	v, err := vault.Open(ctx, be, pass, vault.Options{KDF: s.cfg.VaultKDF, Now: s.now})
	if err != nil {
		be.Close()
		return nil, err
	}
	vs.open[name] = v
	return v, nil
}

// reload forgets an open vault so the next get opens it afresh (its
// index re-read). The old handle is not closed: jobs may still use it.
func (vs *vaultSet) reload(name string) {
	vs.mu.Lock()
	delete(vs.open, name)
	vs.mu.Unlock()
}

// evict forgets the open vault named name: the next get opens it anew.
// It is not closed: jobs running may still use it.
func (vs *vaultSet) evict(name string) {
	vs.mu.Lock()
	delete(vs.open, name)
	vs.mu.Unlock()
}

func (vs *vaultSet) closeAll() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for n, v := range vs.open {
		v.Close()
		v.Backend().Close()
		delete(vs.open, n)
	}
}

func guardDataDir(dataDir, loc string) error {
	d := filepath.Clean(dataDir)
	l := filepath.Clean(loc)
	if l == d || (len(d) > 1 && len(l) > len(d) && l[:len(d)+1] == d+"/" && !underVaults(d, l)) {
		return lifeboat.Errorf(lifeboat.EInvalid, "vault location %s is inside the data directory %s (only %s/vaults/ may hold vaults there)", loc, dataDir, dataDir)
	}
	return nil
}

func underVaults(d, l string) bool {
	v := d + "/vaults/"
	return len(l) > len(v) && l[:len(v)] == v
}

// checkApproversGroup checks that a vault's approvers group ("" for the
// server's) is a group.
func checkApproversGroup(ctx context.Context, tx *catalog.Tx, vault, group string) error {
	if group == "" {
		return nil
	}
	g, err := tx.GetPrincipal(ctx, group)
	if err != nil || g.Kind != lifeboat.KindGroup {
		return lifeboat.Errorf(lifeboat.EInvalid, "vault %s: approvers %q is not a group (create it first: lifeboat group add %s)", vault, group, group)
	}
	return nil
}
