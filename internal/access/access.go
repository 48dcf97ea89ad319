// Package access decides who may do what, on what: one decision function
// that every API route and every CLI command goes through.
//
// A principal (a user, a group, or a service identity) holds assignments:
// a built-in role on a scope. A role is a set of permissions; a scope is
// everything ("*"), one vault ("vault:NAME"), one app ("app:NAME") or the
// apps with a label ("apps:KEY=VALUE"). A principal's grants are its own
// assignments plus those of every group it is in, nested groups included.
// Deny by default: an action is allowed only when some grant's role holds
// the permission and its scope covers the target.
//
// access imports lifeboat only.
package access

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Permissions.
const (
	Read          = "read"           // vaults, hosts, apps, policies, points, jobs
	Manage        = "manage"         // create/change/retire vaults, apps, policies
	ManageHosts   = "hosts.manage"   // register hosts, database servers and their roots
	RunBackup     = "backup.run"     // start a backup
	RunRestore    = "restore.run"    // start a restore
	ReadSecrets   = "secrets.read"   // reveal config values; restore config or to a non-original target
	ManageKeys    = "keys.manage"    // export and rotate vault keys
	CancelJob     = "jobs.cancel"    // cancel a job
	ReadAudit     = "audit.read"     // read the audit trail and reports
	ManageTokens  = "tokens.manage"  // create, list and revoke API tokens of others
	ServerStatus  = "server.status"  // status and readiness details
	PruneVault    = "prune.run"      // run retention and garbage collection
	UndeletePoint = "points.restore" // undelete a soft-deleted point
	ManageAccess  = "access.manage"  // users, groups, service identities, role assignments
	ManageHolds   = "holds.manage"   // put and release legal holds on points and apps
)

// Permissions lists every permission, for documentation and tests.
var Permissions = []string{Read, Manage, ManageHosts, RunBackup, RunRestore, ReadSecrets, ManageKeys, CancelJob, ReadAudit, ManageTokens, ServerStatus, PruneVault, UndeletePoint, ManageAccess, ManageHolds}

// Role is a built-in role: a documented set of permissions.
type Role struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

// Built-in roles. AppIdentity is the role every app's service identity
// holds on its own app; it cannot be assigned.
const (
	Owner           = "owner"
	Contributor     = "contributor"
	BackupOperator  = "backup-operator"
	RestoreOperator = "restore-operator"
	Reader          = "reader"
	Auditor         = "auditor"
	KeyAdmin        = "key-administrator"
	HostAdmin       = "host-administrator"
	SecretReader    = "secret-reader"
	AppIdentity     = "app-identity"
)

// Roles are the built-in roles, in the order they are documented.
var Roles = []Role{
	{Owner, "everything, including access management and secrets", Permissions},
	{Contributor, "manage apps and policies (and vaults), run backups, view", []string{Read, Manage, RunBackup, CancelJob, ServerStatus}},
	{BackupOperator, "run and cancel backups, view", []string{Read, RunBackup, CancelJob, ServerStatus}},
	{RestoreOperator, "run restores (to the original place; other targets also need secret-reader), undelete points, view", []string{Read, RunRestore, CancelJob, UndeletePoint, ServerStatus}},
	{Reader, "view vaults, apps, policies, points, jobs and history", []string{Read, ServerStatus}},
	{Auditor, "read the audit trail and reports, view", []string{Read, ReadAudit, ServerStatus}},
	{KeyAdmin, "export and rotate vault keys, view", []string{Read, ManageKeys, ServerStatus}},
	{HostAdmin, "register hosts, database servers and their capture and restore roots, view", []string{Read, ManageHosts, ServerStatus}},
	{SecretReader, "read secret values: reveal config values, restore config, restore to a non-original target", []string{ReadSecrets}},
	{AppIdentity, "an app's own service identity: back up that app, read its points and jobs (not assignable)", []string{Read, RunBackup}},
}

