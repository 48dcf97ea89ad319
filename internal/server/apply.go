package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/access"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage/location"
)

// Document is what `lifeboat apply` sends: the desired hosts, vaults, apps
// and policies.
type Document struct {
	Hosts           []lifeboat.Host     `json:"hosts,omitempty" yaml:"hosts,omitempty"`
	DatabaseServers []lifeboat.DBServer `json:"databaseServers,omitempty" yaml:"databaseServers,omitempty"`
	Vaults          []VaultSpec         `json:"vaults,omitempty" yaml:"vaults,omitempty"`
	Apps            []lifeboat.App      `json:"apps,omitempty" yaml:"apps,omitempty"`
	Policies        []lifeboat.Policy   `json:"policies,omitempty" yaml:"policies,omitempty"`
}

// ApplyRequest applies a document.
type ApplyRequest struct {
	Document Document `json:"document"`
	// DryRun returns the plan and changes nothing.
	DryRun bool `json:"dryRun,omitempty"`
	// Prune retires apps and deletes policies and hosts the document does
	// not name (vaults are never deleted by apply).
	Prune bool `json:"prune,omitempty"`
}

// Change is one line of an apply plan.
type Change struct {
	Action string `json:"action"` // create, update, rename, retire, delete, unchanged
	Kind   string `json:"kind"`   // host, vault, app, policy
	Name   string `json:"name"`
	From   string `json:"from,omitempty"` // the old name of a rename
	Detail string `json:"detail,omitempty"`
}

// ApplyResult is the plan, and whether it was applied.
type ApplyResult struct {
	Changes []Change `json:"changes"`
	Applied bool     `json:"applied"`
}

var errDryRun = errors.New("dry run")

