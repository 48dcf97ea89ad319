package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// Vault lock modes.
const (
	LockGovernance = "governance" // weakening or removing it needs two-person approval
	LockCompliance = "compliance" // once in force, nobody can weaken or remove it
)

// VaultLock is a vault's minimum retention: no point of the vault younger
// than MinRetention is deleted, whatever the policies say.
type VaultLock struct {
	Vault        string            `json:"vault"`
	Mode         string            `json:"mode"`
	MinRetention lifeboat.Duration `json:"minRetention"`
	// CoolingOff (compliance): the lock is in force from EffectiveAt =
	// set time + CoolingOff; until then it can still be removed.
	CoolingOff  lifeboat.Duration `json:"coolingOff,omitempty"`
	EffectiveAt time.Time         `json:"effectiveAt"`
	SetBy       string            `json:"setBy"`
	SetAt       time.Time         `json:"setAt"`
}

// LockRequest sets or changes a vault lock.
type LockRequest struct {
	Mode         string            `json:"mode"`
	MinRetention lifeboat.Duration `json:"minRetention"`
	CoolingOff   lifeboat.Duration `json:"coolingOff,omitempty"`
}

const (
	minCoolingOff = 24 * time.Hour
	maxLockTerm   = 100 * 365 * 24 * time.Hour
)

func (s *Server) vaultLock(ctx context.Context, tx *catalog.Tx, vault string) (*VaultLock, error) {
	doc, err := tx.VaultLock(ctx, vault)
	if err == catalog.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l VaultLock
	if err := json.Unmarshal(doc, &l); err != nil {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "catalog: unreadable lock of vault %s", vault)
	}
	return &l, nil
}

// lockOf returns vault's lock, or nil.
func (s *Server) lockOf(ctx context.Context, vault string) (*VaultLock, error) {
	var l *VaultLock
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		l, err = s.vaultLock(ctx, tx, vault)
		return err
	})
	return l, err
}

// inForce: a compliance lock past its cooling-off period.
func (l *VaultLock) inForce(now time.Time) bool {
	return l != nil && l.Mode == LockCompliance && !now.Before(l.EffectiveAt)
}

func (s *Server) getVaultLock(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	l, err := s.lockOf(r.Context(), r.PathValue("vault"))
	if err != nil {
		return err
	}
	if l == nil {
		return lifeboat.Errorf(lifeboat.ENotFound, "vault %s has no lock", r.PathValue("vault"))
	}
	return writeJSON(w, http.StatusOK, l)
}

