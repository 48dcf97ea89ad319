// Package access decides whether a principal may do an action on a thing.
// Every API route and every job the scheduler creates passes through
// Decide; deny by default. Today the model is small: an admin may do
// everything; an app's service identity ("app:NAME") may run backups of its
// app and read its points and jobs; nobody else may do anything. The roles,
// groups and scopes of the access issue extend Decide, not its callers.
//
// access is pure: it imports lifeboat only.
package access

import (
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Actions. Each API route names one (see server/routes.go).
const (
	Read          = "read"           // vaults, hosts, apps, policies, points, jobs
	Manage        = "manage"         // create/change/retire vaults, apps, policies
	ManageHosts   = "hosts.manage"   // register hosts and their roots
	RunBackup     = "backup.run"     // start a backup
	RunRestore    = "restore.run"    // start a restore
	ReadSecrets   = "secrets.read"   // reveal config values; restore config or to a non-original target
	ManageKeys    = "keys.manage"    // export vault keys
	CancelJob     = "jobs.cancel"    // cancel a job
	ReadAudit     = "audit.read"     // read the audit trail
	ManageTokens  = "tokens.manage"  // create tokens
	ServerStatus  = "server.status"  // status and readiness details
	PruneVault    = "prune.run"      // run retention and garbage collection
	UndeletePoint = "points.restore" // undelete a soft-deleted point
)

// Scope is the thing an action applies to: everything (zero value), a
// vault, or an app.
type Scope struct {
	Vault string
	App   string
}

// Decision explains an answer.
type Decision struct {
	Allow  bool
	Reason string
}

// Decide answers whether p may do action at scope.
func Decide(p *lifeboat.Principal, action string, s Scope) Decision {
	if p == nil {
		return Decision{false, "not signed in"}
	}
	if p.Admin {
		return Decision{true, p.Name + " is an administrator"}
	}
	if app, ok := strings.CutPrefix(p.Name, "app:"); ok && p.Kind == "service" {
		if s.App != app {
			return Decision{false, p.Name + " may act on app " + app + " only"}
		}
		switch action {
		case RunBackup, Read:
			return Decision{true, p.Name + " is the service identity of app " + app}
		}
		return Decision{false, p.Name + " may only run backups and read app " + app}
	}
	return Decision{false, p.Name + " has no role that allows " + action}
}

// Check is Decide as an error (lifeboat.EAuth... forbidden) or nil.
func Check(p *lifeboat.Principal, action string, s Scope) error {
	d := Decide(p, action, s)
	if d.Allow {
		return nil
	}
	return &lifeboat.Error{Code: lifeboat.EForbidden, Message: "forbidden: " + d.Reason}
}
