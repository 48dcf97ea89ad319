package vault

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

// slotPrefix is where key slots live (docs/vault-format.md, "Keys").
const slotPrefix = "keys/"

// Feature objects (keys/feature-<name>) say that a vault uses something a
// reader of an older revision of format 1 would misread. They live among the
// key slots on purpose: every reader parses every object there before it
// reads anything else, so an older reader refuses the vault ("not a key
// slot") instead of misreading it, and a newer reader refuses features it
// does not know. They hold no secret, are written once and never deleted.
const featurePrefix = slotPrefix + "feature-"

// featureDataKeys: data key objects (datakeys/), resealed copies of
// manifests, markers and audit segments, purge tombstones (purged/).
const featureDataKeys = "datakeys"

// featureTrees2: tree blobs in the binary encoding (tree.Encode), which
// keeps names that are not UTF-8. Written by Init and before a backup's
// first tree.
const featureTrees2 = "trees2"

var knownFeatures = map[string]bool{featureDataKeys: true, featureTrees2: true}

func isFeatureObject(name string) bool { return strings.HasPrefix(name, featurePrefix) }

func checkFeature(be storage.Backend, name string) error {
	f := strings.TrimPrefix(name, featurePrefix)
	if !knownFeatures[f] {
		return lifeboat.Errorf(lifeboat.EInvalid, "the vault at %s uses feature %q (%s), unknown to this lifeboat: upgrade it", be.Location(), f, name)
	}
	return nil
}

// ensureFeature writes keys/feature-<f> unless this value knows it is there.
func (v *Vault) ensureFeature(ctx context.Context, f string) error {
	v.mu.Lock()
	known := v.features[f]
	v.mu.Unlock()
	if known {
		return nil
	}
	if err := putFeature(ctx, v.be, f); err != nil {
		return err
	}
	v.mu.Lock()
	v.features[f] = true
	v.mu.Unlock()
	return nil
}

// putFeature writes keys/feature-<f>; an existing one is fine.
func putFeature(ctx context.Context, be storage.Backend, f string) error {
	name := featurePrefix + f
	body := fmt.Appendf(nil, "{\"format\": \"lifeboat-vault-feature\", \"version\": 1, \"feature\": %q}\n", f)
	if err := be.Put(ctx, name, body); err != nil && !errors.Is(err, storage.ErrExists) {
		return storageError(be, fmt.Errorf("write feature object %s: %w", name, err))
	}
	return nil
}

// SlotInfo describes a key slot from its public JSON (nothing is unwrapped).
type SlotInfo struct {
	ID      string           `json:"id"`
	Created time.Time        `json:"created"`
	KDF     crypto.KDFParams `json:"kdf"` // Salt left out
}