func (s *Server) apply(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var req ApplyRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Document.Hosts) > 0 || len(req.Document.DatabaseServers) > 0 {
		if err := access.Check(p, access.ManageHosts, access.Target{}); err != nil {
			return err
		}
	}
	if !req.DryRun {
		// A document that shortens a policy's retention waits for approval,
		// whole: what runs once approved is exactly what was sent.
		var less []string
		err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
			for _, pol := range req.Document.Policies {
				if old, err := tx.Policy(r.Context(), pol.Name); err == nil {
					if l := shortens(old.Retention, pol.Retention); l != "" {
						less = append(less, pol.Name+": "+l)
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(less) > 0 {
			if err := s.needApproval(r, p, DefaultApprovers, "policy.shorten-retention", "apply", "shortens retention: "+strings.Join(less, "; ")); err != nil {
				return err
			}
		}
	}
	res, err := s.applyDoc(r.Context(), p.Name, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) applyDoc(ctx context.Context, actor string, req ApplyRequest) (*ApplyResult, error) {
	doc := req.Document
	// Shape checks that need no catalog.
	seen := map[string]bool{}
	for _, k := range []struct {
		kind  string
		names []string
	}{{"host", names(doc.Hosts, func(h lifeboat.Host) string { return h.Name })},
		{"vault", names(doc.Vaults, func(v VaultSpec) string { return v.Name })},
		{"app", names(doc.Apps, func(a lifeboat.App) string { return a.Name })},
		{"policy", names(doc.Policies, func(p lifeboat.Policy) string { return p.Name })}} {
		for _, n := range k.names {
			if seen[k.kind+"/"+n] {
				return nil, lifeboat.Errorf(lifeboat.EInvalid, "the document names %s %s twice", k.kind, n)
			}
			seen[k.kind+"/"+n] = true
		}
	}
	creds := map[string]vaultCreds{}
	for i := range doc.Vaults {
		v := &doc.Vaults[i]
		if err := validName("vault", v.Name); err != nil {
			return nil, err
		}
		if v.Region == "" {
			v.Region = "local"
		}
		if err := s.checkVaultLocation(&v.Vault); err != nil {
			return nil, err
		}
		loc, _ := location.Check(v.Location)
		v.Location = loc
	}
	// Pass 1: apply everything in a transaction that is rolled back, with
	// new vaults recorded but not created: this validates the whole
	// document against the catalog and yields the plan.
	var plan []Change
	var newVaults []VaultSpec
	err := s.db.Update(ctx, func(tx *catalog.Tx) error {
		var err error
		plan, newVaults, err = s.applyTx(ctx, tx, actor, req, true)
		if err != nil {
			return err
		}
		return errDryRun
	})
	if !errors.Is(err, errDryRun) {
		return nil, err
	}
	res := &ApplyResult{Changes: plan}
	if req.DryRun || !hasChanges(plan) {
		return res, nil
	}
	// Pass 2: create new vaults in their storage, then apply for real.
	for _, v := range newVaults {
		c, err := s.credsFor(&v)
		if err != nil {
			return nil, err
		}
		creds[v.Name] = c
		if _, err := s.createVault(ctx, actor, &v.Vault, c); err != nil {
			return nil, err
		}
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		var err error
		_, _, err = s.applyTx(ctx, tx, actor, req, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	res.Applied = true
	return res, nil
}

// hostShape is what apply compares of an ssh host (the recorded key and
// the key file are not in the document's shape).
func hostShape(h *lifeboat.Host) *lifeboat.Host {
	c := *h
	c.HostKey, c.KeyFile, c.CreatedAt = "", "", time.Time{}
	return &c
}

func hasChanges(plan []Change) bool {
	for _, c := range plan {
		if c.Action != "unchanged" {
			return true
		}
	}
	return false
}

func names[T any](xs []T, f func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

// same compares two documents ignoring timestamps.
func same(a, b any) bool {
	na, nb := normalise(a), normalise(b)
	return reflect.DeepEqual(na, nb)
}

func normalise(v any) any {
	b, _ := json.Marshal(v)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"createdAt", "updatedAt", "retiredAt", "renamedFrom"} {
		delete(m, k)
	}
	return m
}

// applyTx applies the document in tx. In the first pass (check), new vaults
// are recorded without storage so apps can name them.
func (s *Server) applyTx(ctx context.Context, tx *catalog.Tx, actor string, req ApplyRequest, check bool) ([]Change, []VaultSpec, error) {
	doc := req.Document
	var plan []Change
	var newVaults []VaultSpec
	audit := func(action, target string) error {
		if check {
			return nil
		}
		return tx.Audit(ctx, actor, action, target, "ok", map[string]string{"via": "apply"})
	}
	// Hosts first: apps are checked against their roots.
	for _, h := range doc.Hosts {
		h := h
		if err := s.validateHost(&h); err != nil {
			return nil, nil, err
		}
		old, err := tx.Host(ctx, h.Name)
		if h.Kind == "ssh" {
			if err == nil && old.HostKey != "" && h.KeyFile == "" && same(hostShape(old), hostShape(&h)) {
				plan = append(plan, Change{Action: "unchanged", Kind: "host", Name: h.Name})
				continue
			}
			if perr := s.prepareSSHHost(ctx, tx, &h); perr != nil {
				return nil, nil, perr
			}
		}
		switch {
		case err == nil && same(old, &h):
			plan = append(plan, Change{Action: "unchanged", Kind: "host", Name: h.Name})
			continue
		case err == nil:
			h.CreatedAt = old.CreatedAt
			plan = append(plan, Change{Action: "update", Kind: "host", Name: h.Name})
		case errors.Is(err, catalog.ErrNotFound):
			plan = append(plan, Change{Action: "create", Kind: "host", Name: h.Name})
		default:
			return nil, nil, err
		}
		if err := tx.PutHost(ctx, &h); err != nil {
			return nil, nil, err
		}
		if err := audit("host.put", h.Name); err != nil {
			return nil, nil, err
		}
	}
	for _, d := range doc.DatabaseServers {
		d := d
		pw, err := s.validateDBServer(&d)
		if err != nil {
			return nil, nil, err
		}
		old, err := tx.DBServer(ctx, d.Name)
		cmp := d
		cmp.PasswordFile, cmp.HasPassword, cmp.Version = "", false, ""
		switch {
		case err == nil && pw == "" && same(&cmp, &lifeboat.DBServer{Name: old.Name, Engine: old.Engine, Host: old.Host, Port: old.Port, User: old.User, SSLMode: old.SSLMode}):
			plan = append(plan, Change{Action: "unchanged", Kind: "database server", Name: d.Name})
			continue
		case err == nil:
			plan = append(plan, Change{Action: "update", Kind: "database server", Name: d.Name})
		case errors.Is(err, catalog.ErrNotFound):
			plan = append(plan, Change{Action: "create", Kind: "database server", Name: d.Name, Detail: d.Engine + " " + d.Host})
		default:
			return nil, nil, err
		}
		if check {
			if err := s.pingDBServer(ctx, tx, &d, pw); err != nil {
				return nil, nil, err
			}
		}
		if err := s.putDBServer(ctx, tx, actor, &d, pw); err != nil {
			return nil, nil, err
		}
	}
	for _, v := range doc.Vaults {
		old, err := tx.Vault(ctx, v.Name)
		switch {
		case err == nil:
			if old.Location != v.Location || old.Region != v.Region {
				return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "vault %s exists at %s in region %s; a vault's location and region cannot change", v.Name, old.Location, old.Region)
			}
			if v.Approvers != "" && v.Approvers != old.Approvers {
				return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "vault %s: its approvers group is %q; changing it waits for approval: lifeboat vault approvers %s --set %s", v.Name, old.Approvers, v.Name, v.Approvers)
			}
			plan = append(plan, Change{Action: "unchanged", Kind: "vault", Name: v.Name})
		case errors.Is(err, catalog.ErrNotFound):
			if !check {
				return nil, nil, lifeboat.Errorf(lifeboat.EInternal, "vault %s was not created", v.Name)
			}
			if v.Default {
				if d, err := tx.DefaultVault(ctx, v.Region); err == nil {
					return nil, nil, lifeboat.Errorf(lifeboat.EExists, "region %s already has a default vault (%s)", v.Region, d.Name)
				}
			}
			if _, err := s.credsFor(&v); err != nil {
				return nil, nil, err
			}
			if err := checkApproversGroup(ctx, tx, v.Name, v.Approvers); err != nil {
				return nil, nil, err
			}
			plan = append(plan, Change{Action: "create", Kind: "vault", Name: v.Name, Detail: v.Location})
			newVaults = append(newVaults, v)
			if err := tx.PutVault(ctx, &catalog.VaultRecord{Vault: v.Vault, SealedPassphrase: "pending"}); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, err
		}
	}
	for _, p := range doc.Policies {
		p := p
		if _, err := validatePolicy(&p); err != nil {
			return nil, nil, err
		}
		old, err := tx.Policy(ctx, p.Name)
		switch {
		case err == nil && same(old, &p):
			plan = append(plan, Change{Action: "unchanged", Kind: "policy", Name: p.Name})
			continue
		case err == nil:
			p.CreatedAt = old.CreatedAt
			plan = append(plan, Change{Action: "update", Kind: "policy", Name: p.Name})
		case errors.Is(err, catalog.ErrNotFound):
			plan = append(plan, Change{Action: "create", Kind: "policy", Name: p.Name})
		default:
			return nil, nil, err
		}
		if err := tx.PutPolicy(ctx, &p); err != nil {
			return nil, nil, err
		}
		if err := audit("policy.put", p.Name); err != nil {
			return nil, nil, err
		}
	}
	for _, a := range doc.Apps {
		a := a
		from := a.RenamedFrom
		if from != "" {
			if _, err := tx.App(ctx, a.Name); err == nil {
				// Renamed already (an earlier apply): nothing to rename.
				from = ""
			} else if _, err := tx.App(ctx, from); err != nil {
				return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "app %s: renamedFrom %s, but no app %s exists", a.Name, from, from)
			}
		}
		if err := s.validateApp(ctx, tx, &a); err != nil {
			return nil, nil, err
		}
		if from != "" {
			if err := tx.RenameApp(ctx, from, a.Name); err != nil {
				return nil, nil, notFound(err, "app", a.Name)
			}
			plan = append(plan, Change{Action: "rename", Kind: "app", Name: a.Name, From: from})
			if err := audit("app.rename", a.Name); err != nil {
				return nil, nil, err
			}
		}
		old, err := tx.App(ctx, a.Name)
		switch {
		case err == nil && same(old, &a) && old.RetiredAt == nil:
			if from == "" {
				plan = append(plan, Change{Action: "unchanged", Kind: "app", Name: a.Name})
			}
			continue
		case err == nil:
			a.CreatedAt = old.CreatedAt
			plan = append(plan, Change{Action: "update", Kind: "app", Name: a.Name})
		case errors.Is(err, catalog.ErrNotFound):
			plan = append(plan, Change{Action: "create", Kind: "app", Name: a.Name})
		default:
			return nil, nil, err
		}
		if err := tx.PutApp(ctx, &a); err != nil {
			return nil, nil, err
		}
		if err := ensureAppIdentity(ctx, tx, a.Name); err != nil {
			return nil, nil, err
		}
		if err := audit("app.put", a.Name); err != nil {
			return nil, nil, err
		}
	}
	if req.Prune {
		want := map[string]bool{}
		for _, a := range doc.Apps {
			want["app/"+a.Name] = true
		}
		for _, p := range doc.Policies {
			want["policy/"+p.Name] = true
		}
		for _, h := range doc.Hosts {
			want["host/"+h.Name] = true
		}
		apps, err := allApps(ctx, tx)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range apps {
			if !want["app/"+a.Name] {
				plan = append(plan, Change{Action: "retire", Kind: "app", Name: a.Name, Detail: "its points are kept"})
				if err := tx.RetireApp(ctx, a.Name); err != nil {
					return nil, nil, err
				}
				if err := audit("app.retire", a.Name); err != nil {
					return nil, nil, err
				}
			}
		}
		pols, err := allPolicies(ctx, tx)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range pols {
			if !want["policy/"+p.Name] {
				plan = append(plan, Change{Action: "delete", Kind: "policy", Name: p.Name})
				if err := tx.DeletePolicy(ctx, p.Name); err != nil {
					return nil, nil, err
				}
				if err := audit("policy.delete", p.Name); err != nil {
					return nil, nil, err
				}
			}
		}
		hosts, err := tx.Hosts(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, h := range hosts {
			if !want["host/"+h.Name] && len(doc.Hosts) > 0 {
				plan = append(plan, Change{Action: "delete", Kind: "host", Name: h.Name})
				if err := tx.DeleteHost(ctx, h.Name); err != nil {
					return nil, nil, err
				}
				if err := audit("host.delete", h.Name); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	sort.SliceStable(plan, func(i, j int) bool { return order(plan[i].Kind) < order(plan[j].Kind) })
	return plan, newVaults, nil
}

func order(kind string) int {
	switch kind {
	case "host", "database server":
		return 0
	case "vault":
		return 1
	case "policy":
		return 2
	}
	return 3
}
