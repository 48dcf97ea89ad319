package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/access"
	"github.com/lifeboat-vault/lifeboat/internal/capture"
	"github.com/lifeboat-vault/lifeboat/internal/capture/config"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/retention"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

func errNoRoute(r *http.Request) error {
	return lifeboat.Errorf(lifeboat.ENotFound, "no API route %s %s", r.Method, r.URL.Path)
}

// ---- health and status ----

func (s *Server) getHealthz(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// VaultStatus is a vault's readiness.
type VaultStatus struct {
	Name          string     `json:"name"`
	Location      string     `json:"location"`
	KeyExported   bool       `json:"keyExported"`
	KeyExportedAt *time.Time `json:"keyExportedAt,omitempty"`
	Warning       string     `json:"warning,omitempty"`
	// KeyAge is how long ago the vault's key-encryption key was made or
	// last rotated.
	KeyAge lifeboat.Duration `json:"keyAge"`
}

// Status is the server's state.
type Status struct {
	Ready    bool           `json:"ready"`
	Catalog  string         `json:"catalog"`
	Vaults   []VaultStatus  `json:"vaults"`
	Warnings []string       `json:"warnings,omitempty"`
	Jobs     map[string]int `json:"jobs,omitempty"`
}

func (s *Server) status(ctx context.Context) (*Status, error) {
	st := &Status{Ready: s.ready.Load(), Catalog: "ok", Warnings: append([]string{}, s.warnings...)}
	s.glassMu.Lock()
	st.Warnings = append(st.Warnings, s.brokenGlass...)
	s.glassMu.Unlock()
	if err := s.db.Ping(ctx); err != nil {
		st.Ready, st.Catalog = false, "unreachable"
		return st, nil
	}
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		vs, err := tx.Vaults(ctx)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if v.RetiredAt != nil {
				continue
			}
			vst := VaultStatus{Name: v.Name, Location: v.Location, KeyExported: v.KeyExportedAt != nil, KeyExportedAt: v.KeyExportedAt}
			if !vst.KeyExported {
				vst.Warning = fmt.Sprintf("the key of vault %s was never exported: run `lifeboat key export --vault %s` and keep the passphrase away from this machine", v.Name, v.Name)
				st.Warnings = append(st.Warnings, vst.Warning)
			}
			st.Vaults = append(st.Vaults, vst)
		}
		// Apps past their policy's RPO (recovery point objective).
		apps, err := allApps(ctx, tx)
		if err != nil {
			return err
		}
		pols, err := allPolicies(ctx, tx)
		if err != nil {
			return err
		}
		now := s.now()
		ix := indexPolicies(pols)
		// Keys older than the shortest rotation period of the policies of
		// the apps in their vault.
		period, by := map[string]time.Duration{}, map[string]string{}
		for _, a := range apps {
			if pol := ix.For(a); pol != nil && pol.KeyRotation > 0 && (period[a.Vault] == 0 || pol.KeyRotation.D() < period[a.Vault]) {
				period[a.Vault], by[a.Vault] = pol.KeyRotation.D(), pol.Name
			}
		}
		recs := map[string]*catalog.VaultRecord{}
		for _, v := range vs {
			recs[v.Name] = v
		}
		for i := range st.Vaults {
			v := &st.Vaults[i]
			born := recs[v.Name].CreatedAt
			if rot := recs[v.Name].KeyRotatedAt; rot != nil {
				born = *rot
			}
			v.KeyAge = lifeboat.Duration(now.Sub(born).Round(time.Second))
			if p := period[v.Name]; p > 0 && now.Sub(born) > p {
				w := fmt.Sprintf("the key of vault %s is %s old, past the rotation period of %s (policy %s): run `lifeboat key rotate --vault %s`", v.Name, lifeboat.Duration(now.Sub(born).Round(time.Hour)), lifeboat.Duration(p), by[v.Name], v.Name)
				st.Warnings = append(st.Warnings, w)
				if v.Warning == "" {
					v.Warning = w
				}
			}
		}
		for _, a := range apps {
			pol := ix.For(a)
			if pol == nil || pol.RPO == 0 {
				continue
			}
			lp, err := tx.LatestPoint(ctx, a.Name, 0, true)
			switch {
			case errors.Is(err, catalog.ErrNotFound):
				if now.Sub(a.CreatedAt) > pol.RPO.D() {
					st.Warnings = append(st.Warnings, fmt.Sprintf("app %s has no complete point, and its RPO is %s", a.Name, pol.RPO))
				}
			case err != nil:
				return err
			case now.Sub(lp.Time) > pol.RPO.D():
				st.Warnings = append(st.Warnings, fmt.Sprintf("app %s: newest complete point is %s old, past its RPO of %s", a.Name, now.Sub(lp.Time).Round(time.Minute), pol.RPO))
			}
		}
		st.Jobs, err = tx.CountJobs(ctx)
		return err
	})
	return st, err
}