// putVaultLock: PUT /api/v1/vaults/{vault}/lock. Setting a lock, or making
// one stronger (longer retention, governance to compliance), runs at once;
// weakening a governance lock waits for approval; a compliance lock in
// force cannot be weakened at all.
func (s *Server) putVaultLock(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	name := r.PathValue("vault")
	var req LockRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	switch {
	case req.Mode != LockGovernance && req.Mode != LockCompliance:
		return lifeboat.Errorf(lifeboat.EInvalid, "vault %s lock: mode %q: want governance or compliance", name, req.Mode)
	case req.MinRetention.D() <= 0 || req.MinRetention.D() > maxLockTerm:
		return lifeboat.Errorf(lifeboat.EInvalid, "vault %s lock: minRetention %v: want a positive duration (e.g. 30d), at most 100 years", name, req.MinRetention)
	case req.Mode == LockCompliance && req.CoolingOff.D() < minCoolingOff:
		return lifeboat.Errorf(lifeboat.EInvalid, "vault %s lock: compliance mode needs a cooling-off period of at least %v, shown before it takes effect (coolingOff)", name, lifeboat.Duration(minCoolingOff))
	}
	var rec *catalog.VaultRecord
	var old *VaultLock
	var approvers string
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		if rec, err = tx.Vault(ctx, name); err != nil {
			return notFound(err, "vault", name)
		}
		if approvers, err = vaultApprovers(ctx, tx, name); err != nil {
			return err
		}
		old, err = s.vaultLock(ctx, tx, name)
		return err
	})
	if err != nil {
		return err
	}
	if req.Mode == LockCompliance {
		// Compliance is enforced by the storage itself (S3 object lock,
		// checked here); a local directory never can.
		if !strings.HasPrefix(rec.Location, "s3://") {
			return lifeboat.Errorf(lifeboat.EInvalid, "vault %s is on local storage: compliance mode needs an S3 bucket with object lock; the local backend offers governance mode only (enforced by Lifeboat, not by the storage)", name)
		}
		v, err := s.vaults.get(ctx, name)
		if err != nil {
			return err
		}
		if err := v.ObjectLock(ctx); err != nil {
			return err // names the location and what is missing
		}
	}
	now := s.now()
	if weaker := weakens(old, &req, now); weaker != "" {
		if old.inForce(now) {
			return lifeboat.Errorf(lifeboat.EForbidden, "vault %s has a compliance lock in force since %s: nobody can %s", name, old.EffectiveAt.Format(time.RFC3339), weaker)
		}
		if err := s.needApproval(r, p, approvers, "vault.lock-weaken", "vault:"+name, fmt.Sprintf("weakens the lock of vault %s: %s", name, weaker)); err != nil {
			return err
		}
	}
	l := &VaultLock{Vault: name, Mode: req.Mode, MinRetention: req.MinRetention, CoolingOff: req.CoolingOff, EffectiveAt: now.Add(req.CoolingOff.D()), SetBy: p.Name, SetAt: now}
	doc, err := json.Marshal(l)
	if err != nil {
		return err
	}
	// The vault records its lock first (it owns it, and it binds the
	// offline CLI and survives the catalog); then the catalog.
	lockChangeMu.Lock()
	defer lockChangeMu.Unlock()
	if err := s.recordLock(ctx, name, l); err != nil {
		return err
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.PutVaultLock(ctx, name, doc); err != nil {
			return err
		}
		return tx.Audit(ctx, p.Name, "vault.lock", "vault:"+name, "ok", l)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

// weakens says how req would weaken old ("" if it does not).
func weakens(old *VaultLock, req *LockRequest, now time.Time) string {
	if old == nil {
		return ""
	}
	var w []string
	if req.MinRetention < old.MinRetention {
		w = append(w, fmt.Sprintf("shorten its minimum retention from %v to %v", old.MinRetention, req.MinRetention))
	}
	if old.Mode == LockCompliance && req.Mode != LockCompliance {
		w = append(w, "turn compliance mode into governance")
	}
	return strings.Join(w, " and ")
}

// deleteVaultLock: DELETE /api/v1/vaults/{vault}/lock. Governance: waits
// for approval. Compliance in force: refused, to everyone.
func (s *Server) deleteVaultLock(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	name := r.PathValue("vault")
	old, err := s.lockOf(ctx, name)
	if err != nil {
		return err
	}
	if old == nil {
		return lifeboat.Errorf(lifeboat.ENotFound, "vault %s has no lock", name)
	}
	if old.inForce(s.now()) {
		return lifeboat.Errorf(lifeboat.EForbidden, "vault %s has a compliance lock in force since %s: nobody can remove it", name, old.EffectiveAt.Format(time.RFC3339))
	}
	approvers, err := s.approversOf(ctx, name)
	if err != nil {
		return err
	}
	if err := s.needApproval(r, p, approvers, "vault.unlock", "vault:"+name, "removes the "+old.Mode+" lock of vault "+name); err != nil {
		return err
	}
	lockChangeMu.Lock()
	defer lockChangeMu.Unlock()
	if err := s.recordLock(ctx, name, &VaultLock{SetBy: p.Name}); err != nil {
		return err
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.DeleteVaultLock(ctx, name); err != nil {
			return notFound(err, "vault lock", name)
		}
		return tx.Audit(ctx, p.Name, "vault.unlock", "vault:"+name, "ok", old)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// lockChangeMu serialises changes of vault locks in this process: the
// vault's record and the catalog's copy are written one after the other.
var lockChangeMu sync.Mutex

// recordLock writes a change of a vault's lock into the vault (l.Mode
// empty: removed).
func (s *Server) recordLock(ctx context.Context, name string, l *VaultLock) error {
	v, err := s.vaults.get(ctx, name)
	if err != nil {
		return err
	}
	rec := vault.LockRecord{Removed: l.Mode == "", Mode: l.Mode, MinRetention: l.MinRetention.D(), EffectiveAt: l.EffectiveAt, By: l.SetBy}
	if rec.Removed {
		rec.Mode, rec.MinRetention, rec.EffectiveAt = "", 0, time.Time{}
	}
	return v.RecordLock(ctx, rec)
}

// matchLockRecords makes the catalog's vault locks and the vaults' own
// records agree, at start: a vault whose record the catalog lacks (a
// catalog rebuilt after a loss) gets its lock back in the catalog; a lock
// the vault has no record of (set before vaults kept them) is recorded.
// A vault that cannot be opened is logged and skipped.
func (s *Server) matchLockRecords(ctx context.Context) {
	lockChangeMu.Lock()
	defer lockChangeMu.Unlock()
	var names []string
	locks := map[string]*VaultLock{}
	s.db.View(ctx, func(tx *catalog.Tx) error {
		vs, err := tx.Vaults(ctx)
		for _, v := range vs {
			if v.RetiredAt == nil {
				names = append(names, v.Name)
				if l, err := s.vaultLock(ctx, tx, v.Name); err == nil && l != nil {
					locks[v.Name] = l
				}
			}
		}
		return err
	})
	for _, name := range names {
		v, err := s.vaults.get(ctx, name)
		if err != nil {
			s.log.Warn("vault lock record: vault does not open", "vault", name, "err", err)
			continue
		}
		rec, err := v.Lock(ctx)
		if err != nil {
			s.log.Warn("vault lock record unreadable", "vault", name, "err", err)
			continue
		}
		cur := locks[name]
		switch {
		case cur == nil && rec != nil:
			l := &VaultLock{Vault: name, Mode: rec.Mode, MinRetention: lifeboat.Duration(rec.MinRetention), EffectiveAt: rec.EffectiveAt, SetBy: rec.By, SetAt: rec.Time}
			if !l.EffectiveAt.IsZero() && l.EffectiveAt.After(rec.Time) {
				l.CoolingOff = lifeboat.Duration(l.EffectiveAt.Sub(rec.Time))
			}
			doc, _ := json.Marshal(l)
			err = s.db.Update(ctx, func(tx *catalog.Tx) error {
				if err := tx.PutVaultLock(ctx, name, doc); err != nil {
					return err
				}
				return tx.Audit(ctx, "system:startup", "vault.lock", "vault:"+name, "ok", map[string]any{"restored": "from the vault's own record", "lock": l})
			})
		case cur != nil && rec == nil:
			err = s.recordLock(ctx, name, cur)
		}
		if err != nil {
			s.log.Warn("vault lock record", "vault", name, "err", err)
		}
	}
}
