package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/jobs"
	"github.com/lifeboat-vault/lifeboat/internal/keys"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// KeyRotateRequest asks for a key rotation of a vault.
type KeyRotateRequest struct {
	// DataKey also starts a new data key version: new data is sealed
	// under it, old data stays readable under the old one.
	DataKey bool `json:"dataKey,omitempty"`
	// Reencrypt also starts a job that rewrites everything sealed under
	// older data keys under the current one.
	Reencrypt bool `json:"reencrypt,omitempty"`
}

// KeyRotateResult says what a rotation did.
type KeyRotateResult struct {
	Vault       string        `json:"vault"`
	NewSlot     string        `json:"newSlot"`
	RetiredSlot string        `json:"retiredSlot,omitempty"`
	DataKey     uint32        `json:"dataKey"` // the current data key version
	Reencrypt   *lifeboat.Job `json:"reencrypt,omitempty"`
}

// keyMu serialises key operations (two rotations retiring each other's
// slots could lock a vault).
var keyMu sync.Mutex

// serverSlotKey names the server setting holding the id of the key slot
// the server's own passphrase opens, per vault.
func serverSlotKey(vault string) string { return "vault-slot/" + vault }

// keyVault opens a vault for a key operation (the caller holds keyMu) and
// returns it with the id of the key slot the server's own passphrase
// opens: as last recorded, else the one it was opened with.
func (s *Server) keyVault(ctx context.Context, name string) (*vault.Vault, string, error) {
	v, err := s.vaults.get(ctx, name)
	if err != nil {
		return nil, "", err
	}
	id := v.OpenedSlot()
	err = s.db.View(ctx, func(tx *catalog.Tx) error {
		if rec, err := tx.Setting(ctx, serverSlotKey(name)); err == nil && rec != "" {
			id = rec
		}
		return nil
	})
	return v, id, err
}

// rotateKeys: POST /api/v1/vaults/{vault}/keys/rotate. A new server
// passphrase (key-encryption key) wraps the vault's keys in a new slot,
// verified before anything else; the new passphrase is recorded (sealed
// in the catalog and in vault-keys/NAME.passphrase); only then is the
// server's previous slot retired. Slots the operator exported stay. No data
// is rewritten. With dataKey, a new data key version becomes current; with
// reencrypt, a job rewrites old data under it.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	name := r.PathValue("vault")
	var req KeyRotateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	keyMu.Lock()
	defer keyMu.Unlock()
	v, old, err := s.keyVault(ctx, name)
	if err != nil {
		return err
	}
	pass := keys.RandomPassphrase()
	newID, err := v.RotateKeySlot(ctx, []byte(pass), "")
	if err != nil {
		return err
	}
	// The new passphrase is recorded before the old slot goes: a crash in
	// between leaves two slots that both open the vault.
	keyFile := filepath.Join(s.cfg.DataDir, VaultKeysDir, name+".passphrase")
	tmp := keyFile + ".new"
	os.Remove(tmp)
	if err := keys.WriteSecretFile(tmp, []byte(pass+"\n")); err != nil {
		return err
	}
	if err := os.Rename(tmp, keyFile); err != nil {
		return err
	}
	res := &KeyRotateResult{Vault: name, NewSlot: newID}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.SetVaultKey(ctx, name, s.mk.Seal(passName(name), []byte(pass))); err != nil {
			return notFound(err, "vault", name)
		}
		if err := tx.PutSetting(ctx, serverSlotKey(name), newID); err != nil {
			return err
		}
		return tx.Audit(ctx, p.Name, "key.rotate", "vault:"+name, "ok", map[string]string{"newSlot": newID, "retiring": old})
	})
	if err != nil {
		return err
	}
	if old != "" && old != newID {
		if _, err := v.RotateKeySlot(ctx, nil, old); err != nil && lifeboat.ErrorCode(err) != lifeboat.ENotFound {
			return err
		}
		res.RetiredSlot = old
	}
	if req.DataKey {
		ver, err := v.RotateDataKey(ctx)
		if err != nil {
			return err
		}
		if err := s.db.Update(ctx, func(tx *catalog.Tx) error {
			return tx.Audit(ctx, p.Name, "key.rotate-data-key", "vault:"+name, "ok", map[string]any{"version": ver})
		}); err != nil {
			return err
		}
	}
	res.DataKey = v.CurrentDataKey()
	// The open vault forgets the retired slot: the next use opens it anew
	// with the new passphrase.
	s.vaults.evict(name)
	if req.Reencrypt {
		spec, _ := json.Marshal(req)
		j, _, err := s.enqueue(ctx, p.Name, &lifeboat.Job{Kind: lifeboat.JobReencrypt, Vault: name, RequestedBy: p.Name, Spec: spec}, "", "")
		if err != nil {
			return err
		}
		res.Reencrypt = j
	}
	return writeJSON(w, http.StatusOK, res)
}

// keySlots: GET /api/v1/vaults/{vault}/keys: the vault's key slots (which
// one is the server's) and data key versions.
func (s *Server) keySlots(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	ctx := r.Context()
	name := r.PathValue("vault")
	v, err := s.vaults.get(ctx, name)
	if err != nil {
		return err
	}
	slots, err := v.KeySlots(ctx)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"vault": name, "serverSlot": v.OpenedSlot(), "slots": slots, "dataKeys": v.DataKeys()})
}

// runReencrypt rewrites a vault's data sealed under older data keys.
func (s *Server) runReencrypt(ctx context.Context, r *jobs.Run) (any, error) {
	v, err := s.vaults.get(ctx, r.Job.Vault)
	if err != nil {
		return nil, err
	}
	r.Logf(ctx, "info", "re-encrypting vault %s under data key %d", r.Job.Vault, v.CurrentDataKey())
	res, err := v.Reencrypt(ctx, vault.ReencryptOptions{Progress: func(done, total int64) {
		r.Progress(lifeboat.JobProgress{Bytes: done, TotalBytes: total})
	}})
	if err != nil {
		return res, err
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		// The points now read new packs and manifest copies: a compliance
		// lock retains those again.
		if err := tx.ForgetPointRetentions(ctx, r.Job.Vault); err != nil {
			return err
		}
		return tx.Audit(ctx, r.Job.RequestedBy, "key.reencrypt", "vault:"+r.Job.Vault, "ok", res)
	})
	if err == nil {
		if rerr := s.retainVault(ctx, r.Job.Vault); rerr != nil {
			r.Logf(ctx, "warn", "compliance lock: retention of the new packs not set yet (the scheduler retries): %v", rerr)
		}
	}
	r.Logf(ctx, "info", "re-encrypted: %d packs read, %d blobs rewritten into %d packs; %d old packs condemned (deleted after the collector's grace period)", res.PacksRead, res.BlobsRewritten, res.PacksWritten, res.PacksCondemned)
	return res, err
}