func (s *Server) getReadyz(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	st, err := s.status(r.Context())
	if err != nil {
		return err
	}
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	st.Jobs = nil
	return writeJSON(w, code, st)
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	st, err := s.status(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) getWhoami(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	return writeJSON(w, http.StatusOK, p)
}

// ---- vaults ----

// VaultSpec creates a vault: a vault plus, for S3, its endpoint and a
// credentials file on the server (mode 0600; read once and sealed).
type VaultSpec struct {
	lifeboat.Vault  `yaml:",inline"`
	Endpoint        string `json:"endpoint,omitempty" yaml:"endpoint,omitempty"`
	CredentialsFile string `json:"credentialsFile,omitempty" yaml:"credentialsFile,omitempty"`
}

func (s *Server) credsFor(vs *VaultSpec) (vaultCreds, error) {
	c := vaultCreds{Endpoint: vs.Endpoint}
	if !strings.HasPrefix(vs.Location, "s3://") {
		if vs.Endpoint != "" || vs.CredentialsFile != "" {
			return c, lifeboat.Errorf(lifeboat.EInvalid, "vault %s: endpoint and credentialsFile are for s3:// locations", vs.Name)
		}
		return c, nil
	}
	if vs.Endpoint == "" || vs.CredentialsFile == "" {
		return c, lifeboat.Errorf(lifeboat.EInvalid, "vault %s: an s3:// vault needs endpoint and credentialsFile", vs.Name)
	}
	ak, sk, err := readCredsFile(vs.CredentialsFile)
	if err != nil {
		return c, fmt.Errorf("vault %s: %w", vs.Name, err)
	}
	c.AccessKey, c.SecretKey = ak, sk
	return c, nil
}

func vaultView(v *catalog.VaultRecord) lifeboat.Vault { return v.Vault }

func (s *Server) listVaults(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var out []lifeboat.Vault
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		vs, err := tx.Vaults(r.Context())
		for _, v := range vs {
			if access.Decide(p, access.Read, access.Target{Vault: v.Name}).Allow {
				out = append(out, vaultView(v))
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, catalog.Page{Limit: 1 << 30}, func(v lifeboat.Vault) string { return v.Name }))
}

func (s *Server) getVault(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	name := r.PathValue("vault")
	var out lifeboat.Vault
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		v, err := tx.Vault(r.Context(), name)
		if err != nil {
			return notFound(err, "vault", name)
		}
		out = vaultView(v)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) createVaultH(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var vs VaultSpec
	if err := decode(r, &vs); err != nil {
		return err
	}
	creds, err := s.credsFor(&vs)
	if err != nil {
		return err
	}
	v, err := s.createVault(r.Context(), p.Name, &vs.Vault, creds)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

// KeyExportRequest carries the passphrase of the new key slot.
type KeyExportRequest struct {
	Passphrase string `json:"passphrase"`
}

// KeyExportResult says where the vault is and which slot opens it.
type KeyExportResult struct {
	Vault    string `json:"vault"`
	Location string `json:"location"`
	Endpoint string `json:"endpoint,omitempty"` // S3 vaults: the endpoint (credentials are not part of it)
	Slot     string `json:"slot"`
	// SlotData is the new key slot itself (wrapped by the export
	// passphrase), for the disaster kit: key slots are never object-locked,
	// so the vault's own copy may be deleted.
	SlotData []byte `json:"slotData"`
}

func (s *Server) keyExport(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("vault")
	var req KeyExportRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Passphrase) < 12 {
		return lifeboat.Errorf(lifeboat.EInvalid, "the export passphrase must be at least 12 characters")
	}
	v, err := s.vaults.get(r.Context(), name)
	if err != nil {
		return err
	}
	slot, err := v.AddKeySlot(r.Context(), []byte(req.Passphrase))
	if err != nil {
		return err
	}
	slotData, err := v.KeySlotData(r.Context(), slot)
	if err != nil {
		return err
	}
	var loc, endpoint string
	err = s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		if err := tx.SetKeyExported(r.Context(), name); err != nil {
			return notFound(err, "vault", name)
		}
		rec, err := tx.Vault(r.Context(), name)
		if err != nil {
			return err
		}
		loc = rec.Location
		if sealed, err := tx.Secret(r.Context(), credsName(name)); err == nil {
			var c vaultCreds
			if b, err := s.mk.Open(credsName(name), sealed); err == nil && json.Unmarshal(b, &c) == nil {
				endpoint = c.Endpoint
			}
		}
		return tx.Audit(r.Context(), p.Name, "vault.key-export", name, "ok", map[string]string{"slot": slot})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, KeyExportResult{Vault: name, Location: loc, Endpoint: endpoint, Slot: slot, SlotData: slotData})
}

