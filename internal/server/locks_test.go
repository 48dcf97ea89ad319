package server

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// TestVaultLock: a governance lock keeps every point younger than its
// minimum retention whatever the policy says; strengthening it runs at
// once, weakening or removing it waits for a second person; compliance
// mode is refused on local storage.
func TestVaultLock(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UTC().Add(-25 * time.Hour).UnixNano()) // 25 h later it is now: prunes check the storage clock
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ts := newTestServer(t, testOpts{now: now})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil) // daily: last 3
	var shop lifeboat.App
	ts.must(t, "GET", "/api/v1/apps/shop", nil, &shop)
	lockPath := "/api/v1/vaults/" + shop.Vault + "/lock"
	for _, bad := range []LockRequest{{Mode: "strict", MinRetention: lifeboat.Duration(time.Hour)}, {Mode: LockGovernance}, {Mode: LockCompliance, MinRetention: lifeboat.Duration(time.Hour)}} {
		if err := ts.do(t, "PUT", lockPath, bad, nil); codeOf(err) != lifeboat.EInvalid {
			t.Errorf("lock %+v: %v", bad, err)
		}
	}
	err := ts.do(t, "PUT", lockPath, LockRequest{Mode: LockCompliance, MinRetention: lifeboat.Duration(30 * 24 * time.Hour), CoolingOff: lifeboat.Duration(48 * time.Hour)}, nil)
	if codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "governance mode only") {
		t.Errorf("compliance lock on local storage: %v", err)
	}
	// An approver of standing, so that weakening waits.
	ts.must(t, "PUT", "/api/v1/principals/alice", PrincipalSpec{Kind: "user"}, nil)
	ts.must(t, "PUT", "/api/v1/principals/approvers", PrincipalSpec{Kind: "group"}, nil)
	ts.must(t, "PUT", "/api/v1/groups/approvers/members/alice", nil, nil)
	var tc TokenCreated
	ts.must(t, "POST", "/api/v1/tokens", TokenRequest{Principal: "alice"}, &tc)
	alice := api.New(ts.url, tc.Token)
	clock.Add(int64(25 * time.Hour))

	ts.must(t, "PUT", lockPath, LockRequest{Mode: LockGovernance, MinRetention: lifeboat.Duration(30 * 24 * time.Hour)}, nil)
	for range 5 {
		ts.backup(t, "shop")
	}
	waitIdle(t, ts) // each backup is followed by a prune by the policy
	var pts List[*lifeboat.Point]
	ts.must(t, "GET", "/api/v1/apps/shop/points", nil, &pts)
	if len(pts.Items) != 5 {
		t.Errorf("a locked vault lost points to a last-3 policy: %d left", len(pts.Items))
	}
	// The vault records its lock: it binds every writer (the offline CLI
	// too), and a catalog that lost it gets it back at start.
	v, err := ts.vaults.get(t.Context(), shop.Vault)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := v.Lock(t.Context()); err != nil || rec == nil || rec.Mode != LockGovernance || rec.MinRetention != 30*24*time.Hour {
		t.Fatalf("the vault's own lock record: %+v %v", rec, err)
	}
	if err := v.Mark(t.Context(), pts.Items[4].ID, vault.MarkDelete, "offline", "someone"); codeOf(err) != lifeboat.EForbidden || !strings.Contains(err.Error(), "governance lock") {
		t.Errorf("deleting a locked point in the vault itself: %v", err)
	}
	ts.db.Update(t.Context(), func(tx *catalog.Tx) error { return tx.DeleteVaultLock(t.Context(), shop.Vault) })
	ts.matchLockRecords(t.Context())
	var got VaultLock
	ts.must(t, "GET", lockPath, nil, &got)
	if got.Mode != LockGovernance || got.MinRetention.D() != 30*24*time.Hour {
		t.Errorf("the lock the catalog got back from the vault: %+v", got)
	}

	// Stronger: at once. Weaker or removed: waits.
	ts.must(t, "PUT", lockPath, LockRequest{Mode: LockGovernance, MinRetention: lifeboat.Duration(60 * 24 * time.Hour)}, nil)
	if err := ts.do(t, "PUT", lockPath, LockRequest{Mode: LockGovernance, MinRetention: lifeboat.Duration(time.Hour)}, nil); codeOf(err) != lifeboat.EApproval || !strings.Contains(err.Error(), "vault.lock-weaken") {
		t.Errorf("weakening the lock: %v", err)
	}
	if err := ts.do(t, "DELETE", lockPath, nil, nil); codeOf(err) != lifeboat.EApproval {
		t.Errorf("removing the lock: %v", err)
	}
	var l VaultLock
	ts.must(t, "GET", lockPath, nil, &l)
	if l.MinRetention != lifeboat.Duration(60*24*time.Hour) || l.SetBy != "admin" {
		t.Errorf("lock after the waiting requests: %+v", l)
	}
	var pending List[Approval]
	ts.must(t, "GET", "/api/v1/approvals?state=pending", nil, &pending)
	for _, a := range pending.Items {
		if a.Action == "vault.unlock" {
			var done Approval
			if err := alice.Do(t.Context(), "POST", "/api/v1/approvals/"+a.ID+"/approve", nil, &done); err != nil || done.State != ApprovalExecuted {
				t.Fatalf("alice approves the unlock: %+v %v", done, err)
			}
		}
	}
	if err := ts.do(t, "GET", lockPath, nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("lock after the approved removal: %v", err)
	}
	var pj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/prunes", PruneRequest{}, &pj)
	d := ts.waitJob(t, pj.ID)
	if d.State != lifeboat.JobSucceeded {
		t.Fatalf("prune once unlocked: %s", d.Error)
	}
	if pr := result[PruneResult](t, d); len(pr.SoftDeleted) != 2 {
		t.Errorf("prune once unlocked: %+v", pr)
	}
}
