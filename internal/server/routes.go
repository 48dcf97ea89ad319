package server

import (
	"net/http"

	"github.com/lifeboat-vault/lifeboat/internal/access"
)

// route is one API route: its method and pattern, the permission it needs
// (empty: public), and a one-line summary for the OpenAPI document.
type route struct {
	Method, Pattern string
	Action          string
	Summary         string
	Handler         handler
	// Body names the request body's schema for the OpenAPI document.
	Body string
}

// routes is the API: every route and the permission it needs. A route
// without an Action is public (health and the API description only).
func (s *Server) routes() []route {
	return []route{
		{"GET", "/healthz", "", "Liveness: the process answers", s.getHealthz, ""},
		{"GET", "/readyz", "", "Readiness: catalog reachable, serving; details name what is not ready (unexported vault keys)", s.getReadyz, ""},
		{"GET", "/api/v1/openapi.json", "", "This API's OpenAPI 3.1 description", s.getOpenAPI, ""},
		{"GET", "/api/v1/status", access.ServerStatus, "Server status: vaults, key export, warnings, job counts", s.getStatus, ""},
		{"GET", "/metrics", access.ServerStatus, "Prometheus metrics: readiness, key ages, warnings, jobs, audit head, pending approvals", s.getMetrics, ""},
		{"GET", "/api/v1/whoami", signedIn, "The caller's principal, groups and grants", s.getWhoami, ""},
		{"POST", "/api/v1/sessions", "", "Sign in with a user's password: a token (failed attempts rate limited per name and address)", s.signIn, "SignInRequest"},

		{"POST", "/api/v1/sign-in/oidc/start", "", "Start a browser sign-in at the OIDC issuer (authorization code with PKCE): where to send the browser", s.startOIDC, "OIDCStartRequest"},
		{"POST", "/api/v1/sign-in/oidc/finish", "", "Finish a browser sign-in with the state and code the issuer sent to the redirect URI: a session token (rate limited, audited)", s.finishOIDC, "OIDCFinishRequest"},

		{"GET", "/api/v1/roles", signedIn, "The built-in roles and their permissions", s.listRoles, ""},
		{"GET", "/api/v1/principals", access.Read, "List users, groups and service identities (kind filter)", s.listPrincipals, ""},
		{"GET", "/api/v1/principals/{principal}", access.Read, "Show a principal with its groups and grants", s.getPrincipal, ""},
		{"PUT", "/api/v1/principals/{principal}", access.ManageAccess, "Create a user or a group", s.putPrincipal, "PrincipalSpec"},
		{"DELETE", "/api/v1/principals/{principal}", access.ManageAccess, "Remove a user or group with its tokens, memberships and assignments", s.deletePrincipal, ""},
		{"PUT", "/api/v1/principals/{principal}/password", signedIn, "Set a user's password (one's own; anyone's with access.manage)", s.setPassword, "PasswordRequest"},
		{"GET", "/api/v1/groups/{group}/members", access.Read, "A group's direct members", s.listMembers, ""},
		{"PUT", "/api/v1/groups/{group}/members/{member}", access.ManageAccess, "Put a user, service identity or group in a group", s.putMember, ""},
		{"DELETE", "/api/v1/groups/{group}/members/{member}", access.ManageAccess, "Take a member out of a group", s.deleteMember, ""},
		{"GET", "/api/v1/assignments", access.Read, "Role assignments (principal filter)", s.listAssignments, ""},
		{"POST", "/api/v1/assignments", access.ManageAccess, "Give a principal a role on a scope (*, vault:V, app:A, apps:K=V)", s.postAssignment, "AssignmentRequest"},
		{"DELETE", "/api/v1/assignments/{assignment}", access.ManageAccess, "Remove a role assignment", s.deleteAssignment, ""},
		{"GET", "/api/v1/access/check", signedIn, "Explain an access decision (principal, action, target); others than oneself need read on the server", s.checkAccess, ""},
		{"GET", "/api/v1/access/report", access.ReadAudit, "Assignments to individual users that require_group_assignments flags, and orphaned apps", s.accessReport, ""},
		{"GET", "/api/v1/trust-rules", access.Read, "Workload-identity trust rules: external OIDC tokens mapped to service identities", s.listTrustRules, ""},
		{"PUT", "/api/v1/trust-rules/{rule}", access.ManageAccess, "Create or change a trust rule (issuer, audience, subject pattern, claims, service identity, TTL)", s.putTrustRule, "TrustRule"},
		{"DELETE", "/api/v1/trust-rules/{rule}", access.ManageAccess, "Remove a trust rule", s.deleteTrustRule, ""},
		{"POST", "/api/v1/token/exchange", "", "Exchange an external OIDC token that a trust rule accepts for a short-lived token of its service identity", s.exchangeToken, "ExchangeRequest"},
		{"GET", "/api/v1/approvals", access.Read, "Two-person approval requests, newest first (state filter)", s.listApprovals, ""},
		{"GET", "/api/v1/approvals/{approval}", access.Read, "Show an approval request: who asked what and why, and its outcome", s.getApproval, ""},
		{"POST", "/api/v1/approvals/{approval}/approve", signedIn, "Approve a request (a user other than the requester, in the approvers group for 24 hours before it): the server runs it as the requester", s.decideApproval(true), ""},
		{"POST", "/api/v1/approvals/{approval}/deny", signedIn, "Deny a request (the same people as approve)", s.decideApproval(false), ""},
		{"GET", "/api/v1/tokens", signedIn, "API tokens: one's own, another principal's with tokens.manage (principal=*: all)", s.listTokens, ""},
		{"POST", "/api/v1/tokens", signedIn, "Create an API token for oneself, or with tokens.manage for another principal (an app's identity): shown once", s.postToken, "TokenRequest"},
		{"DELETE", "/api/v1/tokens/{token}", signedIn, "Revoke a token (one's own; others' with tokens.manage)", s.revokeToken, ""},

		{"GET", "/api/v1/vaults", access.Read, "List vaults", s.listVaults, ""},
		{"POST", "/api/v1/vaults", access.Manage, "Create a vault (initialised in its storage)", s.createVaultH, "VaultSpec"},
		{"GET", "/api/v1/vaults/{vault}", access.Read, "Show a vault", s.getVault, ""},
		{"GET", "/api/v1/vaults/{vault}/keys", access.ManageKeys, "A vault's key slots (which one is the server's) and data key versions", s.keySlots, ""},
		{"POST", "/api/v1/vaults/{vault}/keys/rotate", access.ManageKeys, "Rotate the server's key-encryption key of a vault (dataKey: and start a new data key; reencrypt: and rewrite old data under it, as a job)", s.rotateKeys, "KeyRotateRequest"},
		{"POST", "/api/v1/vaults/{vault}/key-export", access.ManageKeys, "Add a key slot wrapped by an operator's passphrase and record the export", s.keyExport, "KeyExportRequest"},
		{"DELETE", "/api/v1/vaults/{vault}", access.Manage, "Delete a vault (reason=): retired, its storage left as it was; refused while an app uses it, it is locked or holds anything held; waits for two-person approval", s.deleteVault, ""},
		{"DELETE", "/api/v1/vaults/{vault}/keys/{slot}", access.ManageKeys, "Destroy a key slot (reason=), e.g. a leaked kit's; not the server's own; waits for two-person approval", s.destroyKeySlot, ""},
		{"PUT", "/api/v1/vaults/{vault}/approvers", access.ManageAccess, "Set the group that approves the vault's destructive requests (\"\": the server's approvers group); waits for approval by the current one", s.putVaultApprovers, "ApproversRequest"},
		{"POST", "/api/v1/vaults/{vault}/sync", access.Manage, "Rebuild the catalog's points of a vault from its manifests", s.syncVault, ""},
		{"GET", "/api/v1/vaults/{vault}/lock", access.Read, "A vault's lock: mode and minimum retention", s.getVaultLock, ""},
		{"PUT", "/api/v1/vaults/{vault}/lock", access.Manage, "Lock a vault (governance mode: no point younger than minRetention is deleted); weakening a lock waits for two-person approval", s.putVaultLock, "LockRequest"},
		{"DELETE", "/api/v1/vaults/{vault}/lock", access.Manage, "Remove a vault's lock (waits for two-person approval)", s.deleteVaultLock, ""},
		{"POST", "/api/v1/vaults/{vault}/verify", access.Manage, "Start a verify job (check, optionally reading data)", s.verifyVault, "VerifyRequest"},

		{"GET", "/api/v1/hosts", access.Read, "List hosts", s.listHosts, ""},
		{"PUT", "/api/v1/hosts/{host}", access.ManageHosts, "Register or change a host and its capture and restore roots", s.putHost, "Host"},
		{"DELETE", "/api/v1/hosts/{host}", access.ManageHosts, "Remove a host", s.deleteHost, ""},

		{"GET", "/api/v1/db-servers", access.Read, "List database servers", s.listDBServers, ""},
		{"PUT", "/api/v1/db-servers/{server}", access.ManageHosts, "Register or change a database server (connects first; the password file is read once and sealed)", s.putDBServerH, "DBServer"},
		{"DELETE", "/api/v1/db-servers/{server}", access.ManageHosts, "Remove a database server", s.deleteDBServer, ""},

		{"GET", "/api/v1/apps", access.Read, "List apps", s.listApps, ""},
		{"GET", "/api/v1/apps/{app}", access.Read, "Show an app", s.getApp, ""},
		{"PUT", "/api/v1/apps/{app}", access.Manage, "Create or change an app", s.putApp, "App"},
		{"DELETE", "/api/v1/apps/{app}", access.Manage, "Retire an app (its points are kept and follow retention)", s.deleteApp, ""},

		{"GET", "/api/v1/policies", access.Read, "List policies", s.listPolicies, ""},
		{"GET", "/api/v1/policies/{policy}", access.Read, "Show a policy", s.getPolicy, ""},
		{"PUT", "/api/v1/policies/{policy}", access.Manage, "Create or change a policy", s.putPolicy, "Policy"},
		{"DELETE", "/api/v1/policies/{policy}", access.Manage, "Delete a policy", s.deletePolicy, ""},
		{"POST", "/api/v1/policies/simulate", access.Read, "What a policy (or a change to it) would keep and drop of an app's points", s.simulatePolicy, "SimulateRequest"},

		{"POST", "/api/v1/apply", access.Manage, "Make hosts, vaults, apps and policies match a document (plan first; dryRun; prune)", s.apply, "ApplyRequest"},

		{"POST", "/api/v1/apps/{app}/backups", access.RunBackup, "Start a backup of an app (Idempotency-Key honoured)", s.postBackup, "BackupRequest"},
		{"POST", "/api/v1/apps/{app}/restores", access.RunRestore, "Start a restore, or plan it with dryRun (Idempotency-Key honoured)", s.postRestore, "RestoreRequest"},
		{"POST", "/api/v1/apps/{app}/prunes", access.PruneVault, "Start a prune of an app's points by its policy", s.postPrune, "PruneRequest"},
		{"GET", "/api/v1/apps/{app}/points", access.Read, "List an app's points, newest first", s.listPoints, ""},
		{"GET", "/api/v1/apps/{app}/points/{point}", access.Read, "Show a point with its settings (secret values masked; reveal=true needs secrets.read and is audited)", s.getPoint, ""},
		{"DELETE", "/api/v1/apps/{app}/points/{point}", access.PruneVault, "Delete a point before its retention ends (reason=): soft-deleted, restorable until purged; refused under a legal hold or a vault lock; waits for two-person approval", s.deletePoint, ""},
		{"POST", "/api/v1/apps/{app}/purge", access.PruneVault, "Soft-delete every point of a retired app, but those held or locked; waits for two-person approval", s.purgeApp, "PurgeRequest"},
		{"POST", "/api/v1/apps/{app}/points/{point}/undelete", access.UndeletePoint, "Undelete a soft-deleted point", s.undeletePoint, ""},
		{"POST", "/api/v1/apps/{app}/points/{point}/hold", access.ManageHolds, "Put a legal hold on a point (a reason is required): never deleted until released", s.holdPoint(true), "HoldRequest"},
		{"POST", "/api/v1/apps/{app}/points/{point}/release", access.ManageHolds, "Release a point's legal hold (a reason is required)", s.holdPoint(false), "HoldRequest"},
		{"POST", "/api/v1/apps/{app}/hold", access.ManageHolds, "Put a legal hold on an app: none of its points is deleted until released", s.holdApp(true), "HoldRequest"},
		{"POST", "/api/v1/apps/{app}/release", access.ManageHolds, "Release an app's legal hold (a reason is required)", s.holdApp(false), "HoldRequest"},
		{"GET", "/api/v1/apps/{app}/diff", access.Read, "Settings and files that differ between two points (from, to)", s.diffPoints, ""},

		{"GET", "/api/v1/jobs", access.Read, "List jobs, newest first (app, kind, state filters)", s.listJobs, ""},
		{"GET", "/api/v1/jobs/{job}", access.Read, "Show a job with its progress and result", s.getJob, ""},
		{"POST", "/api/v1/jobs/{job}/cancel", access.CancelJob, "Cancel a job", s.cancelJob, ""},
		{"GET", "/api/v1/jobs/{job}/logs", access.Read, "A job's log lines after a sequence number", s.jobLogs, ""},

		{"GET", "/api/v1/audit", access.ReadAudit, "Audit events in chain order (principal, action, app, since, until filters)", s.listAudit, ""},
		{"GET", "/api/v1/audit/verify", access.ReadAudit, "Check the audit hash chain in the catalog and against its copies in vault storage", s.getAuditVerify, ""},
	}
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux(s.routes()) }

// mux serves routes: authentication, access decision, handler.
func (s *Server) mux(routes []route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, errNoRoute(r))
	}))
	return mux
}