// SyncResult counts what a sync did.
type SyncResult struct {
	Vault     string `json:"vault"`
	Points    int    `json:"points"`
	Forgotten int    `json:"forgotten"`
}

// syncVaultPoints rebuilds the catalog's points of a vault from its
// manifests (the vault is the truth; the catalog a cache).
func (s *Server) syncVaultPoints(ctx context.Context, actor, name string) (*SyncResult, error) {
	v, err := s.vaults.get(ctx, name)
	if err != nil {
		return nil, err
	}
	pts, err := v.Points(ctx)
	if err != nil {
		return nil, err
	}
	h, err := s.settingsHasher(ctx)
	if err != nil {
		return nil, err
	}
	res := &SyncResult{Vault: name}
	var known map[string]bool
	if err := s.db.View(ctx, func(tx *catalog.Tx) error { known, err = tx.PointIDs(ctx, name); return err }); err != nil {
		return nil, err
	}
	states, err := v.PointStates(ctx)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	type rec struct {
		p         *lifeboat.Point // nil: only the deletion changed
		id        string
		hashes    map[string]string
		deletedAt *time.Time
	}
	var recs []rec
	for _, p := range pts {
		if p.App == "" {
			continue // taken by `lifeboat vault backup`, not by an app
		}
		keep[p.ID] = true
		res.Points++
		st := states[p.ID]
		if deleted, ok := known[p.ID]; ok {
			// Cached already (manifests never change); only the soft
			// deletion, a marker in the vault, may have.
			if deleted != st.Deleted {
				recs = append(recs, rec{p: nil, id: p.ID, deletedAt: deletedAt(st.Deleted, st.DeletedAt)})
			}
			continue
		}
		set, err := capture.ReadSettings(ctx, v, p)
		if err != nil {
			return nil, err
		}
		hashes := map[string]string{}
		for _, st := range set {
			hashes[st.Key] = h.Sum(st)
		}
		cp := catalogPoint(p, name)
		cp.DeletedAt = deletedAt(st.Deleted, st.DeletedAt)
		recs = append(recs, rec{p: cp, hashes: hashes})
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		for _, r := range recs {
			if r.p == nil {
				if err := tx.SetPointDeleted(ctx, r.id, r.deletedAt); err != nil {
					return err
				}
				continue
			}
			if err := tx.PutPoint(ctx, r.p, r.hashes); err != nil {
				return err
			}
		}
		n, err := tx.ForgetPoints(ctx, name, keep)
		res.Forgotten = n
		if err != nil {
			return err
		}
		return tx.Audit(ctx, actor, "vault.sync", name, "ok", map[string]int{"points": res.Points, "added": len(recs), "forgotten": n})
	})
	return res, err
}

func deletedAt(deleted bool, at time.Time) *time.Time {
	if !deleted {
		return nil
	}
	return &at
}

func (s *Server) syncVault(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	res, err := s.syncVaultPoints(r.Context(), p.Name, r.PathValue("vault"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// VerifyRequest starts a verify job.
type VerifyRequest struct {
	ReadDataPercent float64 `json:"readDataPercent,omitempty"`
}

func (s *Server) verifyVault(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("vault")
	var req VerifyRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.ReadDataPercent < 0 || req.ReadDataPercent > 100 {
		return lifeboat.Errorf(lifeboat.EInvalid, "readDataPercent %v: want 0 to 100", req.ReadDataPercent)
	}
	if err := s.db.View(r.Context(), func(tx *catalog.Tx) error { _, err := tx.Vault(r.Context(), name); return notFound(err, "vault", name) }); err != nil {
		return err
	}
	spec, _ := json.Marshal(req)
	j, created, err := s.enqueue(r.Context(), p.Name, &lifeboat.Job{Kind: lifeboat.JobVerify, Vault: name, RequestedBy: p.Name, Spec: spec},
		r.Header.Get("Idempotency-Key"), requestHash(p, "verify/"+name, req))
	if err != nil {
		return err
	}
	return writeJSON(w, createdStatus(created), j)
}

func createdStatus(created bool) int {
	if created {
		return http.StatusAccepted
	}
	return http.StatusOK
}

// ---- hosts ----

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	var out []*lifeboat.Host
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		out, err = tx.Hosts(r.Context())
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, catalog.Page{Limit: 1 << 30}, func(h *lifeboat.Host) string { return h.Name }))
}

