package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// TestSignInAndTokens: a user signs in with a password, brute force is
// rate limited, tokens are listed and revoked, a token in a query string
// is not read, and no password or token appears in the audit trail or the
// logs.
func TestSignInAndTokens(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	ts.must(t, "PUT", "/api/v1/principals/ann", PrincipalSpec{Kind: "user"}, nil)
	const pw = "correct horse battery staple"
	if err := ts.do(t, "PUT", "/api/v1/principals/ann/password", PasswordRequest{Password: "short"}, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("a short password: %v", err)
	}
	ts.must(t, "PUT", "/api/v1/principals/ann/password", PasswordRequest{Password: pw}, nil)
	anon := api.New(ts.url, "")
	var sess TokenCreated
	if err := anon.Do(t.Context(), "POST", "/api/v1/sessions", SignInRequest{Name: "ann", Password: pw}, &sess); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if !strings.HasPrefix(sess.Token, catalog.TokenPrefix) || sess.Info.ExpiresAt == nil || sess.Info.ExpiresAt.Sub(sess.Info.CreatedAt) != 12*time.Hour {
		t.Errorf("session token: %+v", sess.Info)
	}
	ann := api.New(ts.url, sess.Token)
	var me lifeboat.Principal
	if err := ann.Do(t.Context(), "GET", "/api/v1/whoami", nil, &me); err != nil || me.Name != "ann" {
		t.Errorf("whoami as ann: %+v %v", me, err)
	}
	// Her own password: only with the current one (a stolen session token
	// alone does not take the account).
	newPw := pw + " renewed"
	for _, bad := range []PasswordRequest{{Password: newPw}, {Password: newPw, CurrentPassword: "not it at all"}} {
		if err := ann.Do(t.Context(), "PUT", "/api/v1/principals/ann/password", bad, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "current password") {
			t.Errorf("own password without the right current one: %v", err)
		}
	}
	// Wrong current passwords count as failed sign-ins: after five, even
	// the right one waits.
	for range 3 {
		ann.Do(t.Context(), "PUT", "/api/v1/principals/ann/password", PasswordRequest{Password: newPw, CurrentPassword: "a guess"}, nil)
	}
	if err := ann.Do(t.Context(), "PUT", "/api/v1/principals/ann/password", PasswordRequest{Password: newPw, CurrentPassword: pw}, nil); codeOf(err) != lifeboat.ERateLimited {
		t.Errorf("a sixth password change after five wrong current passwords: %v", err)
	}
	ts.signIns.reset()
	var stored string
	ts.db.View(t.Context(), func(tx *catalog.Tx) error { _, stored, _ = tx.PasswordHash(t.Context(), "ann"); return nil })
	if !checkPassword(pw, stored) {
		t.Error("a refused change took effect")
	}
	if err := ann.Do(t.Context(), "PUT", "/api/v1/principals/ann/password", PasswordRequest{Password: newPw, CurrentPassword: pw}, nil); err != nil {
		t.Fatalf("own password with the current one: %v", err)
	}
	if err := ann.Do(t.Context(), "PUT", "/api/v1/principals/ann/password", PasswordRequest{Password: pw, CurrentPassword: newPw}, nil); err != nil {
		t.Fatalf("own password back: %v", err)
	}
	// Ann has no role: reads are refused, and say why.
	if err := ann.Do(t.Context(), "GET", "/api/v1/hosts", nil, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "ann has no role that allows read") {
		t.Errorf("ann reads hosts: %v", err)
	}
	// A token in the query string is not a credential.
	if code, _ := ts.rawDo(t, "GET", "/api/v1/whoami?access_token="+sess.Token, "", ""); code != http.StatusUnauthorized {
		t.Errorf("token in the query string: %d", code)
	}
	// Wrong passwords: refused alike for a wrong password and an unknown
	// user, then rate limited (even the right password waits).
	for i := range 5 {
		name := "ann"
		if i%2 == 1 {
			name = "nobody"
		}
		err := anon.Do(t.Context(), "POST", "/api/v1/sessions", SignInRequest{Name: name, Password: "wrong password " + name}, nil)
		if codeOf(err) != lifeboat.EAuth || err.Error() != "sign-in: wrong name or password" {
			t.Errorf("attempt %d: %v", i, err)
		}
	}
	err := anon.Do(t.Context(), "POST", "/api/v1/sessions", SignInRequest{Name: "ann", Password: pw}, nil)
	if codeOf(err) != lifeboat.ERateLimited {
		t.Errorf("sign-in after 5 failures from one address: %v", err)
	}
	if code, _ := ts.rawDo(t, "POST", "/api/v1/sessions", "", `{"name":"ann","password":"x"}`); code != http.StatusTooManyRequests {
		t.Errorf("rate-limited status %d", code)
	}
	// Ann's tokens: listed without the secret, revoked, then refused.
	var mine struct{ Items []catalog.TokenInfo }
	if err := ann.Do(t.Context(), "GET", "/api/v1/tokens", nil, &mine); err != nil || len(mine.Items) != 1 || mine.Items[0].Principal != "ann" {
		t.Fatalf("ann's tokens: %+v %v", mine, err)
	}
	// Someone else's tokens need tokens.manage.
	if err := ann.Do(t.Context(), "GET", "/api/v1/tokens?principal=admin", nil, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("ann lists admin's tokens: %v", err)
	}
	ts.must(t, "DELETE", "/api/v1/tokens/"+mine.Items[0].ID, nil, nil)
	if err := ann.Do(t.Context(), "GET", "/api/v1/whoami", nil, nil); codeOf(err) != lifeboat.EAuth {
		t.Errorf("a revoked token: %v", err)
	}
	// Nothing secret in the audit trail or the logs.
	audit := auditText(t, ts)
	for _, secret := range []string{pw, sess.Token, ts.token, "wrong password ann", "wrong password nobody"} {
		if strings.Contains(audit, secret) || strings.Contains(ts.logs.String(), secret) {
			t.Errorf("%.12s... appears in the audit trail or the logs", secret)
		}
	}
	for _, want := range []string{`"action":"session.create","target":"ann","outcome":"ok"`, `"action":"session.create","target":"nobody","outcome":"denied"`, `"rate limited"`, `"action":"token.revoke"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
}

// TestGroupsAndAssignments: roles through nested groups, the
// require_group_assignments rule, orphaned apps, access check, the app's
// own identity backing up before a deploy, and a restore by a principal
// without restore rights refused and audited.
func TestGroupsAndAssignments(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	doc := f.doc()
	doc.Apps[0].Owners = []string{"shop-owners"}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	for _, p := range []struct{ name, kind string }{{"ann", "user"}, {"bob", "user"}, {"shop-owners", "group"}, {"shop-ops", "group"}} {
		ts.must(t, "PUT", "/api/v1/principals/"+p.name, PrincipalSpec{Kind: p.kind}, nil)
	}
	// Individual users cannot hold roles on a production app.
	err := ts.do(t, "POST", "/api/v1/assignments", AssignmentRequest{Principal: "ann", Role: "restore-operator", Scope: "app:shop"}, nil)
	if codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "production app shop") {
		t.Errorf("a user assignment on a production app: %v", err)
	}
	for _, bad := range []AssignmentRequest{{"shop-ops", "god", "*"}, {"shop-ops", "app-identity", "app:shop"}, {"shop-ops", "reader", "apps:team"}, {"nobody", "reader", "*"}} {
		if err := ts.do(t, "POST", "/api/v1/assignments", bad, nil); err == nil {
			t.Errorf("assignment %+v accepted", bad)
		}
	}
	// The app is orphaned until its owner group has members.
	var rep AccessReport
	ts.must(t, "GET", "/api/v1/access/report", nil, &rep)
	if len(rep.OrphanedApps) != 1 || rep.OrphanedApps[0].App != "shop" || !strings.Contains(rep.OrphanedApps[0].Reason, "shop-owners is empty") {
		t.Errorf("orphans: %+v", rep.OrphanedApps)
	}
	// ann in shop-ops in shop-owners: nested.
	ts.must(t, "PUT", "/api/v1/groups/shop-owners/members/shop-ops", nil, nil)
	ts.must(t, "PUT", "/api/v1/groups/shop-ops/members/ann", nil, nil)
	if err := ts.do(t, "PUT", "/api/v1/groups/shop-ops/members/shop-owners", nil, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("a cycle of groups: %v", err)
	}
	ts.must(t, "POST", "/api/v1/assignments", AssignmentRequest{Principal: "shop-owners", Role: "restore-operator", Scope: "app:shop"}, nil)
	ts.must(t, "GET", "/api/v1/access/report", nil, &rep)
	if len(rep.OrphanedApps) != 0 {
		t.Errorf("orphans once the group has members: %+v", rep.OrphanedApps)
	}
	var chk AccessCheck
	ts.must(t, "GET", "/api/v1/access/check?principal=ann&action=restore.run&target=app:shop", nil, &chk)
	if !chk.Decision.Allow || !strings.Contains(chk.Decision.Via, "group shop-owners") || strings.Join(chk.Groups, ",") != "shop-ops,shop-owners" {
		t.Errorf("access check: %+v", chk)
	}
	ts.must(t, "GET", "/api/v1/access/check?principal=bob&action=restore.run&target=app:shop", nil, &chk)
	if chk.Decision.Allow || chk.Decision.Reason != "bob has no role that allows restore.run" {
		t.Errorf("access check of bob: %+v", chk)
	}
	if err := ts.do(t, "GET", "/api/v1/access/check?principal=ann&action=fly&target=app:shop", nil, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("an unknown action: %v", err)
	}

	// The app's own identity: back up before a deploy, read its jobs; nothing else.
	var tc TokenCreated
	ts.must(t, "POST", "/api/v1/tokens", TokenRequest{Principal: "app:shop", TTL: lifeboat.Duration(time.Hour)}, &tc)
	pipeline := api.New(ts.url, tc.Token)
	var j lifeboat.Job
	if err := pipeline.Do(t.Context(), "POST", "/api/v1/apps/shop/backups", BackupRequest{Reason: "pre-deploy"}, &j); err != nil {
		t.Fatalf("the app's identity backs up: %v", err)
	}
	done := ts.waitJob(t, j.ID)
	if err := pipeline.Do(t.Context(), "GET", "/api/v1/jobs/"+j.ID, nil, nil); err != nil {
		t.Errorf("the app's identity reads its job: %v", err)
	}
	var jobs struct{ Items []lifeboat.Job }
	if err := pipeline.Do(t.Context(), "GET", "/api/v1/jobs", nil, &jobs); err != nil || len(jobs.Items) == 0 {
		t.Errorf("the app's identity lists its jobs: %+v %v", jobs, err)
	}
	for _, forbidden := range []struct{ method, path string }{{"PUT", "/api/v1/hosts/evil"}, {"DELETE", "/api/v1/apps/shop"}, {"GET", "/api/v1/audit"}, {"POST", "/api/v1/apps/shop/restores"}} {
		if err := pipeline.Do(t.Context(), forbidden.method, forbidden.path, map[string]any{}, nil); codeOf(err) != lifeboat.EForbidden {
			t.Errorf("the app's identity: %s %s: %v", forbidden.method, forbidden.path, err)
		}
	}
	// ann restores (through her groups); bob, without restore rights, is
	// refused and the refusal is in the audit trail.
	point := result[BackupResult](t, done).Point
	anns := signIn(t, ts, "ann")
	bobs := signIn(t, ts, "bob")
	req := RestoreRequest{Point: point, Components: []string{"data"}, To: "original"}
	if err := bobs.Do(t.Context(), "POST", "/api/v1/apps/shop/restores", req, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("bob restores: %v", err)
	}
	if err := anns.Do(t.Context(), "POST", "/api/v1/apps/shop/restores", req, &j); err != nil {
		t.Fatalf("ann restores: %v", err)
	}
	if d := ts.waitJob(t, j.ID); d.State != lifeboat.JobSucceeded {
		t.Errorf("ann's restore: %s", d.Error)
	}
	// To another place needs secrets.read too.
	req.To = filepath.Join(f.restoreRoot, "ann")
	if err := anns.Do(t.Context(), "POST", "/api/v1/apps/shop/restores", req, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "secrets.read") {
		t.Errorf("ann restores elsewhere without secret-reader: %v", err)
	}
	audit := auditText(t, ts)
	if !strings.Contains(audit, `"actor":"bob","action":"restore.run","target":"app:shop","outcome":"denied"`) {
		t.Errorf("bob's refused restore is not in the audit trail")
	}
	// Removing a group takes its grants away.
	ts.must(t, "DELETE", "/api/v1/principals/shop-owners", nil, nil)
	if err := anns.Do(t.Context(), "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: point, Components: []string{"data"}, To: "original"}, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("ann restores after her group went: %v", err)
	}
}

// signIn gives user name a password and signs in.
func signIn(t *testing.T, ts *testServer, name string) *api.Client {
	t.Helper()
	pw := "password of " + name + " " + randomHex(4)
	ts.must(t, "PUT", "/api/v1/principals/"+name+"/password", PasswordRequest{Password: pw}, nil)
	var tc TokenCreated
	if err := api.New(ts.url, "").Do(t.Context(), "POST", "/api/v1/sessions", SignInRequest{Name: name, Password: pw}, &tc); err != nil {
		t.Fatalf("sign-in of %s: %v", name, err)
	}
	return api.New(ts.url, tc.Token)
}

// auditText is the audit trail as compact JSON (the first 1000 events).
func auditText(t *testing.T, ts *testServer) string {
	t.Helper()
	code, body := ts.rawDo(t, "GET", "/api/v1/audit?limit=1000", ts.token, "")
	var b bytes.Buffer
	if code != http.StatusOK || json.Compact(&b, []byte(body)) != nil {
		t.Fatalf("audit: %d %.200s", code, body)
	}
	return b.String()
}

// TestSignInLimitShared: two servers on one catalog share the count of
// failed sign-ins: an attacker spreading guesses over them gets no more.
func TestSignInLimitShared(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	one := newTestServer(t, testOpts{dataDir: dir})
	two := newTestServer(t, testOpts{dataDir: dir})
	one.must(t, "PUT", "/api/v1/principals/ann", PrincipalSpec{Kind: "user"}, nil)
	const pw = "ann's long password 42"
	one.must(t, "PUT", "/api/v1/principals/ann/password", PasswordRequest{Password: pw}, nil)
	for i := range 5 {
		srv := []*testServer{one, two}[i%2]
		if err := api.New(srv.url, "").Do(t.Context(), "POST", "/api/v1/sessions", SignInRequest{Name: "ann", Password: "guess " + fmt.Sprint(i)}, nil); codeOf(err) != lifeboat.EAuth {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	for _, srv := range []*testServer{one, two} {
		if err := api.New(srv.url, "").Do(t.Context(), "POST", "/api/v1/sessions", SignInRequest{Name: "ann", Password: pw}, nil); codeOf(err) != lifeboat.ERateLimited {
			t.Errorf("the sixth attempt, on %s: %v", srv.url, err)
		}
	}
}
