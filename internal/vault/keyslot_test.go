package vault

import (
	"context"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
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
