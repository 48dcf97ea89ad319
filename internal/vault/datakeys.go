package vault

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

// Data key rotation (docs/vault-format.md, "Keys"): a new data key version
// is stored as an immutable object datakeys/<version, 8 hex>, wrapped with a
// key derived from the master secret. Every slot holds the master secret, so
// a slot written before the rotation (a passphrase this process does not
// know) still reaches the new key: no slot is rewritten.

// keyState is the keys a Vault holds; it is replaced whole, never modified,
// so a writer that took the sealer keeps a consistent one.
type keyState struct {
	keys    *crypto.Keys
	sealer  *crypto.Sealer
	created map[uint32]time.Time // known creation times by version
}

// dataKeyLoader remembers which data key objects were read and which
// failed. mu also serialises changes of Vault.ks.
type dataKeyLoader struct {
	mu      sync.Mutex
	loaded  map[uint32]bool    // versions read from their datakeys object
	strays  map[string]bool    // objects in datakeys/ with another kind of name
	bad     map[uint32]Problem // datakeys objects that do not open
	unknown map[uint32]error   // versions looked up on demand and not found
}

func newDataKeyLoader() dataKeyLoader {
	return dataKeyLoader{loaded: map[uint32]bool{}, strays: map[string]bool{}, bad: map[uint32]Problem{}, unknown: map[uint32]error{}}
}

// sealer returns the sealer of the current keys: it seals with the current
// data key and opens every version this value knows.
func (v *Vault) sealer() *crypto.Sealer { return v.ks.Load().sealer }

// setKeys installs keys (the current version must be among them).
func (v *Vault) setKeys(k *crypto.Keys, created map[uint32]time.Time) error {
	s, err := k.Sealer()
	if err != nil {
		return err
	}
	v.ks.Store(&keyState{keys: k, sealer: s, created: created})
	return nil
}

func dataKeyObject(ver uint32) string { return crypto.DataKeyObjectName(ver) }

// loadDataKeys lists datakeys/ and adds every data key object not read yet.
// An object that does not open is remembered for check and skipped: the
// vault still opens, with the highest version that could be read as the
// current one. Only a storage failure is an error.
func (v *Vault) loadDataKeys(ctx context.Context) error {
	var names []string
	if err := v.be.List(ctx, "datakeys/", func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return storageError(v.be, err)
	}
	sort.Strings(names)
	v.dk.mu.Lock()
	defer v.dk.mu.Unlock()
	var add []crypto.DataKey
	for _, name := range names {
		ver, ok := crypto.ParseDataKeyObjectName(name)
		if !ok {
			v.dk.strays[name] = true
			continue
		}
		if v.dk.loaded[ver] {
			continue
		}
		d, err := v.readDataKey(ctx, ver)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			v.dk.bad[ver] = Problem{Object: name, What: fmt.Sprintf("data key object for version %d does not open: %v", ver, ce.Err)}
			continue
		}
		if err != nil {
			return storageError(v.be, err)
		}
		add = append(add, d)
	}
	return v.addDataKeys(add)
}

// readDataKey reads and unwraps datakeys/<ver>.
func (v *Vault) readDataKey(ctx context.Context, ver uint32) (crypto.DataKey, error) {
	name := dataKeyObject(ver)
	b, err := storage.ReadAll(ctx, v.be, name)
	if err != nil {
		return crypto.DataKey{}, err
	}
	d, err := v.ks.Load().keys.UnwrapDataKey(ver, b)
	if err != nil {
		return crypto.DataKey{}, &CorruptError{Object: name, Err: err}
	}
	return d, nil
}

// addDataKeys installs data keys read from their objects (v.dk.mu held) and
// makes the highest version known the current one. A version a key slot
// already holds keeps the slot's key; an object that disagrees is reported.
func (v *Vault) addDataKeys(add []crypto.DataKey) error {
	if len(add) == 0 {
		return nil
	}
	st := v.ks.Load()
	k, created := st.keys.Clone(), maps.Clone(st.created)
	for _, d := range add {
		if have, ok := k.DataKeys[d.Version]; ok && have != d.Key {
			v.dk.bad[d.Version] = Problem{Object: dataKeyObject(d.Version), What: fmt.Sprintf("data key object for version %d disagrees with the key slot's key of that version", d.Version)}
			continue
		}
		k.DataKeys[d.Version] = d.Key
		if !d.Created.IsZero() {
			created[d.Version] = d.Created
		}
		v.dk.loaded[d.Version] = true
		delete(v.dk.bad, d.Version)
		delete(v.dk.unknown, d.Version)
		k.Current = max(k.Current, d.Version)
	}
	return v.setKeys(k, created)
}

