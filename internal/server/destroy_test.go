package server

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// TestDestructiveOperations: deleting a point early, purging a retired
// app, destroying a key slot, changing a vault's approvers and deleting
// the vault each wait for approval by that vault's own approvers group
// (a member of the server's approvers group cannot approve them); holds
// and locks refuse them outright; bad input changes nothing; all of it is
// audited.
func TestDestructiveOperations(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UTC().Add(-25 * time.Hour).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ts := newTestServer(t, testOpts{now: now})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	tokenFor := func(name string) *api.Client {
		var tc TokenCreated
		ts.must(t, "POST", "/api/v1/tokens", TokenRequest{Principal: name}, &tc)
		return api.New(ts.url, tc.Token)
	}
	for _, u := range []string{"alice", "bob", "mallory2"} {
		ts.must(t, "PUT", "/api/v1/principals/"+u, PrincipalSpec{Kind: "user"}, nil)
	}
	for _, g := range []string{"approvers", "shop-approvers"} {
		ts.must(t, "PUT", "/api/v1/principals/"+g, PrincipalSpec{Kind: "group"}, nil)
	}
	if err := ts.do(t, "PUT", "/api/v1/vaults/default/approvers", ApproversRequest{Group: "nobody"}, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), `approvers "nobody" is not a group`) {
		t.Errorf("approvers that are no group: %v", err)
	}
	// Nobody of standing yet: these run at once.
	ts.must(t, "PUT", "/api/v1/vaults/default/approvers", ApproversRequest{Group: "shop-approvers"}, nil)
	ts.must(t, "PUT", "/api/v1/groups/approvers/members/alice", nil, nil)
	ts.must(t, "PUT", "/api/v1/groups/shop-approvers/members/bob", nil, nil)
	ts.must(t, "PUT", "/api/v1/principals/night-shift", PrincipalSpec{Kind: "group"}, nil)
	ts.must(t, "PUT", "/api/v1/groups/shop-approvers/members/night-shift", nil, nil)
	var v lifeboat.Vault
	ts.must(t, "GET", "/api/v1/vaults/default", nil, &v)
	if v.Approvers != "shop-approvers" {
		t.Fatalf("vault approvers: %+v", v)
	}
	var ids []string
	for range 3 {
		ids = append(ids, result[BackupResult](t, ts.backup(t, "shop")).Point)
	}
	waitIdle(t, ts)
	clock.Add(int64(25 * time.Hour))
	alice, bob, second := tokenFor("alice"), tokenFor("bob"), tokenFor("mallory2")

	// approve has bob approve the newest pending request of action, after
	// alice (the server's approvers, not the vault's) and the requester
	// are refused.
	approve := func(action string) Approval {
		t.Helper()
		var pending struct{ Items []Approval }
		ts.must(t, "GET", "/api/v1/approvals?state=pending", nil, &pending)
		var a Approval
		for _, x := range pending.Items {
			if x.Action == action {
				a = x
				break
			}
		}
		if a.ID == "" || a.Approvers != "shop-approvers" {
			t.Fatalf("no pending %s request for shop-approvers: %+v", action, pending.Items)
		}
		if err := alice.Do(t.Context(), "POST", "/api/v1/approvals/"+a.ID+"/approve", nil, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "has not been in group shop-approvers") {
			t.Errorf("%s approved by the server's approvers: %v", action, err)
		}
		if err := ts.do(t, "POST", "/api/v1/approvals/"+a.ID+"/approve", nil, nil); codeOf(err) != lifeboat.EForbidden {
			t.Errorf("%s approved by its requester: %v", action, err)
		}
		var done Approval
		if err := bob.Do(t.Context(), "POST", "/api/v1/approvals/"+a.ID+"/approve", nil, &done); err != nil {
			t.Fatalf("bob approves %s: %v", action, err)
		}
		if done.State != ApprovalExecuted || done.Result.Status >= 300 {
			t.Fatalf("%s approved: %s %d %s", action, done.State, done.Result.Status, done.Result.Body)
		}
		return done
	}
	deleted := func(id string) bool {
		t.Helper()
		var pt lifeboat.Point
		ts.must(t, "GET", "/api/v1/apps/shop/points/"+id, nil, &pt)
		return pt.DeletedAt != nil
	}
	vaultState := func(id string) (deleted bool) {
		t.Helper()
		vv, err := ts.vaults.get(t.Context(), "default")
		if err != nil {
			t.Fatal(err)
		}
		st, err := vv.PointStates(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return st[id].Deleted
	}

	// ---- deleting a point early ----
	pointPath := "/api/v1/apps/shop/points/" + ids[0]
	if err := ts.do(t, "DELETE", pointPath, nil, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "needs a reason") {
		t.Errorf("delete without a reason: %v", err)
	}
	if err := ts.do(t, "DELETE", "/api/v1/apps/shop/points/ffffffffffff?reason=x", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("delete of no point: %v", err)
	}
	ts.must(t, "POST", pointPath+"/hold", HoldRequest{Reason: "evidence"}, nil)
	if err := ts.do(t, "DELETE", pointPath+"?reason=cleanup", nil, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "legal hold") {
		t.Errorf("delete of a held point: %v", err)
	}
	clock.Add(int64(time.Second)) // markers are ordered by time
	ts.must(t, "POST", pointPath+"/release", HoldRequest{Reason: "returned"}, nil)
	ts.must(t, "PUT", "/api/v1/vaults/default/lock", LockRequest{Mode: LockGovernance, MinRetention: lifeboat.Duration(30 * 24 * time.Hour)}, nil)
	if err := ts.do(t, "DELETE", pointPath+"?reason=cleanup", nil, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "weaken or remove the lock first") {
		t.Errorf("delete of a locked point: %v", err)
	}
	// Removing the lock waits for the vault's approvers.
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default/lock", nil, nil); codeOf(err) != lifeboat.EApproval {
		t.Fatalf("unlock: %v", err)
	}
	approve("vault.unlock")
	err := ts.do(t, "DELETE", pointPath+"?reason="+url.QueryEscape("uploaded a customer's passport by mistake"), nil, nil)
	if codeOf(err) != lifeboat.EApproval || !strings.Contains(err.Error(), "shop-approvers") {
		t.Fatalf("delete of a point: %v", err)
	}
	if deleted(ids[0]) || vaultState(ids[0]) {
		t.Fatal("the point was deleted before approval")
	}
	done := approve("point.delete")
	if !deleted(ids[0]) || !vaultState(ids[0]) || !strings.Contains(string(done.Result.Body), "restorableUntil") {
		t.Fatalf("the approved delete did not run: %s", done.Result.Body)
	}
	// Soft-deleted: undelete brings it back.
	ts.must(t, "POST", pointPath+"/undelete", nil, nil)
	if deleted(ids[0]) {
		t.Error("undelete after an early delete")
	}

	// ---- a key slot ----
	var kr KeyExportResult
	ts.must(t, "POST", "/api/v1/vaults/default/key-export", KeyExportRequest{Passphrase: "kit passphrase 2026"}, &kr)
	var keys struct {
		ServerSlot string `json:"serverSlot"`
		Slots      []struct{ ID string }
	}
	ts.must(t, "GET", "/api/v1/vaults/default/keys", nil, &keys)
	if len(keys.Slots) != 2 {
		t.Fatalf("slots after an export: %+v", keys)
	}
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default/keys/"+keys.ServerSlot+"?reason=x", nil, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "the server's own") {
		t.Errorf("destroying the server's slot: %v", err)
	}
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default/keys/"+keys.ServerSlot[:8]+"?reason=x", nil, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "the server's own") {
		t.Errorf("destroying the server's slot by its short id: %v", err)
	}
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default/keys/0123456789abcdef0123456789abcdef?reason=x", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("destroying no slot: %v", err)
	}
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default/keys/"+kr.Slot[:4]+"?reason=x", nil, nil); codeOf(err) != lifeboat.ENotFound || !strings.Contains(err.Error(), "8 characters") {
		t.Errorf("destroying by 4 characters of an id: %v", err)
	}
	// The short id key export and key list show is enough.
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default/keys/"+kr.Slot[:8]+"?reason=kit+lost", nil, nil); codeOf(err) != lifeboat.EApproval {
		t.Fatalf("destroying the kit's slot: %v", err)
	}
	approve("key.destroy")
	ts.must(t, "GET", "/api/v1/vaults/default/keys", nil, &keys)
	if len(keys.Slots) != 1 || keys.Slots[0].ID != keys.ServerSlot {
		t.Errorf("slots after the kit's was destroyed: %+v", keys)
	}

	// ---- the vault's approvers group is protected by itself ----
	if err := ts.do(t, "PUT", "/api/v1/groups/shop-approvers/members/mallory2", nil, nil); codeOf(err) != lifeboat.EApproval {
		t.Errorf("adding a vault approver: %v", err)
	}
	var ms struct{ Items []struct{ Name string } }
	ts.must(t, "GET", "/api/v1/groups/shop-approvers/members", nil, &ms)
	if len(ms.Items) != 2 {
		t.Errorf("shop-approvers changed without approval: %+v", ms.Items)
	}
	// A group inside it too: its members would approve in 24 hours.
	err = ts.do(t, "PUT", "/api/v1/groups/night-shift/members/mallory2", nil, nil)
	if codeOf(err) != lifeboat.EApproval || !strings.Contains(err.Error(), "member of group shop-approvers") {
		t.Errorf("adding to a group nested in the vault's approvers: %v", err)
	}
	if err := ts.do(t, "DELETE", "/api/v1/principals/shop-approvers", nil, nil); codeOf(err) != lifeboat.EApproval {
		t.Errorf("removing the vault's approvers group: %v", err)
	}

	// ---- purging a retired app ----
	if err := ts.do(t, "POST", "/api/v1/apps/shop/purge", PurgeRequest{Reason: "gone"}, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "not retired") {
		t.Errorf("purge of a live app: %v", err)
	}
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default?reason=x", nil, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "used by app(s) shop") {
		t.Errorf("deleting a vault in use: %v", err)
	}
	ts.must(t, "DELETE", "/api/v1/apps/shop", nil, nil)
	ts.must(t, "POST", "/api/v1/apps/shop/points/"+ids[2]+"/hold", HoldRequest{Reason: "audit 2026"}, nil)
	if err := second.Do(t.Context(), "POST", "/api/v1/apps/shop/purge", PurgeRequest{Reason: "gone"}, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("purge by a principal without prune rights: %v", err)
	}
	if err := ts.do(t, "POST", "/api/v1/apps/shop/purge", PurgeRequest{Reason: "shop closed"}, nil); codeOf(err) != lifeboat.EApproval {
		t.Fatalf("purge: %v", err)
	}
	done = approve("app.purge")
	var pr PurgeResult
	if err := json.Unmarshal(done.Result.Body, &pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.SoftDeleted) != 2 || len(pr.Kept) != 1 || pr.Kept[0].Point != ids[2] || !deleted(ids[0]) || !deleted(ids[1]) || deleted(ids[2]) {
		t.Errorf("purge: %+v", pr)
	}

	// ---- deleting the vault ----
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default?reason=x", nil, nil); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "point "+ids[2]) {
		t.Errorf("deleting a vault holding a held point: %v", err)
	}
	clock.Add(int64(time.Second))
	ts.must(t, "POST", "/api/v1/apps/shop/points/"+ids[2]+"/release", HoldRequest{Reason: "audit done"}, nil)
	if err := ts.do(t, "DELETE", "/api/v1/vaults/default?reason=moved+to+s3", nil, nil); codeOf(err) != lifeboat.EApproval {
		t.Fatalf("deleting the vault: %v", err)
	}
	approve("vault.delete")
	ts.must(t, "GET", "/api/v1/vaults/default", nil, &v)
	if v.RetiredAt == nil {
		t.Errorf("deleted vault: %+v", v)
	}
	if err := ts.do(t, "POST", "/api/v1/vaults/default/sync", nil, nil); codeOf(err) != lifeboat.ENotFound || !strings.Contains(err.Error(), "was deleted") {
		t.Errorf("a deleted vault in use: %v", err)
	}
	var st Status
	ts.must(t, "GET", "/api/v1/status", nil, &st)
	for _, x := range st.Vaults {
		if x.Name == "default" {
			t.Errorf("a deleted vault in the status: %+v", x)
		}
	}

	audit := auditText(t, ts)
	for _, want := range []string{`"action":"vault.approvers"`, `"action":"point.soft-delete","target":"shop","outcome":"ok","detail":{"early":"true"`, `"action":"key.destroy"`,
		`"action":"vault.delete"`, `"purge":"true"`, `"actor":"alice","action":"approval.approve","target":"vault:default","outcome":"denied"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
}
