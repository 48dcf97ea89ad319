package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// TestTwoPersonApproval: shortening retention waits for a second person;
// the requester cannot approve it, nor can a second account they put in
// the approvers group (that change waits too, and a new member lacks 24
// hours' standing); a standing approver's approval runs it exactly as
// sent; requests can be denied and expire; all of it is audited.
func TestTwoPersonApproval(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	ts := newTestServer(t, testOpts{now: now})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	tokenFor := func(name string) *api.Client {
		var tc TokenCreated
		ts.must(t, "POST", "/api/v1/tokens", TokenRequest{Principal: name}, &tc)
		return api.New(ts.url, tc.Token)
	}
	for _, u := range []string{"alice", "mallory2"} {
		ts.must(t, "PUT", "/api/v1/principals/"+u, PrincipalSpec{Kind: "user"}, nil)
	}
	ts.must(t, "PUT", "/api/v1/principals/approvers", PrincipalSpec{Kind: "group"}, nil)
	// Nobody could approve yet: the first member goes in at once.
	ts.must(t, "PUT", "/api/v1/groups/approvers/members/alice", nil, nil)
	alice, second := tokenFor("alice"), tokenFor("mallory2")
	var pol lifeboat.Policy
	ts.must(t, "GET", "/api/v1/policies/daily", nil, &pol)
	if pol.Retention.Last != 3 {
		t.Fatalf("fixture policy: %+v", pol.Retention)
	}
	// Before alice has 24 hours' standing, a shortening goes through.
	pol.Retention.Last = 2
	ts.must(t, "PUT", "/api/v1/policies/daily", pol, nil)
	advance(25 * time.Hour)

	// Now it waits.
	pol.Retention.Last = 1
	code, body := ts.rawDo(t, "PUT", "/api/v1/policies/daily", ts.token, mustJSON(t, pol))
	if code != http.StatusAccepted || !strings.Contains(body, `"code": "approval_required"`) || !strings.Contains(body, "retention of policy daily: last 2→1") {
		t.Fatalf("shortening retention: %d %s", code, body)
	}
	err := ts.do(t, "PUT", "/api/v1/policies/daily", pol, nil)
	if codeOf(err) != lifeboat.EApproval {
		t.Fatalf("the client's view of a waiting request: %v", err)
	}
	var got lifeboat.Policy
	ts.must(t, "GET", "/api/v1/policies/daily", nil, &got)
	if got.Retention.Last != 2 {
		t.Fatalf("the policy changed before approval: %+v", got.Retention)
	}
	var pending struct{ Items []Approval }
	ts.must(t, "GET", "/api/v1/approvals?state=pending", nil, &pending)
	// Both PUTs above are kept (the raw one and the client's).
	if len(pending.Items) != 2 || pending.Items[0].Requester != "admin" || pending.Items[0].Action != "policy.shorten-retention" {
		t.Fatalf("pending approvals: %+v", pending.Items)
	}
	req := pending.Items[0]
	// The requester cannot approve.
	if err := ts.do(t, "POST", "/api/v1/approvals/"+req.ID+"/approve", nil, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "someone else must approve") {
		t.Errorf("self-approval: %v", err)
	}
	// Nor a second account put in the approvers group now: that change
	// waits for approval itself, and the account has no standing anyway.
	err = ts.do(t, "PUT", "/api/v1/groups/approvers/members/mallory2", nil, nil)
	if codeOf(err) != lifeboat.EApproval {
		t.Errorf("adding an approver: %v", err)
	}
	if err := second.Do(t.Context(), "POST", "/api/v1/approvals/"+req.ID+"/approve", nil, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "has not been in group approvers for 24h0m0s") {
		t.Errorf("approval by the requester's second account: %v", err)
	}
	// An app's identity is no person.
	if err := tokenFor("app:shop").Do(t.Context(), "POST", "/api/v1/approvals/"+req.ID+"/approve", nil, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("approval by a service identity: %v", err)
	}
	// A standing approver approves: it runs, as sent, once.
	var done Approval
	if err := alice.Do(t.Context(), "POST", "/api/v1/approvals/"+req.ID+"/approve", nil, &done); err != nil {
		t.Fatalf("alice approves: %v", err)
	}
	if done.State != ApprovalExecuted || done.DecidedBy != "alice" || done.Result == nil || done.Result.Status != http.StatusOK {
		t.Errorf("approved request: %+v %+v", done, done.Result)
	}
	ts.must(t, "GET", "/api/v1/policies/daily", nil, &got)
	if got.Retention.Last != 1 {
		t.Errorf("the approved change did not run: %+v", got.Retention)
	}
	if err := alice.Do(t.Context(), "POST", "/api/v1/approvals/"+req.ID+"/approve", nil, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("approved twice: %v", err)
	}
	// Denied: nothing changes.
	ts.must(t, "GET", "/api/v1/approvals?state=pending", nil, &pending)
	var addSecond Approval
	for _, a := range pending.Items {
		if a.Action == "approvers.change" {
			addSecond = a
		}
	}
	if addSecond.ID == "" || !strings.Contains(addSecond.Reason, "mallory2") {
		t.Fatalf("no request to add mallory2 to the approvers: %+v", pending.Items)
	}
	if err := alice.Do(t.Context(), "POST", "/api/v1/approvals/"+addSecond.ID+"/deny", nil, &done); err != nil || done.State != ApprovalDenied {
		t.Errorf("deny: %+v %v", done, err)
	}
	var members struct{ Items []struct{ Name string } }
	ts.must(t, "GET", "/api/v1/groups/approvers/members", nil, &members)
	if len(members.Items) != 1 || members.Items[0].Name != "alice" {
		t.Errorf("approvers after the denial: %+v", members.Items)
	}
	// Expired: too late to approve.
	pol.Retention.Last = 0
	pol.Retention.Daily = 7
	if err := ts.do(t, "PUT", "/api/v1/policies/daily", pol, nil); codeOf(err) != lifeboat.EApproval {
		t.Fatalf("another shortening: %v", err)
	}
	pending.Items = nil
	ts.must(t, "GET", "/api/v1/approvals?state=pending", nil, &pending)
	advance(ApprovalTTL + time.Minute)
	if err := alice.Do(t.Context(), "POST", "/api/v1/approvals/"+pending.Items[0].ID+"/approve", nil, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "expired") {
		t.Errorf("approving an expired request: %v", err)
	}
	// Roles of the approvers group wait too.
	var as struct{ Items []lifeboat.Assignment }
	if err := ts.do(t, "POST", "/api/v1/assignments", AssignmentRequest{Principal: "approvers", Role: "reader", Scope: "*"}, nil); codeOf(err) != lifeboat.EApproval {
		t.Errorf("a role for the approvers group: %v", err)
	}
	ts.must(t, "GET", "/api/v1/assignments?principal=approvers", nil, &as)
	if len(as.Items) != 0 {
		t.Errorf("a role for the approvers group went through without approval: %+v", as.Items)
	}
	// An owner makes no other owner alone: neither by a role nor by
	// putting someone in a group that holds one.
	ts.must(t, "PUT", "/api/v1/principals/admins", PrincipalSpec{Kind: "group"}, nil)
	ts.must(t, "PUT", "/api/v1/groups/admins/members/mallory2", nil, nil) // no role yet: at once
	var grant Approval
	err = ts.do(t, "POST", "/api/v1/assignments", AssignmentRequest{Principal: "admins", Role: "owner", Scope: "app:shop"}, nil)
	if codeOf(err) != lifeboat.EApproval || !strings.Contains(err.Error(), "owner.grant") {
		t.Fatalf("granting the owner role: %v", err)
	}
	ts.must(t, "GET", "/api/v1/approvals?state=pending", nil, &pending)
	for _, a := range pending.Items {
		if a.Action == "owner.grant" {
			grant = a
		}
	}
	if err := alice.Do(t.Context(), "POST", "/api/v1/approvals/"+grant.ID+"/approve", nil, &done); err != nil || done.State != ApprovalExecuted {
		t.Fatalf("approving the owner grant: %+v %v", done, err)
	}
	ts.must(t, "PUT", "/api/v1/principals/bob", PrincipalSpec{Kind: "user"}, nil)
	ts.must(t, "PUT", "/api/v1/principals/team", PrincipalSpec{Kind: "group"}, nil)
	for _, m := range []string{"bob", "team"} {
		if err := ts.do(t, "PUT", "/api/v1/groups/admins/members/"+m, nil, nil); codeOf(err) != lifeboat.EApproval || !strings.Contains(err.Error(), "owner.grant") {
			t.Errorf("putting %s in an owner group: %v", m, err)
		}
	}

	audit := auditText(t, ts)
	for _, want := range []string{`"action":"approval.skip"`, `"action":"approval.request"`, `"actor":"admin","action":"approval.approve","target":"policy:daily","outcome":"denied"`,
		`"actor":"alice","action":"approval.approve","target":"policy:daily","outcome":"ok"`, `"actor":"admin","action":"approval.execute","target":"policy:daily","outcome":"executed"`, `"action":"approval.deny"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBreakGlass: with a break-glass secret configured, a protected request
// carrying it runs at once — audited as such, logged at error level, and a
// status warning; a wrong secret is refused and audited; without the
// configuration there is no such path.
func TestBreakGlass(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UTC().Add(-25 * time.Hour).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	const secret = "break-glass secret kept in the safe, 2026"
	sum := sha256.Sum256([]byte(secret))
	ts := newTestServerCfg(t, testOpts{now: now}, func(c *Config) { c.BreakGlassHash = hex.EncodeToString(sum[:]) })
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	ts.must(t, "PUT", "/api/v1/principals/alice", PrincipalSpec{Kind: "user"}, nil)
	ts.must(t, "PUT", "/api/v1/principals/approvers", PrincipalSpec{Kind: "group"}, nil)
	ts.must(t, "PUT", "/api/v1/groups/approvers/members/alice", nil, nil)
	clock.Add(int64(25 * time.Hour))
	var pol lifeboat.Policy
	ts.must(t, "GET", "/api/v1/policies/daily", nil, &pol)
	pol.Retention.Last = 1
	if err := ts.do(t, "PUT", "/api/v1/policies/daily", pol, nil, "Lifeboat-Break-Glass", "guess"); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "wrong secret") {
		t.Errorf("a wrong break-glass secret: %v", err)
	}
	if err := ts.do(t, "PUT", "/api/v1/policies/daily", pol, nil, "Lifeboat-Break-Glass", secret); err != nil {
		t.Fatalf("break-glass: %v", err)
	}
	var got lifeboat.Policy
	ts.must(t, "GET", "/api/v1/policies/daily", nil, &got)
	if got.Retention.Last != 1 {
		t.Errorf("the break-glass change did not run: %+v", got.Retention)
	}
	var st Status
	ts.must(t, "GET", "/api/v1/status", nil, &st)
	if !strings.Contains(strings.Join(st.Warnings, "\n"), "BREAK-GLASS used by admin") {
		t.Errorf("status does not say break-glass was used: %v", st.Warnings)
	}
	if !strings.Contains(ts.logs.String(), `"level":"ERROR","msg":"break-glass used"`) || strings.Contains(ts.logs.String(), secret) {
		t.Error("the break-glass use is not logged at error level (or the secret is)")
	}
	audit := auditText(t, ts)
	if !strings.Contains(audit, `"action":"approval.break-glass","target":"policy:daily","outcome":"ok"`) || !strings.Contains(audit, `"action":"approval.break-glass","target":"policy:daily","outcome":"denied"`) || strings.Contains(audit, secret) {
		t.Error("break-glass uses are not in the audit trail (or the secret is)")
	}
	// A server without the configuration has no break-glass path.
	other := newTestServer(t, testOpts{})
	x := lifeboat.Policy{Name: "x", Schedule: lifeboat.Schedule{Every: lifeboat.Duration(time.Hour)}, Retention: lifeboat.Retention{Last: 2}}
	other.must(t, "PUT", "/api/v1/policies/x", x, nil)
	x.Retention.Last = 1
	if err := other.do(t, "PUT", "/api/v1/policies/x", x, nil, "Lifeboat-Break-Glass", secret); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("break-glass on a server without it: %v", err)
	}
}
