package vault_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// TestLockRecord: the vault's lock as recorded in the vault: none at
// first, the newest record decides (a removal too), a fresh handle reads
// the same, and a newest record that is damaged, or names another time
// than its body, is an error naming it — never an unlocked vault.
func TestLockRecord(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	o := testOpts()
	o.Now = c.Now
	v, be := newTestVault(t)
	v, err := vault.Open(ctx, be, testPass, o)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := v.Lock(ctx); err != nil || l != nil {
		t.Fatalf("a new vault's lock: %+v %v", l, err)
	}
	if err := v.RecordLock(ctx, vault.LockRecord{Mode: "governance"}); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("a lock without a minimum retention: %v", err)
	}
	must := func(rec vault.LockRecord) {
		t.Helper()
		c.Add(time.Second)
		if err := v.RecordLock(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	must(vault.LockRecord{Mode: "governance", MinRetention: 30 * 24 * time.Hour, By: "ann"})
	inForce := time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)
	must(vault.LockRecord{Mode: "compliance", MinRetention: 60 * 24 * time.Hour, EffectiveAt: inForce, By: "bob"})
	l, err := reopen(t, be).Lock(ctx)
	if err != nil || l == nil || l.Mode != "compliance" || l.MinRetention != 60*24*time.Hour || l.By != "bob" || !l.EffectiveAt.Equal(inForce) {
		t.Fatalf("the newest lock: %+v %v", l, err)
	}
	// A removal at the same instant (a clock that did not move) still
	// comes after.
	if err := v.RecordLock(ctx, vault.LockRecord{Removed: true, By: "ann"}); err != nil {
		t.Fatal(err)
	}
	if l, err := v.Lock(ctx); err != nil || l != nil {
		t.Fatalf("after a removal: %+v %v", l, err)
	}
	must(vault.LockRecord{Mode: "governance", MinRetention: time.Hour})
	// Damage the newest record: an error naming it, not the older one.
	records := func() []string {
		var names []string
		be.List(ctx, "settings/", func(oi storage.ObjectInfo) error { names = append(names, oi.Name); return nil })
		slices.Sort(names) // oldest first
		return names
	}
	rs := records()
	newest := rs[len(rs)-1]
	b, _ := storage.ReadAll(ctx, be, newest)
	b[len(b)-1] ^= 1
	be.Delete(ctx, newest)
	if err := be.Put(ctx, newest, b); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Lock(ctx); lifeboat.ErrorCode(err) != lifeboat.ECorrupt || !strings.Contains(err.Error(), newest) {
		t.Errorf("a damaged newest record: %v", err)
	}
	// A record moved to a later name (an attacker reordering history)
	// does not open: the name is part of what is authenticated.
	be.Delete(ctx, newest)
	rs = records()
	ob, _ := storage.ReadAll(ctx, be, rs[len(rs)-1]) // the removal
	later := "settings/lock-9999999999999999999-00000000"
	if err := be.Put(ctx, later, ob); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Lock(ctx); lifeboat.ErrorCode(err) != lifeboat.ECorrupt {
		t.Errorf("a record under another name: %v", err)
	}
}
