package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/access"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// rolePermissions is what each built-in role may do, written out here (not
// read from the access package) so that a change to a role fails this test
// until the documentation (docs/access.md) and this table agree.
var rolePermissions = map[string][]string{
	"owner":              access.Permissions,
	"contributor":        {"read", "manage", "backup.run", "jobs.cancel", "server.status"},
	"backup-operator":    {"read", "backup.run", "jobs.cancel", "server.status"},
	"restore-operator":   {"read", "restore.run", "jobs.cancel", "points.restore", "server.status"},
	"reader":             {"read", "server.status"},
	"auditor":            {"read", "audit.read", "server.status"},
	"key-administrator":  {"read", "keys.manage", "server.status"},
	"host-administrator": {"read", "hosts.manage", "server.status"},
	"secret-reader":      {"secrets.read"},
}

// publicRoutes need no token at all.
var publicRoutes = []string{"GET /healthz", "GET /readyz", "GET /api/v1/openapi.json", "POST /api/v1/sessions", "POST /api/v1/token/exchange", "POST /api/v1/sign-in/oidc/start", "POST /api/v1/sign-in/oidc/finish"}

// listRoutes let in a holder of the permission on any scope (and filter).
var listRoutes = []string{"GET /metrics", "GET /api/v1/status", "GET /api/v1/vaults", "GET /api/v1/apps", "GET /api/v1/jobs"}

// TestAccessMatrix walks every route of the route table × every role × a
// scope that covers the route's target, one that does not, and "*",
// through the real authentication and decision (handlers replaced by a
// stub), and checks allow/deny against rolePermissions. A new route without
// a known permission fails it.
func TestAccessMatrix(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	doc := f.doc()
	doc.Apps = append(doc.Apps, lifeboat.App{Name: "blog", Environment: "staging", Components: []lifeboat.Component{{Name: "data", Kind: "files", Path: f.dataDir}}})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	var shop lifeboat.App
	ts.must(t, "GET", "/api/v1/apps/shop", nil, &shop)
	job := ts.backup(t, "shop")

	// One group per role and scope, one user in each (users may not hold
	// roles on production apps directly), one token per user.
	scopes := map[string]string{"all": "*", "app": "app:shop", "vault": "vault:" + shop.Vault, "out": "app:blog"}
	tokens := map[string]string{} // role/scope -> token
	for role := range rolePermissions {
		for sk, scope := range scopes {
			g, u := "g-"+role+"-"+sk, "u-"+role+"-"+sk
			ts.must(t, "PUT", "/api/v1/principals/"+g, PrincipalSpec{Kind: "group"}, nil)
			ts.must(t, "PUT", "/api/v1/principals/"+u, PrincipalSpec{Kind: "user"}, nil)
			ts.must(t, "PUT", "/api/v1/groups/"+g+"/members/"+u, nil, nil)
			ts.must(t, "POST", "/api/v1/assignments", AssignmentRequest{Principal: g, Role: role, Scope: scope}, nil)
			var tc TokenCreated
			ts.must(t, "POST", "/api/v1/tokens", TokenRequest{Principal: u}, &tc)
			tokens[role+"/"+sk] = tc.Token
		}
	}
	// The apps' own identities.
	for _, app := range []string{"shop", "blog"} {
		var tc TokenCreated
		ts.must(t, "POST", "/api/v1/tokens", TokenRequest{Principal: "app:" + app}, &tc)
		tokens["identity/"+app] = tc.Token
	}

	routes := ts.routes()
	for i := range routes {
		routes[i].Handler = func(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	h := ts.mux(routes)
	values := map[string]string{"app": "shop", "vault": shop.Vault, "job": job.ID, "host": "local", "server": "pg", "policy": "daily",
		"point": "p", "principal": "u-reader-all", "group": "g-reader-all", "member": "u-reader-all", "assignment": "a", "token": "t", "rule": "r", "approval": "x", "slot": "s"}
	param := regexp.MustCompile(`\{([a-z]+)\}`)
	call := func(rt route, token string) int {
		path := param.ReplaceAllStringFunc(rt.Pattern, func(m string) string {
			v, ok := values[m[1:len(m)-1]]
			if !ok {
				t.Fatalf("route %s %s: no test value for %s", rt.Method, rt.Pattern, m)
			}
			return v
		})
		req := httptest.NewRequest(rt.Method, path, strings.NewReader("{}"))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	checked := 0
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		switch {
		case slices.Contains(publicRoutes, key):
			if rt.Action != "" {
				t.Errorf("%s: listed public, needs %q", key, rt.Action)
			}
			if code := call(rt, ""); code != http.StatusNoContent {
				t.Errorf("%s: public route answered %d without a token", key, code)
			}
			continue
		case rt.Action == "":
			t.Errorf("%s: no permission and not a known public route", key)
			continue
		case rt.Action != signedIn && !slices.Contains(access.Permissions, rt.Action):
			t.Errorf("%s: unknown permission %q", key, rt.Action)
			continue
		}
		if code := call(rt, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", key, code)
		}
		// What the route acts on.
		target := "server"
		switch {
		case strings.Contains(rt.Pattern, "{app}"), strings.Contains(rt.Pattern, "{job}"):
			target = "app"
		case strings.Contains(rt.Pattern, "{vault}"):
			target = "vault"
		}
		for who, token := range tokens {
			role, sk, _ := strings.Cut(who, "/")
			var perms []string
			covers := false
			if role == "identity" {
				perms = []string{"read", "backup.run"}
				covers = sk == "shop" && target == "app"
			} else {
				perms = rolePermissions[role]
				switch sk {
				case "all":
					covers = true
				case "app":
					covers = target == "app"
				case "vault":
					covers = target == "app" || target == "vault"
				}
			}
			holds := slices.Contains(perms, rt.Action)
			want := holds && covers
			switch {
			case rt.Action == signedIn:
				want = true
			case slices.Contains(listRoutes, key):
				want = holds
			}
			code := call(rt, token)
			if got := code == http.StatusNoContent; got != want || (!got && code != http.StatusForbidden) {
				t.Errorf("%s as %s (%s): %d, want allowed=%v", key, who, target, code, want)
			}
			checked++
		}
	}
	t.Logf("%d routes × %d principals: %d decisions checked", len(routes), len(tokens), checked)
	// Denials are in the audit trail.
	var events struct{ Items []lifeboat.AuditEvent }
	ts.must(t, "GET", "/api/v1/audit?limit=1000", nil, &events)
	denied := 0
	for _, e := range events.Items {
		if e.Outcome == "denied" {
			denied++
		}
	}
	if denied == 0 {
		t.Error("no denied call in the audit trail")
	}
}

// TestRoleDocs: docs/access.md lists every built-in role with exactly its
// permissions.
func TestRoleDocs(t *testing.T) {
	b, err := os.ReadFile("../../docs/access.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range access.Roles {
		if r.Name == access.AppIdentity {
			continue
		}
		want := fmt.Sprintf("| `%s` | %s |", r.Name, strings.Join(access.PermissionsOf(r.Name), ", "))
		if !strings.Contains(string(b), want) {
			t.Errorf("docs/access.md lacks the line %q", want)
		}
		if got, ok := rolePermissions[r.Name]; !ok || !sameSet(got, r.Permissions) {
			t.Errorf("role %s: permissions %v, the test table says %v", r.Name, r.Permissions, got)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