// KeySlots lists the vault's key slots, oldest first. A slot that does not
// parse is an error naming it (Open refuses such a vault too).
func (v *Vault) KeySlots(ctx context.Context) ([]SlotInfo, error) {
	var out []SlotInfo
	err := v.be.List(ctx, slotPrefix, func(oi storage.ObjectInfo) error {
		if isFeatureObject(oi.Name) {
			return nil
		}
		b, err := storage.ReadAll(ctx, v.be, oi.Name)
		if errors.Is(err, storage.ErrNotFound) {
			return nil // retired since the listing
		}
		if err != nil {
			return err
		}
		s, err := crypto.ParseSlot(b)
		if err != nil {
			return &CorruptError{Object: oi.Name, Err: err}
		}
		if slotPrefix+s.ID != oi.Name {
			return &CorruptError{Object: oi.Name, Err: fmt.Errorf("key slot names itself %s", s.ID)}
		}
		kdf := s.KDF
		kdf.Salt = nil
		out = append(out, SlotInfo{ID: s.ID, Created: s.Created, KDF: kdf})
		return nil
	})
	if err != nil {
		return nil, storageError(v.be, err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// OpenedSlot returns the id of the key slot this value was opened with (or
// created with Init); after RotateKeySlot retired that slot for a new
// passphrase, the new slot's id.
func (v *Vault) OpenedSlot() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.slotID
}

// AddKeySlot writes a new key slot wrapping the vault's keys with
// passphrase (Argon2id with the default parameters), so that the vault
// opens with it too; it returns the slot's id. Slots are immutable objects:
// adding one never touches the others.
func (v *Vault) AddKeySlot(ctx context.Context, passphrase []byte) (string, error) {
	if len(passphrase) == 0 {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "empty passphrase")
	}
	return v.writeSlot(ctx, passphrase, v.defaultKDF())
}

func (v *Vault) defaultKDF() crypto.KDFParams {
	if v.opts.KDF != nil {
		return *v.opts.KDF
	}
	return crypto.DefaultKDF()
}

// writeSlot wraps the keys this value holds (the master secret and every
// data key it knows, the current one marked) and stores the slot.
func (v *Vault) writeSlot(ctx context.Context, passphrase []byte, kdf crypto.KDFParams) (string, error) {
	slot, err := crypto.NewSlot(v.ks.Load().keys, passphrase, kdf, v.opts.Now())
	if err != nil {
		return "", err
	}
	sb, err := slot.Marshal()
	if err != nil {
		return "", err
	}
	if err := v.be.Put(ctx, slotPrefix+slot.ID, sb); err != nil {
		return "", storageError(v.be, fmt.Errorf("write key slot %s: %w", slot.ID, err))
	}
	return slot.ID, nil
}

// RotateKeySlot replaces a key-encryption key: it writes a new slot wrapped
// by newPassphrase (the vault's default KDF parameters; if a guess with them
// would cost less than with the retired slot's (KDFParams.CostsAtLeast),
// each one below the retired slot's is raised to it: never lowered), reads
// it back and
// unwraps it, and only then deletes the slot retire, if retire is not
// empty. It returns the new slot's id. Data and other slots are untouched
// (every slot holds the master secret, which never changes).
//
// With an empty newPassphrase, it only retires (revokes) the slot retire.
// It refuses (EInvalid) to retire the vault's only slot, and (ENotFound) a
// slot that does not exist. Two processes revoking the vault's last two
// slots at once could both succeed: the server serialises key operations.
func (v *Vault) RotateKeySlot(ctx context.Context, newPassphrase []byte, retire string) (string, error) {
	if len(newPassphrase) == 0 && retire == "" {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "rotate key slot: no new passphrase and no slot to retire")
	}
	slots, err := v.KeySlots(ctx)
	if err != nil {
		return "", err
	}
	var old *SlotInfo
	if retire != "" {
		for i := range slots {
			if slots[i].ID == retire {
				old = &slots[i]
			}
		}
		if old == nil {
			return "", lifeboat.Errorf(lifeboat.ENotFound, "no key slot %q in the vault at %s", retire, v.be.Location())
		}
		if len(slots) == 1 && len(newPassphrase) == 0 {
			return "", lifeboat.Errorf(lifeboat.EInvalid, "key slot %s is the only slot of the vault at %s: retiring it would lock the vault; rotate it to a new passphrase instead", retire, v.be.Location())
		}
	}
	newID := ""
	if len(newPassphrase) > 0 {
		kdf := v.defaultKDF()
		if old != nil && !kdf.CostsAtLeast(old.KDF) {
			kdf.Time = max(kdf.Time, old.KDF.Time)
			kdf.MemoryKiB = max(kdf.MemoryKiB, old.KDF.MemoryKiB)
			kdf.Threads = max(kdf.Threads, old.KDF.Threads)
		}
		if newID, err = v.writeSlot(ctx, newPassphrase, kdf); err != nil {
			return "", err
		}
		// Write first, delete after: the new slot must open before any
		// other goes.
		if err := v.verifySlot(ctx, newID, newPassphrase); err != nil {
			return "", err
		}
	}
	if retire == "" {
		return newID, nil
	}
	// Listed again just before the delete: never delete the last slot.
	slots, err = v.KeySlots(ctx)
	if err != nil {
		return newID, err
	}
	others := 0
	for _, s := range slots {
		if s.ID != retire {
			others++
		}
	}
	if others == 0 {
		return newID, lifeboat.Errorf(lifeboat.EInvalid, "key slot %s is the only slot of the vault at %s: not retired", retire, v.be.Location())
	}
	if err := v.be.Delete(ctx, slotPrefix+retire); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return newID, storageError(v.be, fmt.Errorf("retire key slot %s: %w", retire, err))
	}
	v.mu.Lock()
	if v.slotID == retire && newID != "" {
		v.slotID = newID
	}
	v.mu.Unlock()
	return newID, nil
}

// verifySlot reads slot id back and checks that passphrase opens it to this
// vault's master secret.
func (v *Vault) verifySlot(ctx context.Context, id string, passphrase []byte) error {
	name := slotPrefix + id
	b, err := storage.ReadAll(ctx, v.be, name)
	if err != nil {
		return storageError(v.be, fmt.Errorf("read back key slot %s: %w", id, err))
	}
	s, err := crypto.ParseSlot(b)
	if err != nil {
		return storageError(v.be, &CorruptError{Object: name, Err: err})
	}
	k, err := s.Unwrap(passphrase)
	if err != nil || k.Master != v.ks.Load().keys.Master {
		return lifeboat.Errorf(lifeboat.ECorrupt, "key slot %s at %s does not open to this vault's keys after being written", id, v.be.Location())
	}
	return nil
}

// KeySlotData returns the stored bytes of key slot id (a disaster kit
// keeps a copy: the slot is wrapped by its passphrase, and storage that
// never locks slots may lose it).
func (v *Vault) KeySlotData(ctx context.Context, id string) ([]byte, error) {
	if _, err := hex.DecodeString(id); err != nil || len(id) != 32 {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "key slot %q: not a slot id", id)
	}
	b, err := storage.ReadAll(ctx, v.be, slotPrefix+id)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, lifeboat.Errorf(lifeboat.ENotFound, "key slot %s is not in %s", id, v.be.Location())
		}
		return nil, storageError(v.be, err)
	}
	return b, nil
}