// sealerFor returns a sealer that holds the version sealed names, loading
// its data key object if this value does not know it yet (another process
// rotated since this one opened). Versions whose object is missing or does
// not open are remembered, so that damaged data costs one lookup.
func (v *Vault) sealerFor(ctx context.Context, sealed []byte) (*crypto.Sealer, error) {
	s := v.sealer()
	ver, ok := crypto.KeyVersion(sealed)
	if !ok || s.Has(ver) {
		return s, nil // a bad header fails to open with the usual error
	}
	v.dk.mu.Lock()
	defer v.dk.mu.Unlock()
	if s = v.sealer(); s.Has(ver) {
		return s, nil
	}
	if err := v.dk.unknown[ver]; err != nil {
		return nil, err
	}
	d, err := v.readDataKey(ctx, ver)
	var ce *CorruptError
	switch {
	case err == nil:
		if err := v.addDataKeys([]crypto.DataKey{d}); err != nil {
			return nil, err
		}
		if s = v.sealer(); s.Has(ver) {
			return s, nil
		}
		err = fmt.Errorf("%w (%s disagrees with the key slot)", &crypto.UnknownKeyError{Version: ver}, dataKeyObject(ver))
	case errors.Is(err, storage.ErrNotFound):
		err = fmt.Errorf("%w: no key slot holds it and %s is missing", &crypto.UnknownKeyError{Version: ver}, dataKeyObject(ver))
	case errors.As(err, &ce):
		err = fmt.Errorf("%w: no key slot holds it and %s does not open (%v)", &crypto.UnknownKeyError{Version: ver}, dataKeyObject(ver), ce.Err)
	default:
		return nil, err // storage trouble: not remembered
	}
	v.dk.unknown[ver] = err
	return nil, err
}

// keyError turns a sealerFor failure into the error of the object (and
// blob) being opened: an unknown key version is damage (CorruptError), a
// storage failure stays one.
func keyError(object, blobID string, err error) error {
	var uk *crypto.UnknownKeyError
	if errors.As(err, &uk) {
		return &CorruptError{Object: object, Blob: blobID, Err: err}
	}
	return err
}

// refreshDataKeys picks up data keys other processes added since this value
// was opened (a backup starts with it, so new writes use the newest key).
func (v *Vault) refreshDataKeys(ctx context.Context) error { return v.loadDataKeys(ctx) }

// maxRotateAttempts bounds RotateDataKey's retries when other processes
// take the next version first.
const maxRotateAttempts = 32

// RotateDataKey makes a new random data key with the next version number,
// stores it as datakeys/<version> (wrapped under the master secret, so every
// key slot reaches it), and makes it the current key for new writes of this
// value; other processes adopt it when they next open the vault or start a
// backup. Nothing already stored is rewritten: Reencrypt does that.
//
// Two processes rotating at once both try to create the same name; the
// loser reloads the data keys and takes the next number, so each rotation
// gets its own version.
func (v *Vault) RotateDataKey(ctx context.Context) (uint32, error) {
	// Readers of older format 1 revisions must refuse the vault from now on.
	if err := v.ensureFeature(ctx, featureDataKeys); err != nil {
		return 0, err
	}
	for range maxRotateAttempts {
		if err := v.loadDataKeys(ctx); err != nil {
			return 0, err
		}
		next := v.nextDataKeyVersion()
		if next == 0 || next > maxDataKeyVersion {
			return 0, lifeboat.Errorf(lifeboat.EInvalid, "the vault at %s has used every data key version", v.be.Location())
		}
		d := crypto.NewDataKey(next, v.opts.Now())
		b, err := v.ks.Load().keys.WrapDataKey(d)
		if err != nil {
			return 0, err
		}
		err = v.be.Put(ctx, dataKeyObject(next), b)
		if errors.Is(err, storage.ErrExists) {
			continue // another process took this version: reload, take the next
		}
		if err != nil {
			return 0, storageError(v.be, fmt.Errorf("write data key object %s: %w", dataKeyObject(next), err))
		}
		v.dk.mu.Lock()
		err = v.addDataKeys([]crypto.DataKey{d})
		if err == nil {
			// Current for this value even if another process went higher
			// meanwhile (its version is adopted at the next refresh).
			st := v.ks.Load()
			k := st.keys.Clone()
			k.Current = next
			err = v.setKeys(k, st.created)
		}
		v.dk.mu.Unlock()
		if err != nil {
			return 0, err
		}
		return next, nil
	}
	return 0, lifeboat.Errorf(lifeboat.EUnavailable, "rotate data key of the vault at %s: %d attempts lost to concurrent rotations", v.be.Location(), maxRotateAttempts)
}

