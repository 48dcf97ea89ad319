package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/access"
	"github.com/lifeboat-vault/lifeboat/internal/capture"
	"github.com/lifeboat-vault/lifeboat/internal/capture/config"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/keys"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/retention"
	"github.com/lifeboat-vault/lifeboat/internal/schedule"
	"github.com/lifeboat-vault/lifeboat/internal/storage/location"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// dbNameRE: database names Lifeboat passes to tools (no quoting games).
var dbNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]{0,62}$`)

func validName(what, name string) error {
	if !nameRE.MatchString(name) {
		return lifeboat.Errorf(lifeboat.EInvalid, "%s name %q: use 1-64 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit", what, name)
	}
	return nil
}

// notFound maps the catalog's ErrNotFound to a user-facing error naming what.
func notFound(err error, what, name string) error {
	if errors.Is(err, catalog.ErrNotFound) {
		return lifeboat.Errorf(lifeboat.ENotFound, "%s %s not found", what, name)
	}
	if errors.Is(err, catalog.ErrExists) {
		return lifeboat.Errorf(lifeboat.EExists, "%s %s already exists", what, name)
	}
	return err
}

// ---- hosts ----

func (s *Server) validateHost(h *lifeboat.Host) error {
	if err := validName("host", h.Name); err != nil {
		return err
	}
	if h.Kind == "" {
		h.Kind = "local"
	}
	if h.Kind != "local" && h.Kind != "ssh" {
		return lifeboat.Errorf(lifeboat.EInvalid, "host %s: kind %q: want local or ssh", h.Name, h.Kind)
	}
	if h.Kind == "local" && (h.Address != "" || h.User != "" || h.KeyFile != "" || h.Fingerprint != "") {
		return lifeboat.Errorf(lifeboat.EInvalid, "host %s: address, user, keyFile and fingerprint are for ssh hosts", h.Name)
	}
	for i, r := range h.Roots {
		h.Roots[i] = filepath.Clean(r)
	}
	for i, r := range h.RestoreRoots {
		h.RestoreRoots[i] = filepath.Clean(r)
	}
	if err := validateHostCommands(h); err != nil {
		return err
	}
	g := &capture.Guard{DataDir: s.cfg.DataDir}
	return g.CheckHostRoots(h)
}

// ---- apps ----

func (s *Server) validateApp(ctx context.Context, tx *catalog.Tx, a *lifeboat.App) error {
	if err := validName("app", a.Name); err != nil {
		return err
	}
	if a.Region == "" {
		a.Region = "local"
	}
	if a.Vault == "" {
		v, err := tx.DefaultVault(ctx, a.Region)
		if err != nil {
			return lifeboat.Errorf(lifeboat.EInvalid, "app %s: no vault given and region %s has no default vault", a.Name, a.Region)
		}
		a.Vault = v.Name
	}
	v, err := tx.Vault(ctx, a.Vault)
	if err != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "app %s: vault %s not found", a.Name, a.Vault)
	}
	if v.RetiredAt != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "app %s: vault %s was deleted", a.Name, a.Vault)
	}
	if v.Region != a.Region {
		return lifeboat.Errorf(lifeboat.EInvalid, "app %s is in region %s but vault %s is in region %s", a.Name, a.Region, v.Name, v.Region)
	}
	if a.HealthURL != "" {
		u, err := url.Parse(a.HealthURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return lifeboat.Errorf(lifeboat.EInvalid, "app %s: healthURL %q: want http(s)://host/path", a.Name, a.HealthURL)
		}
	}
	if _, err := config.NewPublic(a.Public); err != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "app %s: public: %v", a.Name, err)
	}
	if len(a.Components) == 0 {
		return lifeboat.Errorf(lifeboat.EInvalid, "app %s has no components", a.Name)
	}
	hosts := map[string]*lifeboat.Host{}
	hs, err := tx.Hosts(ctx)
	if err != nil {
		return err
	}
	for _, h := range hs {
		hosts[h.Name] = h
	}
	g := &capture.Guard{Hosts: hosts, DataDir: s.cfg.DataDir}
	if err := validateHooks(a, hosts); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range a.Components {
		c := &a.Components[i]
		if err := validName("component", c.Name); err != nil {
			return fmt.Errorf("app %s: %w", a.Name, err)
		}
		if seen[c.Name] {
			return lifeboat.Errorf(lifeboat.EInvalid, "app %s: two components are named %s", a.Name, c.Name)
		}
		seen[c.Name] = true
		if c.Host == "" {
			c.Host = "local"
		}
		where := fmt.Sprintf("app %s, component %s", a.Name, c.Name)
		for _, glob := range append(append([]string{}, c.Include...), c.Exclude...) {
			if err := vault.CheckGlob(glob); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		switch c.Kind {
		case lifeboat.KindFiles:
			if c.Path == "" || len(c.Files) > 0 || len(c.Settings) > 0 {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: a files component has a path (and no files or settings)", where)
			}
			if err := g.CheckSource(c.Host, c.Path); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		case lifeboat.KindConfig:
			if c.Path != "" || len(c.Include) > 0 || len(c.Exclude) > 0 {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: a config component has files and settings (no path, include or exclude)", where)
			}
			if len(c.Files) == 0 && len(c.Settings) == 0 {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: a config component needs files or settings", where)
			}
			for _, f := range c.Files {
				if _, err := config.KindOf(f); err != nil {
					return lifeboat.Errorf(lifeboat.EInvalid, "%s: %v", where, err)
				}
				if err := g.CheckSource(c.Host, f); err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
			}
			if _, err := config.FromInline(c.Settings); err != nil {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: settings: %v", where, err)
			}
		case lifeboat.KindSQLite:
			if c.Path == "" || len(c.Files) > 0 || len(c.Settings) > 0 || len(c.Include) > 0 || len(c.Exclude) > 0 {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: a sqlite component has a path (the database file) only", where)
			}
			if c.RestoreMode != "" && c.RestoreMode != "stopped" && c.RestoreMode != "live" {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: restoreMode %q: want stopped or live", where, c.RestoreMode)
			}
			if err := g.CheckSource(c.Host, c.Path); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		case lifeboat.KindPostgres, lifeboat.KindMySQL:
			if c.Server == "" || c.Database == "" || c.Path != "" || len(c.Files) > 0 || len(c.Settings) > 0 {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: a %s component has a server and a database (only)", where, c.Kind)
			}
			if !dbNameRE.MatchString(c.Database) {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: database name %q", where, c.Database)
			}
			d, err := tx.DBServer(ctx, c.Server)
			if err != nil {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: database server %q is not registered", where, c.Server)
			}
			if d.Engine != c.Kind {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: database server %s is a %s server", where, c.Server, d.Engine)
			}
		case "":
			return lifeboat.Errorf(lifeboat.EInvalid, "%s: no kind (files, config, sqlite, postgres, mysql)", where)
		default:
			return lifeboat.Errorf(lifeboat.EInvalid, "%s: kind %q is not supported (files, config, sqlite, postgres, mysql)", where, c.Kind)
		}
	}
	return nil
}

// ---- policies ----

func validatePolicy(p *lifeboat.Policy) (*schedule.Schedule, error) {
	if err := validName("policy", p.Name); err != nil {
		return nil, err
	}
	sc, err := schedule.Parse(scheduleSpec(p))
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "policy %s: schedule: %v", p.Name, err)
	}
	if err := retentionRules(p).Validate(); err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "policy %s: %v", p.Name, err)
	}
	return sc, nil
}

func scheduleSpec(p *lifeboat.Policy) schedule.Spec {
	return schedule.Spec{Cron: p.Schedule.Cron, Every: p.Schedule.Every.D(), TimeZone: p.Schedule.TimeZone, Jitter: p.Schedule.Jitter.D(), Window: p.Schedule.Window}
}

func retentionRules(p *lifeboat.Policy) retention.Rules {
	r := p.Retention
	return retention.Rules{Last: r.Last, Hourly: r.Hourly, Daily: r.Daily, Weekly: r.Weekly, Monthly: r.Monthly, Yearly: r.Yearly, Within: r.Within.D()}
}

// policies finds the policy of each app: the first (by name) that names the
// app in its apps list, else the first whose selector matches. Built once
// per scheduler tick: 10,000 apps against 100 policies is a map lookup
// each, not a scan of every name.
type policies struct {
	byApp     map[string]*lifeboat.Policy
	selectors []*lifeboat.Policy
}

func indexPolicies(pols []*lifeboat.Policy) *policies {
	ix := &policies{byApp: map[string]*lifeboat.Policy{}}
	for _, p := range pols {
		for _, n := range p.Apps {
			if _, ok := ix.byApp[n]; !ok {
				ix.byApp[n] = p
			}
		}
		if len(p.Selector) > 0 {
			ix.selectors = append(ix.selectors, p)
		}
	}
	return ix
}

// For returns the policy that applies to app, or nil.
func (ix *policies) For(app *lifeboat.App) *lifeboat.Policy {
	if p := ix.byApp[app.Name]; p != nil {
		return p
	}
	for _, p := range ix.selectors {
		if p.Selects(app) {
			return p
		}
	}
	return nil
}

// policyFor is indexPolicies(pols).For(app), for one app.
func policyFor(pols []*lifeboat.Policy, app *lifeboat.App) *lifeboat.Policy {
	return indexPolicies(pols).For(app)
}

// ---- jobs ----

// BackupRequest starts a backup.
type BackupRequest struct {
	Reason string            `json:"reason,omitempty"` // scheduled, manual, pre-deploy...
	Labels map[string]string `json:"labels,omitempty"`
}

// RestoreRequest starts a restore.
type RestoreRequest struct {
	Point      string   `json:"point,omitempty"` // id or prefix; "latest" or empty with At empty: the newest complete point
	At         string   `json:"at,omitempty"`    // RFC 3339: the newest point at or before
	Components []string `json:"components,omitempty"`
	// To is "original", an absolute directory under a restore root, or
	// "db:SERVER/DATABASE": a new database on a registered server (one
	// database component).
	To     string `json:"to"`
	DryRun bool   `json:"dryRun,omitempty"`
	// Confirm is required to restore a database component to the original
	// place: it replaces the live database's objects.
	Confirm bool `json:"confirm,omitempty"`
}

// dbTargetSpec parses "db:SERVER/DATABASE".
func dbTargetSpec(to string) (server, database string, ok bool) {
	rest, found := strings.CutPrefix(to, "db:")
	if !found {
		return "", "", false
	}
	server, database, ok = strings.Cut(rest, "/")
	return server, database, ok
}

var reasonRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

func requestHash(p *lifeboat.Principal, route string, body any) string {
	b, _ := json.Marshal(body)
	h := sha256.Sum256(append([]byte(p.Name+"\x00"+route+"\x00"), b...))
	return hex.EncodeToString(h[:])
}

// enqueue creates a job (or returns the one an idempotency key already made).
func (s *Server) enqueue(ctx context.Context, actor string, j *lifeboat.Job, idemKey, reqHash string) (*lifeboat.Job, bool, error) {
	var out *lifeboat.Job
	var created bool
	err := s.db.Update(ctx, func(tx *catalog.Tx) error {
		var err error
		key := ""
		if idemKey != "" {
			key = actor + ":" + idemKey
		}
		out, created, err = tx.CreateJob(ctx, j, key, reqHash)
		if err != nil || !created {
			return err
		}
		return tx.Audit(ctx, actor, "job.create", j.App, "ok", map[string]string{"job": out.ID, "kind": j.Kind})
	})
	if err == nil && created {
		s.pool.Wake()
	}
	return out, created, err
}

func (s *Server) startBackup(ctx context.Context, p *lifeboat.Principal, app string, req BackupRequest, idemKey string) (*lifeboat.Job, bool, error) {
	if req.Reason == "" {
		req.Reason = "manual"
	}
	if !reasonRE.MatchString(req.Reason) {
		return nil, false, lifeboat.Errorf(lifeboat.EInvalid, "reason %q: use a short lowercase word (scheduled, manual, pre-deploy...)", req.Reason)
	}
	for k := range req.Labels {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return nil, false, lifeboat.Errorf(lifeboat.EInvalid, "label key %q", k)
		}
	}
	var a *lifeboat.App
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		a, err = tx.App(ctx, app)
		return notFound(err, "app", app)
	})
	if err != nil {
		return nil, false, err
	}
	if a.RetiredAt != nil {
		return nil, false, lifeboat.Errorf(lifeboat.EInvalid, "app %s is retired; re-apply it to back it up again", app)
	}
	spec, _ := json.Marshal(req)
	return s.enqueue(ctx, p.Name, &lifeboat.Job{Kind: lifeboat.JobBackup, App: app, Vault: a.Vault, RequestedBy: p.Name, Spec: spec},
		idemKey, requestHash(p, "backup/"+app, req))
}

// resolvePoint finds the point a restore asks for.
func (s *Server) resolvePoint(ctx context.Context, app string, req RestoreRequest) (*lifeboat.Point, error) {
	var pt *lifeboat.Point
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		switch {
		case req.Point != "" && req.Point != "latest":
			if req.At != "" {
				return lifeboat.Errorf(lifeboat.EInvalid, "give a point or a time, not both")
			}
			pt, _, err = tx.Point(ctx, req.Point)
			if errors.Is(err, catalog.ErrNotFound) {
				return lifeboat.Errorf(lifeboat.ENotFound, "point %s not found", req.Point)
			}
			if err == nil && pt.App != app {
				return lifeboat.Errorf(lifeboat.ENotFound, "point %s is not a point of app %s", req.Point, app)
			}
		case req.At != "":
			at, perr := time.Parse(time.RFC3339, req.At)
			if perr != nil {
				return lifeboat.Errorf(lifeboat.EInvalid, "time %q: want RFC 3339, e.g. 2026-11-24T02:00:00Z", req.At)
			}
			pt, err = tx.LatestPoint(ctx, app, at.UnixNano(), true)
			if errors.Is(err, catalog.ErrNotFound) {
				return lifeboat.Errorf(lifeboat.ENotFound, "app %s has no complete point at or before %s", app, req.At)
			}
		default:
			pt, err = tx.LatestPoint(ctx, app, 0, true)
			if errors.Is(err, catalog.ErrNotFound) {
				return lifeboat.Errorf(lifeboat.ENotFound, "app %s has no complete point", app)
			}
		}
		return err
	})
	return pt, err
}

func (s *Server) checkRestore(ctx context.Context, p *lifeboat.Principal, app string, req *RestoreRequest) (*lifeboat.Point, error) {
	if req.To == "" {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "no restore target: to is \"original\" or an absolute directory")
	}
	dbServer, dbName, toDB := dbTargetSpec(req.To)
	if toDB && (!nameRE.MatchString(dbServer) || !dbNameRE.MatchString(dbName)) {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "restore target %q: want db:SERVER/DATABASE", req.To)
	}
	if req.To != "original" && !toDB && !filepath.IsAbs(req.To) {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "restore target %q: want \"original\", an absolute directory or db:SERVER/DATABASE", req.To)
	}
	pt, err := s.resolvePoint(ctx, app, *req)
	if err != nil {
		return nil, err
	}
	have := map[string]string{}
	for _, c := range pt.Components {
		have[c.Name] = c.Kind
	}
	if len(req.Components) == 0 {
		for _, c := range pt.Components {
			req.Components = append(req.Components, c.Name)
		}
	}
	secretNeeded := req.To != "original"
	for _, c := range req.Components {
		kind, ok := have[c]
		if !ok {
			return nil, lifeboat.Errorf(lifeboat.ENotFound, "point %s has no component %s", pt.ID[:8], c)
		}
		if kind == lifeboat.KindConfig {
			secretNeeded = true
		}
		if toDB && !isDatabase(kind) {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "component %s is not a database: restore it to a directory or its original place", c)
		}
		if toDB && kind == lifeboat.KindSQLite {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "component %s is a SQLite file: restore it to a directory or its original place", c)
		}
		if req.To == "original" && (kind == lifeboat.KindPostgres || kind == lifeboat.KindMySQL) && !req.Confirm && !req.DryRun {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "restoring component %s to its original place replaces the live database's objects: look at the plan (--dry-run), then confirm (--yes)", c)
		}
	}
	if toDB && len(req.Components) != 1 {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "a restore into a new database takes one database component (--component NAME)")
	}
	// DESIGN.md invariant 6: restoring config, or anything to a
	// non-original target, needs the permission to read secrets.
	if secretNeeded {
		t, err := s.appTarget(ctx, app)
		if err != nil {
			return nil, err
		}
		if err := access.Check(p, access.ReadSecrets, t); err != nil {
			return nil, err
		}
	}
	return pt, nil
}

func (s *Server) startRestore(ctx context.Context, p *lifeboat.Principal, app string, req RestoreRequest, idemKey string) (*lifeboat.Job, bool, error) {
	pt, err := s.checkRestore(ctx, p, app, &req)
	if err != nil {
		return nil, false, err
	}
	if _, _, toDB := dbTargetSpec(req.To); toDB {
		// The target server must be registered, of the component's engine.
		server, _, _ := dbTargetSpec(req.To)
		g, err := s.guard(ctx)
		if err != nil {
			return nil, false, err
		}
		kind := ""
		for _, c := range pt.Components {
			if c.Name == req.Components[0] {
				kind = c.Kind
			}
		}
		t, err := g.DB(server, kind)
		if err != nil {
			return nil, false, err
		}
		// A new database must be new: refuse now rather than fail the job.
		_, database, _ := dbTargetSpec(req.To)
		exists, err := dbExists(ctx, kind, t, database)
		t.Close()
		if err != nil {
			return nil, false, err
		}
		if exists {
			return nil, false, lifeboat.Errorf(lifeboat.EExists, "database %s already exists on server %s: restore into a new name, or to the original place", database, server)
		}
	} else if req.To != "original" {
		g, err := s.guard(ctx)
		if err != nil {
			return nil, false, err
		}
		var a *lifeboat.App
		if err := s.db.View(ctx, func(tx *catalog.Tx) error { a, err = tx.App(ctx, app); return notFound(err, "app", app) }); err != nil {
			return nil, false, err
		}
		for _, c := range req.Components {
			if err := g.CheckTarget(dirHost(g, a, c), filepath.Join(req.To, c)); err != nil {
				return nil, false, err
			}
		}
	}
	req.Point = pt.ID
	req.At = ""
	spec, _ := json.Marshal(req)
	return s.enqueue(ctx, p.Name, &lifeboat.Job{Kind: lifeboat.JobRestore, App: app, Vault: pt.Vault, RequestedBy: p.Name, Spec: spec},
		idemKey, requestHash(p, "restore/"+app, req))
}

// dirHost is the host a restore to a directory writes on: the component's
// own, or this machine for a component of an SSH host (restores onto SSH
// hosts come later).
func dirHost(g *capture.Guard, a *lifeboat.App, comp string) string {
	h := hostOf(a, comp)
	if host := g.Hosts[h]; host != nil && host.Kind == "ssh" {
		return "local"
	}
	return h
}

func hostOf(a *lifeboat.App, comp string) string {
	for _, c := range a.Components {
		if c.Name == comp && c.Host != "" {
			return c.Host
		}
	}
	return "local"
}

// ---- settings shown and compared ----

// publicMatch matches the app's public list against a setting key
// ("component/file:KEY" or "component/KEY") or its bare key.
func publicMatch(pub config.Public, key string) bool {
	if pub.Match(key) {
		return true
	}
	bare := key
	if i := strings.LastIndexAny(bare, ":/"); i >= 0 {
		bare = bare[i+1:]
	}
	return pub.Match(bare)
}

// SettingView is a setting as the API shows it.
type SettingView struct {
	Key    string  `json:"key"`
	Type   string  `json:"type"`
	Secret bool    `json:"secret"`
	Value  *string `json:"value,omitempty"`
	// Changed compares with the previous point of the app ("" when unknown).
	Changed string `json:"changed,omitempty"` // "changed", "unchanged", "added"
}

func showSettings(set config.Settings, pub config.Public, reveal bool, prev map[string]string, h *config.Hasher) []SettingView {
	out := []SettingView{}
	for _, st := range set {
		v := SettingView{Key: st.Key, Type: string(st.Type), Secret: !publicMatch(pub, st.Key)}
		if !v.Secret || reveal {
			val := st.Value
			v.Value = &val
		}
		if prev != nil && h != nil {
			switch ph, ok := prev[st.Key]; {
			case !ok:
				v.Changed = "added"
			case ph == h.Sum(st):
				v.Changed = "unchanged"
			default:
				v.Changed = "changed"
			}
		}
		out = append(out, v)
	}
	return out
}

// SettingChange is one difference between two points' settings.
type SettingChange struct {
	Key    string  `json:"key"`
	Op     string  `json:"op"` // added, removed, changed
	Secret bool    `json:"secret"`
	Old    *string `json:"old,omitempty"`
	New    *string `json:"new,omitempty"`
}

func diffSettings(a, b config.Settings, pub config.Public) []SettingChange {
	am, bm := map[string]config.Setting{}, map[string]config.Setting{}
	keys := map[string]bool{}
	for _, s := range a {
		am[s.Key] = s
		keys[s.Key] = true
	}
	for _, s := range b {
		bm[s.Key] = s
		keys[s.Key] = true
	}
	var out []SettingChange
	for k := range keys {
		x, inA := am[k]
		y, inB := bm[k]
		c := SettingChange{Key: k, Secret: !publicMatch(pub, k)}
		switch {
		case !inA:
			c.Op = "added"
		case !inB:
			c.Op = "removed"
		case x.Type != y.Type || x.Value != y.Value:
			c.Op = "changed"
		default:
			continue
		}
		if !c.Secret {
			if inA {
				v := x.Value
				c.Old = &v
			}
			if inB {
				v := y.Value
				c.New = &v
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ---- vault placement ----

func (s *Server) checkVaultLocation(v *lifeboat.Vault) error {
	loc, err := location.Check(v.Location)
	if err != nil {
		return err
	}
	if !location.IsS3(loc) {
		return guardDataDir(s.cfg.DataDir, loc)
	}
	return nil
}

func sortFileChanges(fc []FileChange) {
	sort.Slice(fc, func(i, j int) bool { return fc[i].Path < fc[j].Path })
}

// readCredsFile reads S3 credentials from a 0600 file with
// access_key_id= and secret_access_key= lines.
func readCredsFile(path string) (string, string, error) {
	if err := keys.CheckPrivate(path); err != nil {
		return "", "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", lifeboat.Errorf(lifeboat.EInvalid, "credentials file %s: %v", path, err)
	}
	return location.ParseCredentials(path, b)
}

// dbExists asks a database server whether database exists (a check with no
// expectations: an unknown database is the driver's ENotFound).
func dbExists(ctx context.Context, kind string, t capture.DBTarget, database string) (bool, error) {
	drv := capture.DBDrivers[kind]
	if drv == nil {
		return false, lifeboat.Errorf(lifeboat.EInvalid, "no driver for %s databases in this build", kind)
	}
	err := drv.Verify(ctx, t, database, &lifeboat.DatabaseInfo{})
	switch lifeboat.ErrorCode(err) {
	case lifeboat.ENotFound:
		return false, nil
	case lifeboat.EUnavailable, lifeboat.EAuth:
		return false, err
	}
	return true, nil // verified (empty) or differing (has tables): it is there
}