// LookupRole returns a built-in role by name.
func LookupRole(name string) (Role, bool) {
	for _, r := range Roles {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// Assignable reports whether a role may be assigned (everything but the
// apps' own identities' role).
func Assignable(role string) bool {
	_, ok := LookupRole(role)
	return ok && role != AppIdentity
}

// Scope kinds.
const (
	ScopeAll    = "*"
	scopeVault  = "vault:"
	scopeApp    = "app:"
	scopeLabels = "apps:"
)

// ParseScope checks a scope: "*", "vault:NAME", "app:NAME" or
// "apps:KEY=VALUE".
func ParseScope(s string) error {
	switch {
	case s == ScopeAll:
		return nil
	case strings.HasPrefix(s, scopeVault) && len(s) > len(scopeVault):
		return nil
	case strings.HasPrefix(s, scopeApp) && len(s) > len(scopeApp):
		return nil
	case strings.HasPrefix(s, scopeLabels):
		k, v, ok := strings.Cut(s[len(scopeLabels):], "=")
		if ok && k != "" && v != "" {
			return nil
		}
	}
	return lifeboat.Errorf(lifeboat.EInvalid, "scope %q: want *, vault:NAME, app:NAME or apps:KEY=VALUE", s)
}

// ScopeVault, ScopeApp and ScopeLabel build scopes.
func ScopeVault(name string) string     { return scopeVault + name }
func ScopeApp(name string) string       { return scopeApp + name }
func ScopeLabel(key, val string) string { return scopeLabels + key + "=" + val }

// Target is what an action acts on. The zero Target is the server itself
// (hosts, policies, access, status): only grants on "*" cover it. An app
// target carries its vault and labels, so that vault and label scopes
// cover it.
type Target struct {
	Vault  string
	App    string
	Labels map[string]string
}

func (t Target) String() string {
	switch {
	case t.App != "":
		return "app " + t.App
	case t.Vault != "":
		return "vault " + t.Vault
	}
	return "the server"
}

// Ref names t as audit events and access checks do: "app:NAME",
// "vault:NAME" or "server".
func (t Target) Ref() string {
	switch {
	case t.App != "":
		return "app:" + t.App
	case t.Vault != "":
		return "vault:" + t.Vault
	}
	return "server"
}

// Covers reports whether scope covers target t.
func Covers(scope string, t Target) bool {
	switch {
	case scope == ScopeAll:
		return true
	case strings.HasPrefix(scope, scopeVault):
		return t.Vault != "" && t.Vault == scope[len(scopeVault):]
	case strings.HasPrefix(scope, scopeApp):
		return t.App != "" && t.App == scope[len(scopeApp):]
	case strings.HasPrefix(scope, scopeLabels):
		k, v, _ := strings.Cut(scope[len(scopeLabels):], "=")
		return t.App != "" && t.Labels[k] == v && v != ""
	}
	return false
}

// Decision is an access decision and why.
type Decision struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	// Via names the grant that allowed it (role, scope and where it came from).
	Via string `json:"via,omitempty"`
}

// ServicePrefix starts the name of every app's service identity.
const ServicePrefix = "app:"

// grants returns p's grants, the implicit ones included: an administrator
// (the first token's principal) is an owner of everything; an app's
// service identity holds AppIdentity on its app.
func grants(p *lifeboat.Principal) []lifeboat.Grant {
	gs := append([]lifeboat.Grant(nil), p.Grants...)
	if p.Admin {
		gs = append(gs, lifeboat.Grant{Role: Owner, Scope: ScopeAll, Via: "administrator"})
	}
	if app, ok := strings.CutPrefix(p.Name, ServicePrefix); ok && p.Kind == lifeboat.KindService {
		gs = append(gs, lifeboat.Grant{Role: AppIdentity, Scope: ScopeApp(app), Via: "the app's own identity"})
	}
	return gs
}

func describe(g lifeboat.Grant) string {
	s := fmt.Sprintf("role %s on %s", g.Role, g.Scope)
	if g.Via != "" {
		s += " (" + g.Via + ")"
	}
	return s
}

// Decide is the decision function: may p do action on t?
func Decide(p *lifeboat.Principal, action string, t Target) Decision {
	if p == nil {
		return Decision{Reason: "not signed in"}
	}
	held := false
	for _, g := range grants(p) {
		r, ok := LookupRole(g.Role)
		if !ok || !slices.Contains(r.Permissions, action) {
			continue
		}
		held = true
		if Covers(g.Scope, t) {
			return Decision{Allow: true, Reason: fmt.Sprintf("%s may %s on %s", p.Name, action, t), Via: describe(g)}
		}
	}
	if held {
		return Decision{Reason: fmt.Sprintf("%s holds %s, but on no scope that covers %s", p.Name, action, t)}
	}
	return Decision{Reason: fmt.Sprintf("%s has no role that allows %s", p.Name, action)}
}

// DecideAny reports whether p holds action on some scope: list routes let
// such a principal in, then show only what it may see.
func DecideAny(p *lifeboat.Principal, action string) Decision {
	if p == nil {
		return Decision{Reason: "not signed in"}
	}
	for _, g := range grants(p) {
		if r, ok := LookupRole(g.Role); ok && slices.Contains(r.Permissions, action) {
			return Decision{Allow: true, Reason: fmt.Sprintf("%s may %s on %s", p.Name, action, g.Scope), Via: describe(g)}
		}
	}
	return Decision{Reason: fmt.Sprintf("%s has no role that allows %s", p.Name, action)}
}

// Check is Decide as an error (EForbidden) for denials.
func Check(p *lifeboat.Principal, action string, t Target) error {
	return asError(Decide(p, action, t))
}

// CheckAny is DecideAny as an error.
func CheckAny(p *lifeboat.Principal, action string) error {
	return asError(DecideAny(p, action))
}

func asError(d Decision) error {
	if d.Allow {
		return nil
	}
	return &lifeboat.Error{Code: lifeboat.EForbidden, Message: "forbidden: " + d.Reason}
}

// Permissions of role name, sorted (nil for an unknown role).
func PermissionsOf(name string) []string {
	r, ok := LookupRole(name)
	if !ok {
		return nil
	}
	out := append([]string(nil), r.Permissions...)
	sort.Strings(out)
	return out
}