func (s *Server) putHost(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var h lifeboat.Host
	if err := decode(r, &h); err != nil {
		return err
	}
	if h.Name == "" {
		h.Name = r.PathValue("host")
	}
	if h.Name != r.PathValue("host") {
		return lifeboat.Errorf(lifeboat.EInvalid, "host name %q in the body differs from %q in the path", h.Name, r.PathValue("host"))
	}
	if err := s.validateHost(&h); err != nil {
		return err
	}
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		if old, err := tx.Host(r.Context(), h.Name); err == nil {
			h.CreatedAt = old.CreatedAt
		}
		if err := s.prepareSSHHost(r.Context(), tx, &h); err != nil {
			return err
		}
		if err := tx.PutHost(r.Context(), &h); err != nil {
			return err
		}
		return tx.Audit(r.Context(), p.Name, "host.put", h.Name, "ok", map[string]any{"roots": h.Roots, "restoreRoots": h.RestoreRoots})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h)
}

func (s *Server) deleteHost(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("host")
	return s.deleteUnused(w, r, p, "host", name, func(c lifeboat.Component) bool { return hostName(c.Host) == name },
		func(tx *catalog.Tx) error { return tx.DeleteHost(r.Context(), name) })
}

// deleteUnused deletes a thing apps' components may use (a host, a
// database server), refusing while one does; audited.
func (s *Server) deleteUnused(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal, what, name string,
	uses func(lifeboat.Component) bool, del func(*catalog.Tx) error) error {
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		apps, err := allApps(r.Context(), tx)
		if err != nil {
			return err
		}
		for _, a := range apps {
			for _, c := range a.Components {
				if uses(c) {
					return lifeboat.Errorf(lifeboat.EInvalid, "%s %s is used by app %s (component %s)", what, name, a.Name, c.Name)
				}
			}
		}
		if err := del(tx); err != nil {
			return notFound(err, what, name)
		}
		return tx.Audit(r.Context(), p.Name, strings.ReplaceAll(what, " ", "")+".delete", name, "ok", nil)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- apps ----

func (s *Server) listApps(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	retired := r.URL.Query().Get("retired") == "true"
	l, err := visible(pg, func(pg catalog.Page) (out []*lifeboat.App, err error) {
		err = s.db.View(r.Context(), func(tx *catalog.Tx) error {
			out, err = tx.Apps(r.Context(), pg, retired)
			return err
		})
		return out, err
	}, func(a *lifeboat.App) string { return a.Name }, func(a *lifeboat.App) bool {
		return access.Decide(p, access.Read, access.Target{App: a.Name, Vault: a.Vault, Labels: a.Labels}).Allow
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	a, err := s.loadApp(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

func (s *Server) putApp(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var a lifeboat.App
	if err := decode(r, &a); err != nil {
		return err
	}
	if a.Name == "" {
		a.Name = r.PathValue("app")
	}
	if a.Name != r.PathValue("app") {
		return lifeboat.Errorf(lifeboat.EInvalid, "app name %q in the body differs from %q in the path", a.Name, r.PathValue("app"))
	}
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		if err := s.validateApp(r.Context(), tx, &a); err != nil {
			return err
		}
		if old, err := tx.App(r.Context(), a.Name); err == nil {
			a.CreatedAt = old.CreatedAt
		}
		if err := tx.PutApp(r.Context(), &a); err != nil {
			return err
		}
		if err := ensureAppIdentity(r.Context(), tx, a.Name); err != nil {
			return err
		}
		return tx.Audit(r.Context(), p.Name, "app.put", a.Name, "ok", nil)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("app")
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		if err := tx.RetireApp(r.Context(), name); err != nil {
			return notFound(err, "app", name)
		}
		return tx.Audit(r.Context(), p.Name, "app.retire", name, "ok", nil)
	})
	if err != nil {
		return err
	}
	a, err := s.loadApp(r.Context(), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

// ---- policies ----

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	var out []*lifeboat.Policy
	err = s.db.View(r.Context(), func(tx *catalog.Tx) error {
		out, err = tx.Policies(r.Context(), pg)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, pg, func(p *lifeboat.Policy) string { return p.Name }))
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	name := r.PathValue("policy")
	var out *lifeboat.Policy
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		out, err = tx.Policy(r.Context(), name)
		return notFound(err, "policy", name)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var pol lifeboat.Policy
	if err := decode(r, &pol); err != nil {
		return err
	}
	if pol.Name == "" {
		pol.Name = r.PathValue("policy")
	}
	if pol.Name != r.PathValue("policy") {
		return lifeboat.Errorf(lifeboat.EInvalid, "policy name %q in the body differs from %q in the path", pol.Name, r.PathValue("policy"))
	}
	if _, err := validatePolicy(&pol); err != nil {
		return err
	}
	var prev *lifeboat.Policy
	if err := s.db.View(r.Context(), func(tx *catalog.Tx) error { prev, _ = tx.Policy(r.Context(), pol.Name); return nil }); err != nil {
		return err
	}
	if prev != nil {
		if less := shortens(prev.Retention, pol.Retention); less != "" {
			if err := s.needApproval(r, p, DefaultApprovers, "policy.shorten-retention", "policy:"+pol.Name, "shortens the retention of policy "+pol.Name+": "+less); err != nil {
				return err
			}
		}
	}
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		if old, err := tx.Policy(r.Context(), pol.Name); err == nil {
			pol.CreatedAt = old.CreatedAt
		}
		if err := tx.PutPolicy(r.Context(), &pol); err != nil {
			return err
		}
		return tx.Audit(r.Context(), p.Name, "policy.put", pol.Name, "ok", nil)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pol)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("policy")
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		if err := tx.DeletePolicy(r.Context(), name); err != nil {
			return notFound(err, "policy", name)
		}
		return tx.Audit(r.Context(), p.Name, "policy.delete", name, "ok", nil)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// SimulateRequest asks what a policy would keep of an app's points. Without
// Policy, the app's current policy is used.
type SimulateRequest struct {
	App    string           `json:"app"`
	Policy *lifeboat.Policy `json:"policy,omitempty"`
}

// SimulatedPoint is one point's fate.
type SimulatedPoint struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Partial bool      `json:"partial,omitempty"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"`
}

// SimulateResult is what a policy would do.
type SimulateResult struct {
	App     string           `json:"app"`
	Policy  string           `json:"policy"`
	Keep    int              `json:"keep"`
	Drop    int              `json:"drop"`
	Points  []SimulatedPoint `json:"points"`
	Refused string           `json:"refused,omitempty"` // why a prune would stop
}

func (s *Server) simulatePolicy(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	var req SimulateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	res, err := s.simulate(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) simulate(ctx context.Context, req SimulateRequest) (*SimulateResult, error) {
	a, err := s.loadApp(ctx, req.App)
	if err != nil {
		return nil, err
	}
	pol := req.Policy
	if pol == nil {
		var pols []*lifeboat.Policy
		if err := s.db.View(ctx, func(tx *catalog.Tx) error { pols, err = allPolicies(ctx, tx); return err }); err != nil {
			return nil, err
		}
		if pol = policyFor(pols, a); pol == nil {
			return nil, lifeboat.Errorf(lifeboat.ENotFound, "no policy applies to app %s", a.Name)
		}
	} else if _, err := validatePolicy(pol); err != nil {
		return nil, err
	}
	var pts []*lifeboat.Point
	if err := s.db.View(ctx, func(tx *catalog.Tx) error {
		pts, err = tx.Points(ctx, catalog.PointFilter{App: a.Name}, catalog.Page{Limit: 1000})
		return err
	}); err != nil {
		return nil, err
	}
	ds, err := decide(pol, pts)
	if err != nil {
		return nil, err
	}
	res := &SimulateResult{App: a.Name, Policy: pol.Name}
	for _, d := range ds {
		res.Points = append(res.Points, SimulatedPoint{ID: d.Point.ID, Time: d.Point.Time, Partial: !d.Point.Complete, Keep: d.Keep, Reasons: d.Reasons})
	}
	res.Keep, res.Drop = retention.Summary(ds)
	if err := retention.CheckDropFraction(ds); err != nil {
		res.Refused = err.Error()
	}
	return res, nil
}

func decide(pol *lifeboat.Policy, pts []*lifeboat.Point) ([]retention.Decision, error) {
	loc := time.UTC
	if pol.Schedule.TimeZone != "" {
		l, err := time.LoadLocation(pol.Schedule.TimeZone)
		if err != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "policy %s: time zone %q: %v", pol.Name, pol.Schedule.TimeZone, err)
		}
		loc = l
	}
	var in []retention.Point
	for _, p := range pts {
		in = append(in, retention.Point{ID: p.ID, Time: p.Time, Complete: !p.Partial})
	}
	return retention.Apply(in, retentionRules(pol), loc), nil
}

// ---- backups, restores, points ----

func (s *Server) postBackup(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var req BackupRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	j, created, err := s.startBackup(r.Context(), p, r.PathValue("app"), req, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return writeJSON(w, createdStatus(created), j)
}

func (s *Server) postRestore(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var req RestoreRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	app := r.PathValue("app")
	if req.DryRun {
		plans, err := s.planRestore(r.Context(), p, app, req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, plans)
	}
	j, created, err := s.startRestore(r.Context(), p, app, req, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return writeJSON(w, createdStatus(created), j)
}

// RestorePlan is what a restore would do.
type RestorePlan struct {
	Point      string          `json:"point"`
	To         string          `json:"to"`
	Components []*capture.Plan `json:"components"`
}

func (s *Server) planRestore(ctx context.Context, p *lifeboat.Principal, app string, req RestoreRequest) (*RestorePlan, error) {
	pt, err := s.checkRestore(ctx, p, app, &req)
	if err != nil {
		return nil, err
	}
	v, err := s.vaults.get(ctx, pt.Vault)
	if err != nil {
		return nil, err
	}
	mp, err := v.LoadPoint(ctx, pt.ID)
	if err != nil {
		return nil, err
	}
	a, err := s.loadApp(ctx, app)
	if err != nil {
		return nil, err
	}
	out := &RestorePlan{Point: pt.ID, To: req.To}
	for _, name := range req.Components {
		for _, c := range mp.Components {
			if c.Name != name {
				continue
			}
			if server, database, toDB := dbTargetSpec(req.To); (toDB || req.To == "original") && (c.Kind == lifeboat.KindPostgres || c.Kind == lifeboat.KindMySQL) {
				pl := &capture.Plan{Component: c.Name}
				if toDB {
					pl.Target, pl.Create = server+"/"+database, 1
					pl.Examples = []string{"+ database " + database + " on " + server}
				} else {
					ac, _ := findComponent(a, c.Name)
					pl.Target, pl.Overwrite, pl.TargetFound = ac.Server+"/"+ac.Database, 1, true
					pl.Examples = []string{"~ every object of database " + ac.Database + " on " + ac.Server + " (dropped and recreated from the point)"}
				}
				if n, err := v.Lookup(ctx, mp, c.Name); err == nil {
					v.Walk(ctx, n, "", func(_ string, n *tree.Node) error { pl.NeedBytes += n.Size; return nil })
				}
				out.Components = append(out.Components, pl)
				continue
			}
			if req.To == "original" {
				pl, err := capture.PlanOriginal(ctx, v, mp, c)
				if err != nil {
					return nil, err
				}
				out.Components = append(out.Components, pl)
			} else {
				n, err := v.Lookup(ctx, mp, c.Name)
				if err != nil {
					return nil, err
				}
				pl := &capture.Plan{Component: c.Name, Target: req.To + "/" + c.Name}
				err = v.Walk(ctx, n, "", func(path string, n *tree.Node) error {
					if path != "" {
						pl.Create++
						if len(pl.Examples) < 20 {
							pl.Examples = append(pl.Examples, "+ "+pl.Target+"/"+path)
						}
					}
					pl.NeedBytes += n.Size
					return nil
				})
				if err != nil {
					return nil, err
				}
				out.Components = append(out.Components, pl)
			}
		}
	}
	return out, nil
}

// PruneRequest starts a prune.
type PruneRequest struct {
	// Force prunes even when more than half of the points would go.
	Force bool `json:"force,omitempty"`
}

func (s *Server) postPrune(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var req PruneRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	a, err := s.loadApp(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	spec, _ := json.Marshal(req)
	j, created, err := s.enqueue(r.Context(), p.Name, &lifeboat.Job{Kind: lifeboat.JobPrune, App: a.Name, Vault: a.Vault, RequestedBy: p.Name, Spec: spec},
		r.Header.Get("Idempotency-Key"), requestHash(p, "prune/"+a.Name, req))
	if err != nil {
		return err
	}
	return writeJSON(w, createdStatus(created), j)
}

func (s *Server) listPoints(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	app := r.PathValue("app")
	if _, err := s.loadApp(r.Context(), app); err != nil {
		return err
	}
	pg, err := page(r)
	if err != nil {
		return err
	}
	var out []*lifeboat.Point
	err = s.db.View(r.Context(), func(tx *catalog.Tx) error {
		out, err = tx.Points(r.Context(), catalog.PointFilter{App: app, IncludeDeleted: r.URL.Query().Get("deleted") == "true"}, pg)
		if errors.Is(err, catalog.ErrNotFound) {
			return lifeboat.Errorf(lifeboat.EInvalid, "after %q: no such point", pg.After)
		}
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, pg, func(p *lifeboat.Point) string { return p.ID }))
}

// PointView is a point with its settings.
type PointView struct {
	*lifeboat.Point
	Settings []SettingView `json:"settings"`
}

func (s *Server) findPoint(ctx context.Context, app, ref string) (*lifeboat.Point, map[string]string, error) {
	var pt *lifeboat.Point
	var hashes map[string]string
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		pt, hashes, err = tx.Point(ctx, ref)
		if errors.Is(err, catalog.ErrNotFound) || (err == nil && pt.App != app) {
			return lifeboat.Errorf(lifeboat.ENotFound, "point %s of app %s not found", ref, app)
		}
		return err
	})
	return pt, hashes, err
}

func (s *Server) getPoint(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	app := r.PathValue("app")
	a, err := s.loadApp(ctx, app)
	if err != nil {
		return err
	}
	pt, _, err := s.findPoint(ctx, app, r.PathValue("point"))
	if err != nil {
		return err
	}
	reveal := r.URL.Query().Get("reveal") == "true"
	if reveal {
		t, err := s.appTarget(ctx, app)
		if err != nil {
			return err
		}
		if err := access.Check(p, access.ReadSecrets, t); err != nil {
			return err
		}
	}
	v, err := s.vaults.get(ctx, pt.Vault)
	if err != nil {
		return err
	}
	mp, err := v.LoadPoint(ctx, pt.ID)
	if err != nil {
		return err
	}
	set, err := capture.ReadSettings(ctx, v, mp)
	if err != nil {
		return err
	}
	pub, _ := config.NewPublic(a.Public)
	h, err := s.settingsHasher(ctx)
	if err != nil {
		return err
	}
	// Changed/unchanged against the app's previous point.
	var prev map[string]string
	s.db.View(ctx, func(tx *catalog.Tx) error {
		older, err := tx.Points(ctx, catalog.PointFilter{App: app}, catalog.Page{After: pt.ID, Limit: 1})
		if err == nil && len(older) == 1 {
			_, prev, _ = tx.Point(ctx, older[0].ID)
		}
		return nil
	})
	if reveal {
		if err := s.db.Update(ctx, func(tx *catalog.Tx) error {
			return tx.Audit(ctx, p.Name, "secrets.reveal", app, "ok", map[string]string{"point": pt.ID})
		}); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, PointView{Point: pt, Settings: showSettings(set, pub, reveal, prev, h)})
}

func (s *Server) undeletePoint(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	app := r.PathValue("app")
	var pt *lifeboat.Point
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		ps, err := tx.Points(ctx, catalog.PointFilter{App: app, IncludeDeleted: true}, catalog.Page{Limit: 1000})
		for _, x := range ps {
			if strings.HasPrefix(x.ID, r.PathValue("point")) && len(r.PathValue("point")) >= 6 {
				pt = x
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	if pt == nil {
		return lifeboat.Errorf(lifeboat.ENotFound, "point %s of app %s not found", r.PathValue("point"), app)
	}
	if pt.DeletedAt == nil {
		return writeJSON(w, http.StatusOK, pt)
	}
	if err := s.undelete(ctx, p.Name, pt); err != nil {
		return err
	}
	pt.DeletedAt = nil
	return writeJSON(w, http.StatusOK, pt)
}

// DiffResult is what changed between two points of an app.
type DiffResult struct {
	From     string          `json:"from"`
	To       string          `json:"to"`
	Settings []SettingChange `json:"settings"`
	Files    []FileChange    `json:"files"`
}

// FileChange is one file that differs.
type FileChange struct {
	Path string `json:"path"` // component/relative path
	Op   string `json:"op"`   // added, removed, changed
}

func (s *Server) diffPoints(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	ctx := r.Context()
	app := r.PathValue("app")
	a, err := s.loadApp(ctx, app)
	if err != nil {
		return err
	}
	from, to := r.URL.Query().Get("from"), r.URL.Query().Get("to")
	if from == "" || to == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "diff needs from and to points")
	}
	pa, _, err := s.findPoint(ctx, app, from)
	if err != nil {
		return err
	}
	pb, _, err := s.findPoint(ctx, app, to)
	if err != nil {
		return err
	}
	v, err := s.vaults.get(ctx, pa.Vault)
	if err != nil {
		return err
	}
	ma, err := v.LoadPoint(ctx, pa.ID)
	if err != nil {
		return err
	}
	mb, err := v.LoadPoint(ctx, pb.ID)
	if err != nil {
		return err
	}
	sa, err := capture.ReadSettings(ctx, v, ma)
	if err != nil {
		return err
	}
	sb, err := capture.ReadSettings(ctx, v, mb)
	if err != nil {
		return err
	}
	pub, _ := config.NewPublic(a.Public)
	res := DiffResult{From: pa.ID, To: pb.ID, Settings: diffSettings(sa, sb, pub)}
	fa, err := fileIndex(ctx, v, ma)
	if err != nil {
		return err
	}
	fb, err := fileIndex(ctx, v, mb)
	if err != nil {
		return err
	}
	for path, ha := range fa {
		if hb, ok := fb[path]; !ok {
			res.Files = append(res.Files, FileChange{path, "removed"})
		} else if hb != ha {
			res.Files = append(res.Files, FileChange{path, "changed"})
		}
	}
	for path := range fb {
		if _, ok := fa[path]; !ok {
			res.Files = append(res.Files, FileChange{path, "added"})
		}
	}
	sortFileChanges(res.Files)
	if res.Settings == nil {
		res.Settings = []SettingChange{}
	}
	if res.Files == nil {
		res.Files = []FileChange{}
	}
	return writeJSON(w, http.StatusOK, res)
}

// fileIndex maps every file of a point's files components to a content
// fingerprint (type, size and blob ids; never the content).
func fileIndex(ctx context.Context, v *vault.Vault, p *manifest.Point) (map[string]string, error) {
	out := map[string]string{}
	for _, c := range p.Components {
		if c.Kind != lifeboat.KindFiles {
			continue
		}
		n, err := v.Lookup(ctx, p, c.Name)
		if err != nil {
			return nil, err
		}
		err = v.Walk(ctx, n, c.Name, func(path string, n *tree.Node) error {
			if n.Type == "dir" {
				return nil
			}
			var b strings.Builder
			b.WriteString(n.Type + " " + strconv.FormatInt(n.Size, 10) + " " + n.Target)
			for _, e := range n.Content {
				if e.ID != nil {
					b.WriteString(" " + e.ID.String())
				} else {
					b.WriteString(" hole" + strconv.FormatInt(e.Hole, 10))
				}
			}
			out[path] = b.String()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ---- jobs ----

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := catalog.JobFilter{App: q.Get("app"), Kind: q.Get("kind"), State: q.Get("state")}
	readable := s.readable(r.Context(), p)
	l, err := visible(pg, func(pg catalog.Page) (out []*lifeboat.Job, err error) {
		err = s.db.View(r.Context(), func(tx *catalog.Tx) error {
			out, err = tx.Jobs(r.Context(), f, pg)
			return err
		})
		return out, err
	}, func(j *lifeboat.Job) string { return j.ID }, func(j *lifeboat.Job) bool { return readable(j.App, j.Vault) })
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

func (s *Server) loadJob(ctx context.Context, id string) (*lifeboat.Job, error) {
	var j *lifeboat.Job
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		j, err = tx.Job(ctx, id)
		return notFound(err, "job", id)
	})
	return j, err
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	j, err := s.loadJob(r.Context(), r.PathValue("job"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	id := r.PathValue("job")
	var j *lifeboat.Job
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		var err error
		if j, err = tx.CancelJob(r.Context(), id); err != nil {
			return notFound(err, "job", id)
		}
		return tx.Audit(r.Context(), p.Name, "job.cancel", j.App, "ok", map[string]string{"job": id})
	})
	if err != nil {
		return err
	}
	s.pool.Cancel(id)
	return writeJSON(w, http.StatusOK, j)
}

func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	id := r.PathValue("job")
	var after int64
	if a := r.URL.Query().Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 0 {
			return lifeboat.Errorf(lifeboat.EInvalid, "after %q: want a sequence number", a)
		}
		after = n
	}
	if _, err := s.loadJob(r.Context(), id); err != nil {
		return err
	}
	var out []lifeboat.JobLog
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		out, err = tx.Logs(r.Context(), id, after)
		return err
	})
	if err != nil {
		return err
	}
	if out == nil {
		out = []lifeboat.JobLog{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": out})
}
