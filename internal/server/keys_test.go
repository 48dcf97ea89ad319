package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage/location"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// TestKeyAge: a vault key older than the rotation period of a policy of
// its apps shows as a warning in status.
func TestKeyAge(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UTC().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ts := newTestServer(t, testOpts{now: now})
	f := newFixture(t)
	doc := f.doc()
	doc.Policies[0].KeyRotation = lifeboat.Duration(90 * 24 * time.Hour)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	var st Status
	ts.must(t, "GET", "/api/v1/status", nil, &st)
	for _, w := range st.Warnings {
		if strings.Contains(w, "rotation period") {
			t.Errorf("a new key is old: %s", w)
		}
	}
	clock.Add(int64(91 * 24 * time.Hour))
	st = Status{}
	ts.must(t, "GET", "/api/v1/status", nil, &st)
	found := false
	for _, w := range st.Warnings {
		found = found || strings.Contains(w, "past the rotation period of 90d (policy daily): run `lifeboat key rotate --vault default`")
	}
	if !found || len(st.Vaults) == 0 || st.Vaults[0].KeyAge.D() < 91*24*time.Hour {
		t.Errorf("status after 91 days: %+v", st)
	}
	code, metrics := ts.rawDo(t, "GET", "/metrics", ts.token, "")
	if code != 200 || !strings.Contains(metrics, `lifeboat_vault_key_age_seconds{vault="default"} 78`) || !strings.Contains(metrics, "lifeboat_warnings ") {
		t.Errorf("metrics: %d\n%s", code, metrics)
	}
}

// TestKeyRotation: rotating a vault's server key writes a new slot, records
// the new passphrase, then retires the old slot (an exported slot stays and
// still opens everything, new data included); a new data key seals new
// data; the re-encrypt job rewrites old data; every point restores, after a
// restart too, and the old server passphrase no longer opens the vault.
func TestKeyRotation(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ts := newTestServer(t, testOpts{dataDir: dataDir})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	p1 := result[BackupResult](t, ts.backup(t, "shop")).Point
	var kr KeyExportResult
	ts.must(t, "POST", "/api/v1/vaults/default/key-export", KeyExportRequest{Passphrase: "operator passphrase 1"}, &kr)
	keyFile := filepath.Join(dataDir, VaultKeysDir, "default.passphrase")
	oldPass, _ := os.ReadFile(keyFile)
	var before struct {
		ServerSlot string              `json:"serverSlot"`
		Slots      []vault.SlotInfo    `json:"slots"`
		DataKeys   []vault.DataKeyInfo `json:"dataKeys"`
	}
	ts.must(t, "GET", "/api/v1/vaults/default/keys", nil, &before)
	if len(before.Slots) != 2 || len(before.DataKeys) != 1 {
		t.Fatalf("keys before: %+v", before)
	}
	var rr KeyRotateResult
	ts.must(t, "POST", "/api/v1/vaults/default/keys/rotate", KeyRotateRequest{DataKey: true, Reencrypt: true}, &rr)
	if rr.NewSlot == "" || rr.RetiredSlot != before.ServerSlot || rr.DataKey != 2 || rr.Reencrypt == nil {
		t.Fatalf("rotation: %+v", rr)
	}
	if d := ts.waitJob(t, rr.Reencrypt.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("re-encrypt job: %s", d.Error)
	}
	after := before
	after.Slots, after.DataKeys = nil, nil
	ts.must(t, "GET", "/api/v1/vaults/default/keys", nil, &after)
	ids := map[string]bool{}
	for _, s := range after.Slots {
		ids[s.ID] = true
	}
	if len(after.Slots) != 2 || !ids[rr.NewSlot] || !ids[kr.Slot] || ids[before.ServerSlot] || after.ServerSlot != rr.NewSlot || len(after.DataKeys) != 2 {
		t.Errorf("keys after: %+v (exported slot %s)", after, kr.Slot)
	}
	newPass, _ := os.ReadFile(keyFile)
	if string(newPass) == string(oldPass) {
		t.Error("the passphrase file did not change")
	}
	p2 := result[BackupResult](t, ts.backup(t, "shop")).Point
	// Both points restore through the server.
	for i, p := range []string{p1, p2} {
		var rj lifeboat.Job
		ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"data"}, To: filepath.Join(f.restoreRoot, fmt.Sprint("rot", i))}, &rj)
		if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
			t.Errorf("restore of point %d after rotation: %s", i, d.Error)
		}
	}
	// Offline: the exported slot opens the vault and reads the new data; the
	// old server passphrase does not open it any more.
	loc := filepath.Join(dataDir, "vaults", "default")
	be, err := location.Open(t.Context(), location.Spec{Location: loc}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if _, err := vault.Open(t.Context(), be, []byte(strings.TrimSpace(string(oldPass))), vault.Options{}); codeOf(err) != lifeboat.EAuth {
		t.Errorf("the retired server passphrase: %v", err)
	}
	v, err := vault.Open(t.Context(), be, []byte("operator passphrase 1"), vault.Options{})
	if err != nil {
		t.Fatalf("the exported slot after rotation: %v", err)
	}
	pt, err := v.LoadPoint(t.Context(), p2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Restore(t.Context(), pt, vault.RestoreOptions{Target: filepath.Join(t.TempDir(), "offline")}); err != nil {
		t.Errorf("offline restore of the new point with the exported slot: %v", err)
	}
	v.Close()
	// A restarted server opens the vault with the new passphrase.
	ts.stop()
	ts2 := newTestServer(t, testOpts{dataDir: dataDir})
	ts2.backup(t, "shop")
	ts2.must(t, "POST", "/api/v1/vaults/default/keys/rotate", KeyRotateRequest{}, &rr)
	if rr.RetiredSlot != after.ServerSlot {
		t.Errorf("second rotation retired %s, want %s", rr.RetiredSlot, after.ServerSlot)
	}
	audit := auditText(t, ts2)
	for _, want := range []string{`"action":"key.rotate"`, `"action":"key.rotate-data-key"`, `"action":"key.reencrypt"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
}
