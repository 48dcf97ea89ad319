package vault

import (
	"context"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
)

func TestAddKeySlot(t *testing.T) {
	ctx := context.Background()
	be := memory.New()
	v, err := Init(ctx, be, []byte("first"), Options{KDF: &weakKDF})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.AddKeySlot(ctx, []byte("second")); err != nil {
		t.Fatal(err)
	}
	for _, pass := range []string{"first", "second"} {
		v2, err := Open(ctx, be, []byte(pass), Options{KDF: &weakKDF})
		if err != nil {
			t.Fatalf("open with %s: %v", pass, err)
		}
		if v2.Config().ID != v.Config().ID {
			t.Error("another vault")
		}
	}
	if _, err := Open(ctx, be, []byte("third"), Options{KDF: &weakKDF}); lifeboat.ErrorCode(err) != lifeboat.EAuth {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := v.AddKeySlot(ctx, nil); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("empty passphrase: %v", err)
	}
}

// Another vault's key slot, given as a disaster kit's, is refused by name:
// it opened with the passphrase, and every object then looked damaged (and
// a backup through it would have written what the vault's own slots cannot
// open). The vault's own kit opens it.
func TestKitOfAnotherVaultRefused(t *testing.T) {
	ctx := context.Background()
	f := newCorruptFixture(t)
	other, err := Init(ctx, memory.New(), []byte("pw"), Options{KDF: &weakKDF})
	if err != nil {
		t.Fatal(err)
	}
	wrongKit, err := other.KeySlotData(ctx, other.OpenedSlot())
	if err != nil {
		t.Fatal(err)
	}
	// The vault's own slot opens with the same passphrase: it is used.
	if _, err := Open(ctx, f.be, []byte("pw"), Options{KDF: &weakKDF, KeySlot: wrongKit}); err != nil {
		t.Fatalf("open with another vault's kit and the vault's own slot: %v", err)
	}
	// With the vault's slots gone, as in a disaster, the wrong kit is named.
	ownKit, _ := f.v.KeySlotData(ctx, f.v.OpenedSlot())
	f.be.Delete(ctx, slotPrefix+f.v.OpenedSlot())
	_, err = Open(ctx, f.be, []byte("pw"), Options{KDF: &weakKDF, KeySlot: wrongKit})
	if lifeboat.ErrorCode(err) != lifeboat.EAuth || !strings.Contains(err.Error(), "not this vault's") {
		t.Errorf("open with another vault's kit: %v", err)
	}
	if _, err := Open(ctx, f.be, []byte("pw"), Options{KDF: &weakKDF, KeySlot: ownKit}); err != nil {
		t.Errorf("open with the vault's own kit: %v", err)
	}
	// A damaged index is damage, not a sign of another vault's kit.
	var idx string
	f.be.List(ctx, "index/", func(oi storage.ObjectInfo) error { idx = oi.Name; return nil })
	f.be.Mutate(idx, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	if _, err := Open(ctx, f.be, []byte("pw"), Options{KDF: &weakKDF, KeySlot: ownKit}); err != nil {
		t.Errorf("open with the vault's own kit and a damaged index: %v", err)
	}
}
