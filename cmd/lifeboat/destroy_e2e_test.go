package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDestroyCLI: the destructive commands outside retention through the
// binary — points delete, app purge, key destroy, vault approvers, vault
// delete — with their refusals (no reason: exit 2; a legal hold: exit 9;
// the server's own key slot, an app still using the vault: exit 2), on a
// server whose approvers have no standing yet (so each runs at once and
// the audit trail says approval was skipped; the approval itself is
// tested in the server's TestDestructiveOperations).
func TestDestroyCLI(t *testing.T) {
	st, tmp := siteStory(t, "  - name: site\n    environment: staging\n    components:\n      - {name: www, kind: files, path: SRC}\n")
	defer st.srv.stop(t)
	for range 2 {
		st.cli(0, "backup", "--app", "site", "--wait")
	}
	points := func() []string {
		t.Helper()
		var pts []struct{ ID string }
		if err := json.Unmarshal([]byte(st.cli(0, "points", "--app", "site", "-o", "json").stdout), &pts); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range pts {
			ids = append(ids, p.ID)
		}
		return ids
	}
	ids := points()
	if len(ids) != 2 {
		t.Fatalf("points: %v", ids)
	}

	// ---- a point ----
	if r := st.cli(2, "points", "delete", "--app", "site", ids[0]); !strings.Contains(r.stderr, "--reason is required") {
		t.Errorf("points delete without a reason: %s", r.stderr)
	}
	st.cli(0, "hold", "--app", "site", "--point", ids[0], "--reason", "evidence")
	if r := st.cli(9, "points", "delete", "--app", "site", ids[0], "--reason", "mistake"); !strings.Contains(r.stderr, "legal hold") {
		t.Errorf("points delete of a held point: %s", r.stderr)
	}
	st.cli(0, "release", "--app", "site", "--point", ids[0], "--reason", "returned")
	if r := st.cli(0, "points", "delete", "--app", "site", ids[0], "--reason", "uploaded a passport by mistake"); !strings.Contains(r.stdout, "soft-deleted; restorable (lifeboat points undelete) until") {
		t.Errorf("points delete: %s", r.stdout)
	}
	if got := points(); len(got) != 1 || got[0] != ids[1] {
		t.Errorf("points after points delete: %v", got)
	}
	st.cli(0, "points", "undelete", "--app", "site", ids[0])

	// ---- a key slot ----
	kc := lifeboatIn(t, st.env, "kit passphrase 2026\nkit passphrase 2026\n", "key", "export", "--vault", "default")
	if kc.code != 0 {
		t.Fatalf("key export: %d %s", kc.code, kc.stderr)
	}
	var keys struct {
		ServerSlot string `json:"serverSlot"`
		Slots      []struct{ ID string }
	}
	if err := json.Unmarshal([]byte(st.cli(0, "key", "list", "--vault", "default", "-o", "json").stdout), &keys); err != nil || len(keys.Slots) != 2 {
		t.Fatalf("key list: %+v %v", keys, err)
	}
	kit := keys.Slots[0].ID
	if kit == keys.ServerSlot {
		kit = keys.Slots[1].ID
	}
	if r := st.cli(2, "key", "destroy", "--vault", "default", keys.ServerSlot, "--reason", "x"); !strings.Contains(r.stderr, "the server's own") {
		t.Errorf("key destroy of the server's slot: %s", r.stderr)
	}
	st.cli(0, "key", "destroy", "--vault", "default", kit, "--reason", "kit lost on a train")
	if r := st.cli(0, "key", "list", "--vault", "default"); strings.Contains(r.stdout, kit) {
		t.Errorf("the destroyed slot is still listed:\n%s", r.stdout)
	}

	// ---- who approves ----
	st.cli(0, "group", "add", "vault-approvers")
	if r := st.cli(2, "vault", "approvers", "default", "--set", "nobody"); !strings.Contains(r.stderr, "not a group") {
		t.Errorf("approvers that are no group: %s", r.stderr)
	}
	st.cli(0, "vault", "approvers", "default", "--set", "vault-approvers")
	if r := st.cli(0, "vault", "approvers", "default"); !strings.Contains(r.stdout, "approved by group vault-approvers") {
		t.Errorf("vault approvers: %s", r.stdout)
	}

	// ---- the vault's lock binds the offline CLI too ----
	st.cli(0, "lock", "set", "--vault", "default", "--min-retention", "30d")
	offline := []string{"vault", "forget", "--vault", filepath.Join(tmp, "data", "vaults", "default"), "--passphrase-file", filepath.Join(tmp, "data", "vault-keys", "default.passphrase"), ids[1]}
	if r := lifeboat(t, st.env, offline...); r.code != 9 || !strings.Contains(r.stderr, "governance lock") {
		t.Errorf("offline forget of a locked point: exit %d %s", r.code, r.stderr)
	}
	st.cli(0, "lock", "remove", "--vault", "default")

	// ---- a retired app, then the vault ----
	if r := st.cli(2, "app", "purge", "site", "--reason", "closed"); !strings.Contains(r.stderr, "not retired") {
		t.Errorf("purge of a live app: %s", r.stderr)
	}
	if r := st.cli(2, "vault", "delete", "default", "--reason", "moving"); !strings.Contains(r.stderr, "used by app(s) site") {
		t.Errorf("vault delete in use: %s", r.stderr)
	}
	st.cli(0, "app", "delete", "site")
	if r := st.cli(0, "app", "purge", "site", "--reason", "site closed"); !strings.Contains(r.stdout, "2 points soft-deleted") {
		t.Errorf("purge: %s", r.stdout)
	}
	if r := st.cli(0, "vault", "delete", "default", "--reason", "moved to s3"); !strings.Contains(r.stdout, "is left as it was") {
		t.Errorf("vault delete: %s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(tmp, "data", "vaults", "default", "lifeboat.json")); err != nil {
		t.Errorf("the deleted vault's storage is gone: %v", err)
	}
	if r := st.cli(4, "vault", "sync", "default"); !strings.Contains(r.stderr, "was deleted") {
		t.Errorf("sync of a deleted vault: %s", r.stderr)
	}
	if r := st.cli(0, "audit", "list", "--action", "approval.skip"); strings.Count(r.stdout, "approval.skip") != 6 {
		t.Errorf("audit trail: want 6 skipped approvals (nobody of standing):\n%s", r.stdout)
	}
	r := st.cli(0, "audit", "list")
	for _, want := range []string{"point.soft-delete", "key.destroy", "vault.approvers", "vault.delete"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit trail lacks %s:\n%s", want, r.stdout)
		}
	}
}