// maxDataKeyVersion keeps version numbers far from wrapping.
const maxDataKeyVersion = 1 << 31

// nextDataKeyVersion is one more than every version known, listed as
// damaged, or named by data whose key could not be found.
func (v *Vault) nextDataKeyVersion() uint32 {
	v.dk.mu.Lock()
	defer v.dk.mu.Unlock()
	var hi uint32
	for ver := range v.ks.Load().keys.DataKeys {
		hi = max(hi, ver)
	}
	for ver := range v.dk.bad {
		hi = max(hi, ver)
	}
	for ver := range v.dk.unknown { // data names it, its key is lost: never reuse the number
		hi = max(hi, ver)
	}
	return hi + 1
}

// DataKeyInfo describes one data key version (never the key).
type DataKeyInfo struct {
	Version uint32    `json:"version"`
	Created time.Time `json:"created,omitzero"` // zero if only a key slot holds it
	Current bool      `json:"current"`          // new objects are sealed with it
}

// DataKeys lists the data key versions this value holds, oldest first.
func (v *Vault) DataKeys() []DataKeyInfo {
	st := v.ks.Load()
	out := make([]DataKeyInfo, 0, len(st.keys.DataKeys))
	for ver := range st.keys.DataKeys {
		out = append(out, DataKeyInfo{Version: ver, Created: st.created[ver], Current: ver == st.keys.Current})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// CurrentDataKey is the version new objects are sealed with.
func (v *Vault) CurrentDataKey() uint32 { return v.ks.Load().keys.Current }

// dataKeyProblems is what check reports about data keys: data key objects
// that do not open, and versions below the highest known that neither a key
// slot nor a data key object provides (what they sealed cannot be opened).
func (v *Vault) dataKeyProblems(ctx context.Context) ([]Problem, error) {
	if err := v.loadDataKeys(ctx); err != nil {
		return nil, err
	}
	v.dk.mu.Lock()
	defer v.dk.mu.Unlock()
	var out []Problem
	for name := range v.dk.strays {
		out = append(out, Problem{Object: name, What: "not a data key object (want datakeys/<8 hex digits>, version 1 or more)"})
	}
	var hi uint32
	for ver, p := range v.dk.bad {
		out = append(out, p)
		hi = max(hi, ver)
	}
	known := v.ks.Load().keys.DataKeys
	for ver := range known {
		hi = max(hi, ver)
	}
	for ver := range v.dk.unknown {
		hi = max(hi, ver)
	}
	for ver := uint32(1); ver <= hi && ver != 0; ver++ {
		if _, ok := v.dk.bad[ver]; ok {
			continue
		}
		if _, ok := known[ver]; ok {
			// Version 1 is in every key slot; a later one is in the
			// slots made after it only: older slots (a disaster kit's)
			// need its object.
			if ver > 1 && !v.dk.loaded[ver] {
				out = append(out, Problem{Object: dataKeyObject(ver), What: fmt.Sprintf("data key object for version %d is missing: this key slot holds the key, but key slots made before it (a disaster kit's copy) cannot open what it sealed", ver)})
			}
			continue
		}
		out = append(out, Problem{Object: dataKeyObject(ver), What: fmt.Sprintf("data key version %d is missing: no key slot holds it and its object is absent; whatever it sealed cannot be opened", ver)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Object < out[j].Object })
	return out, nil
}
