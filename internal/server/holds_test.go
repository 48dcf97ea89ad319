package server

import (
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// TestLegalHold: a held app loses no point to retention; a held point
// neither; holds and releases need a reason and holds.manage, and are
// audited.
func TestLegalHold(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil) // daily: last 3
	if err := ts.do(t, "POST", "/api/v1/apps/shop/hold", HoldRequest{Reason: "  "}, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("a hold without a reason: %v", err)
	}
	ts.must(t, "POST", "/api/v1/apps/shop/hold", HoldRequest{Reason: "litigation 2026-17"}, nil)
	var ids []string
	for range 4 { // each backup is followed by a prune by the policy
		ids = append(ids, result[BackupResult](t, ts.backup(t, "shop")).Point)
	}
	waitIdle(t, ts)
	prune := func() PruneResult {
		t.Helper()
		var pj lifeboat.Job
		ts.must(t, "POST", "/api/v1/apps/shop/prunes", PruneRequest{}, &pj)
		d := ts.waitJob(t, pj.ID)
		if d.State != lifeboat.JobSucceeded {
			t.Fatalf("prune: %s", d.Error)
		}
		return result[PruneResult](t, d)
	}
	if err := ts.do(t, "POST", "/api/v1/apps/shop/hold", HoldRequest{Reason: "again"}, nil); codeOf(err) != lifeboat.EExists {
		t.Errorf("held twice: %v", err)
	}
	if pr := prune(); len(pr.SoftDeleted) != 0 || pr.Kept != 4 {
		t.Errorf("prune of a held app: %+v", pr)
	}
	// The app hold is in the vault too: a hold marker on every point (new
	// ones included), so that it survives the catalog and binds the
	// offline CLI.
	v, err := ts.vaults.get(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	states, err := v.PointStates(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if st := states[id]; !st.Held || st.HoldReason != "app hold: litigation 2026-17" {
			t.Errorf("point %s of the held app: %+v", id, st)
		}
	}
	if err := v.Mark(t.Context(), ids[1], vault.MarkDelete, "offline forget", "someone"); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("deleting a point of a held app in the vault itself: %v", err)
	}
	// The catalog forgets the hold (a catalog lost and rebuilt): the
	// points stay held.
	var h *catalog.LegalHold
	ts.db.Update(t.Context(), func(tx *catalog.Tx) error {
		h, _ = tx.LegalHoldOf(t.Context(), "shop")
		return tx.DeleteLegalHold(t.Context(), "shop")
	})
	if pr := prune(); len(pr.SoftDeleted) != 0 {
		t.Errorf("prune of a held app whose catalog forgot the hold: %+v", pr)
	}
	ts.db.Update(t.Context(), func(tx *catalog.Tx) error { return tx.PutLegalHold(t.Context(), h) })
	// The oldest point held on its own, the app released: still kept.
	ts.must(t, "POST", "/api/v1/apps/shop/points/"+ids[0]+"/hold", HoldRequest{Reason: "evidence"}, nil)
	ts.must(t, "POST", "/api/v1/apps/shop/release", HoldRequest{Reason: "case closed"}, nil)
	if pr := prune(); len(pr.SoftDeleted) != 0 {
		t.Errorf("prune deleted a held point: %+v", pr)
	}
	ts.must(t, "POST", "/api/v1/apps/shop/points/"+ids[0]+"/release", HoldRequest{Reason: "evidence returned"}, nil)
	if pr := prune(); len(pr.SoftDeleted) != 1 || pr.SoftDeleted[0] != ids[0] {
		t.Errorf("prune after the releases: %+v", pr)
	}
	// A backup while held gets its marker; the scheduler tick puts back one
	// that went missing (here: released behind the server's back).
	ts.must(t, "POST", "/api/v1/apps/shop/hold", HoldRequest{Reason: "second case"}, nil)
	newID := result[BackupResult](t, ts.backup(t, "shop")).Point
	waitIdle(t, ts)
	if states, _ = v.PointStates(t.Context()); !states[newID].Held {
		t.Errorf("a point backed up while its app is held: %+v", states[newID])
	}
	if err := v.Mark(t.Context(), ids[3], vault.MarkRelease, "behind the server's back", "someone"); err != nil {
		t.Fatal(err)
	}
	if err := ts.holdHeldApps(t.Context()); err != nil {
		t.Fatal(err)
	}
	if states, _ = v.PointStates(t.Context()); !states[ids[3]].Held {
		t.Errorf("the tick did not hold a point of a held app again: %+v", states[ids[3]])
	}
	ts.must(t, "POST", "/api/v1/apps/shop/release", HoldRequest{Reason: "second case closed"}, nil)
	if states, _ = v.PointStates(t.Context()); states[newID].Held || states[ids[3]].Held {
		t.Errorf("points still held after the release: %+v %+v", states[newID], states[ids[3]])
	}
	// Only holds.manage holds.
	ts.must(t, "PUT", "/api/v1/principals/readers", PrincipalSpec{Kind: "group"}, nil)
	ts.must(t, "PUT", "/api/v1/principals/rita", PrincipalSpec{Kind: "user"}, nil)
	ts.must(t, "PUT", "/api/v1/groups/readers/members/rita", nil, nil)
	ts.must(t, "POST", "/api/v1/assignments", AssignmentRequest{Principal: "readers", Role: "contributor", Scope: "*"}, nil)
	var tc TokenCreated
	ts.must(t, "POST", "/api/v1/tokens", TokenRequest{Principal: "rita"}, &tc)
	if err := api.New(ts.url, tc.Token).Do(t.Context(), "POST", "/api/v1/apps/shop/hold", HoldRequest{Reason: "x"}, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("a contributor holds: %v", err)
	}
	audit := auditText(t, ts)
	for _, want := range []string{`"action":"app.hold","target":"shop","outcome":"ok","detail":{"reason":"litigation 2026-17"}`, `"action":"point.release"`, `"action":"app.release"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
}

// waitIdle waits until no job is queued or running.
func waitIdle(t *testing.T, ts *testServer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		busy := 0
		for _, st := range []string{"queued", "running"} {
			var l List[*lifeboat.Job]
			ts.must(t, "GET", "/api/v1/jobs?state="+st, nil, &l)
			busy += len(l.Items)
		}
		if busy == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("jobs still running after 30 s")
}
