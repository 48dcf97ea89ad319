package vault

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/chunker"
	"github.com/lifeboat-vault/lifeboat/internal/vault/compress"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/index"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/pack"
)

// FormatVersion is the vault format this code writes and reads.
const FormatVersion = 1

// ConfigName is the vault's plaintext description object.
const ConfigName = "lifeboat.json"

// Config is stored in plaintext at lifeboat.json. It holds no secret: only
// what a reader needs to know before it has the key.
type Config struct {
	Format      string        `json:"format"` // "lifeboat-vault"
	Version     int           `json:"version"`
	ID          string        `json:"id"`
	Created     time.Time     `json:"created"`
	Chunker     ChunkerConfig `json:"chunker"`
	Hash        string        `json:"hash"`        // "blake3-keyed-256"
	Cipher      string        `json:"cipher"`      // "aes-256-gcm"
	Compression string        `json:"compression"` // "zstd"
	PackSize    int           `json:"pack_size"`   // target bytes per pack
}

// ChunkerConfig names the chunking algorithm and its parameters.
type ChunkerConfig struct {
	Alg string `json:"alg"` // "fastcdc-gear-v1"
	Min int    `json:"min"`
	Avg int    `json:"avg"`
	Max int    `json:"max"`
}

// Options tune a vault handle. Zero values take defaults.
type Options struct {
	// Now is the clock for manifest times (injected in tests).
	Now func() time.Time
	// KDF overrides the key-derivation parameters of new key slots. Tests
	// only: the CLI never sets it, so real vaults get crypto.DefaultKDF.
	KDF *crypto.KDFParams
	// PackSize overrides the target pack size of a new vault (tests).
	PackSize int
	// Workers is the number of backup/restore workers (default GOMAXPROCS, at least 2).
	Workers int
	// CheckpointEvery is how often a backup writes an index object for the
	// packs it has stored so far (default DefaultCheckpointEvery), so that a
	// backup killed half-way leaves them for the next one to reuse.
	CheckpointEvery time.Duration
	// KeySlot is a key slot kept outside the storage (a disaster kit's
	// copy): Open tries it before the vault's own slots, so that a vault
	// whose slots were deleted still opens with it.
	KeySlot []byte
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workers <= 0 {
		o.Workers = max(2, runtime.GOMAXPROCS(0))
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
}

// DefaultCheckpointEvery is how often a backup makes the packs it stored so
// far reusable by the next backup, should it not finish. (A failed or
// interrupted backup does so as it stops.) Each time costs one small object.
const DefaultCheckpointEvery = 5 * time.Minute

// DefaultPackSize is the target size of a pack file.
const DefaultPackSize = 16 << 20

// Vault is an open vault.
type Vault struct {
	be     storage.Backend
	cfg    Config
	opts   Options
	ks     atomic.Pointer[keyState] // replaced whole when a data key is added
	slotID string                   // the key slot this value was opened with
	idKey  [32]byte
	table  *chunker.Table
	params chunker.Params
	idx    *index.Index

	hashers   sync.Pool
	scratch   sync.Pool // *[]byte compression buffers
	freePacks chan []byte

	mu        sync.Mutex
	condemned map[blob.PackID]bool // packs with a tombstone
	missing   map[blob.PackID]bool // indexed packs absent from storage (no tombstone)
	indexSeen map[string]bool      // index objects loaded or written by this handle

	refreshMu   sync.Mutex // one index refresh at a time (lookupFresh)
	fruitlessAt time.Time  // the last refresh that found nothing new (under refreshMu)
	// orphansIndexed: packs no index object names were read from their
	// trailers for a blob no index had (under refreshMu).
	orphansIndexed bool

	// badIndexes are index objects that did not open; their packs were
	// indexed from their trailers instead, and check reports them.
	badIndexes []Problem

	dk dataKeyLoader // datakeys/ objects: what was read, what failed

	features map[string]bool // feature objects known to exist (under mu)
}

// Init creates a new vault on be, protected by passphrase.
func Init(ctx context.Context, be storage.Backend, passphrase []byte, opts Options) (*Vault, error) {
	opts.defaults()
	if len(passphrase) == 0 {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "empty passphrase")
	}
	if _, err := be.Stat(ctx, ConfigName); err == nil {
		return nil, lifeboat.Errorf(lifeboat.EExists, "a vault already exists at %s", be.Location())
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, storageError(be, err)
	}
	p := chunker.DefaultParams()
	cfg := Config{
		Format: "lifeboat-vault", Version: FormatVersion, Created: opts.Now().UTC(),
		Chunker: ChunkerConfig{Alg: "fastcdc-gear-v1", Min: p.Min, Avg: p.Avg, Max: p.Max},
		Hash:    "blake3-keyed-256", Cipher: "aes-256-gcm", Compression: "zstd",
		PackSize: DefaultPackSize,
	}
	if opts.PackSize > 0 {
		cfg.PackSize = opts.PackSize
	}
	var idb [16]byte
	if _, err := randRead(idb[:]); err != nil {
		return nil, err
	}
	cfg.ID = hex.EncodeToString(idb[:])
	keys := crypto.NewKeys()
	kdf := crypto.DefaultKDF()
	if opts.KDF != nil {
		kdf = *opts.KDF
	}
	slot, err := crypto.NewSlot(keys, passphrase, kdf, opts.Now())
	if err != nil {
		return nil, err
	}
	sb, err := slot.Marshal()
	if err != nil {
		return nil, err
	}
	// The slot first, the config last: a vault is visible only once complete.
	if err := be.Put(ctx, slotPrefix+slot.ID, sb); err != nil {
		return nil, storageError(be, err)
	}
	if err := putFeature(ctx, be, featureTrees2); err != nil {
		return nil, err
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := be.Put(ctx, ConfigName, cb); err != nil {
		// The slot goes only if the config is not ours: a put that failed
		// after its object became visible (a directory fsync, a lost
		// answer) left a vault whose one key slot must stay.
		got, rerr := storage.ReadAll(ctx, be, ConfigName)
		switch {
		case rerr == nil && bytes.Equal(got, cb):
			return nil, storageError(be, fmt.Errorf("vault created at %s, but writing its config reported: %w; open it to check", be.Location(), err))
		case rerr == nil || errors.Is(rerr, storage.ErrNotFound):
			_ = be.Delete(ctx, slotPrefix+slot.ID)
		}
		if errors.Is(err, storage.ErrExists) {
			return nil, lifeboat.Errorf(lifeboat.EExists, "a vault already exists at %s", be.Location())
		}
		return nil, storageError(be, err)
	}
	return newVault(ctx, be, cfg, keys, slot.ID, map[string]bool{featureTrees2: true}, opts)
}

// Open opens the vault on be with passphrase, trying every key slot.
func Open(ctx context.Context, be storage.Backend, passphrase []byte, opts Options) (*Vault, error) {
	opts.defaults()
	cfg, err := ReadConfig(ctx, be)
	if err != nil {
		return nil, err
	}
	var slots []*crypto.Slot
	var damaged []error // key slots that do not parse or unwrap: tried last, reported if none opens
	fromStorage := map[string]bool{}
	features := map[string]bool{}
	err = be.List(ctx, slotPrefix, func(oi storage.ObjectInfo) error {
		if isFeatureObject(oi.Name) {
			features[strings.TrimPrefix(oi.Name, featurePrefix)] = true
			return checkFeature(be, oi.Name)
		}
		b, err := storage.ReadAll(ctx, be, oi.Name)
		if errors.Is(err, storage.ErrNotFound) {
			return nil // retired since the listing
		}
		if err != nil {
			return err
		}
		s, err := crypto.ParseSlot(b)
		if err != nil {
			// Another slot, or the disaster kit's copy, may still open
			// the vault; check reports this one.
			damaged = append(damaged, &CorruptError{Object: oi.Name, Err: err})
			return nil
		}
		slots = append(slots, s)
		fromStorage[s.ID] = true
		return nil
	})
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			return nil, lifeboat.Errorf(lifeboat.ECorrupt, "%s at %s", ce.Error(), be.Location())
		}
		return nil, storageError(be, err)
	}
	if opts.KeySlot != nil {
		s, err := crypto.ParseSlot(opts.KeySlot)
		if err != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "the key slot given: %v", err)
		}
		slots = append([]*crypto.Slot{s}, slots...)
	}
	if len(slots) == 0 && len(damaged) == 0 {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "vault at %s has no key slot (a disaster kit's copy of one opens it: --key-slot-file)", be.Location())
	}
	var keys *crypto.Keys
	var slotID string
	for _, s := range slots {
		k, err := s.Unwrap(passphrase)
		if err == nil {
			keys, slotID = k, s.ID
			break
		}
		if !errors.Is(err, crypto.ErrWrongPassphrase) {
			damaged = append(damaged, fmt.Errorf("key slot %s: %w", s.ID, err))
		}
	}
	if keys == nil && len(damaged) > 0 {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "%v at %s, and no other key slot opens with this passphrase (a disaster kit's copy of a slot may: --key-slot-file)", damaged[0], be.Location())
	}
	if keys == nil {
		return nil, &lifeboat.Error{Code: lifeboat.EAuth, Message: fmt.Sprintf("wrong passphrase for the vault at %s", be.Location()), Err: crypto.ErrWrongPassphrase}
	}
	v, err := newVault(ctx, be, cfg, keys, slotID, features, opts)
	if err != nil || opts.KeySlot == nil || slots[0].ID != slotID || fromStorage[slotID] {
		return v, err
	}
	// The slot given (a disaster kit's) opened, but it may be another
	// vault's: then every object would look damaged, and a backup through
	// it would write what this vault's own slots cannot open.
	if err := v.keysOpenSomething(ctx); err != nil {
		if len(fromStorage) > 0 {
			// One of the vault's own slots may open with this passphrase.
			own := opts
			own.KeySlot = nil
			if v2, err2 := Open(ctx, be, passphrase, own); err2 == nil {
				return v2, nil
			}
		}
		return nil, err
	}
	return v, nil
}

// keysOpenSomething opens a few sealed objects of the vault (indexes, then
// manifests) with this value's keys. When one opens, the keys are the
// vault's; when two or more were tried and none opened, they are taken for
// another vault's (damage that wide is for check to name). One object
// alone that does not open, or none at all, says nothing.
func (v *Vault) keysOpenSomething(ctx context.Context) error {
	failed := 0
	var first string
	for _, prefix := range []string{"index/", "points/"} {
		var names []string
		err := v.be.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			if len(names) < 4 {
				names = append(names, oi.Name)
			}
			return nil
		})
		if err != nil {
			return storageError(v.be, err)
		}
		for _, name := range names {
			aad := "index " + name
			if prefix == "points/" {
				base, _ := splitResealed(name)
				aad = manifest.Context(strings.TrimPrefix(base, "points/"))
			}
			_, err := v.getSealed(ctx, name, aad)
			var ce *CorruptError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &ce):
				failed++
				if first == "" {
					first = name
				}
			case !errors.Is(err, storage.ErrNotFound):
				return storageError(v.be, err)
			}
		}
	}
	if failed >= 2 {
		return lifeboat.Errorf(lifeboat.EAuth, "the key slot given is not this vault's: its keys open none of %d of its objects (%s first) at %s (is the kit another vault's?)", failed, first, v.be.Location())
	}
	return nil
}

// ReadConfig reads and checks lifeboat.json.
func ReadConfig(ctx context.Context, be storage.Backend) (Config, error) {
	var cfg Config
	b, err := storage.ReadAll(ctx, be, ConfigName)
	if errors.Is(err, storage.ErrNotFound) {
		return cfg, &lifeboat.Error{Code: lifeboat.ENotFound, Message: fmt.Sprintf("no vault at %s (no %s)", be.Location(), ConfigName), Err: err}
	}
	if err != nil {
		return cfg, storageError(be, err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, lifeboat.Errorf(lifeboat.ECorrupt, "%s at %s: %v", ConfigName, be.Location(), err)
	}
	if cfg.Format != "lifeboat-vault" {
		return cfg, lifeboat.Errorf(lifeboat.ECorrupt, "%s at %s: not a lifeboat vault", ConfigName, be.Location())
	}
	if cfg.Version != FormatVersion {
		return cfg, lifeboat.Errorf(lifeboat.EInvalid, "vault at %s has format version %d; this lifeboat reads version %d", be.Location(), cfg.Version, FormatVersion)
	}
	p := chunker.Params{Min: cfg.Chunker.Min, Avg: cfg.Chunker.Avg, Max: cfg.Chunker.Max}
	if cfg.Chunker.Alg != "fastcdc-gear-v1" || p.Validate() != nil || cfg.Hash != "blake3-keyed-256" || cfg.Cipher != "aes-256-gcm" || cfg.PackSize < 1<<10 || cfg.PackSize > 1<<30 {
		return cfg, lifeboat.Errorf(lifeboat.ECorrupt, "%s at %s: unsupported algorithms or parameters", ConfigName, be.Location())
	}
	return cfg, nil
}

func newVault(ctx context.Context, be storage.Backend, cfg Config, keys *crypto.Keys, slotID string, features map[string]bool, opts Options) (*Vault, error) {
	v := &Vault{be: be, cfg: cfg, opts: opts, slotID: slotID, features: features, idKey: keys.IDKey(), dk: newDataKeyLoader(),
		params: chunker.Params{Min: cfg.Chunker.Min, Avg: cfg.Chunker.Avg, Max: cfg.Chunker.Max},
		idx:    index.New(), condemned: map[blob.PackID]bool{}, missing: map[blob.PackID]bool{}, indexSeen: map[string]bool{}, freePacks: make(chan []byte, 2)}
	v.table = chunker.NewTable(keys.ChunkerSeed())
	v.hashers.New = func() any {
		h, err := blake3.NewKeyed(v.idKey[:])
		if err != nil {
			panic(err)
		}
		return h
	}
	v.scratch.New = func() any { b := make([]byte, 0, v.params.Max+v.params.Max/8+64); return &b }
	// Data key 1 was made with the vault; later versions carry their own time.
	created := map[uint32]time.Time{}
	if _, ok := keys.DataKeys[1]; ok {
		created[1] = cfg.Created
	}
	if err := v.setKeys(keys, created); err != nil {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "key slot %s at %s: %v", slotID, be.Location(), err)
	}
	// Every data key object, before anything sealed is read.
	if err := v.loadDataKeys(ctx); err != nil {
		return nil, err
	}
	// Tombstones first: the index prefers copies in packs that are neither
	// condemned nor missing.
	if err := v.loadCondemned(ctx); err != nil {
		return nil, err
	}
	if err := v.loadIndex(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Config returns the vault's configuration.
func (v *Vault) Config() Config { return v.cfg }

// Backend returns the storage the vault lives on.
func (v *Vault) Backend() storage.Backend { return v.be }

// Close releases the vault (not the backend).
func (v *Vault) Close() error { return nil }

// Hash computes a blob id.
func (v *Vault) Hash(data []byte) blob.ID {
	h := v.hashers.Get().(*blake3.Hasher)
	h.Reset()
	h.Write(data)
	var id blob.ID
	h.Sum(id[:0])
	v.hashers.Put(h)
	return id
}

// CorruptError names a damaged object and what is wrong with it.
type CorruptError struct {
	Object string // storage object name
	Blob   string // blob id, if the damage is in one blob
	Err    error
}

func (e *CorruptError) Error() string {
	if e.Blob != "" {
		return fmt.Sprintf("corrupt blob %s in %s: %v", e.Blob, e.Object, e.Err)
	}
	return fmt.Sprintf("corrupt object %s: %v", e.Object, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

func storageError(be storage.Backend, err error) error {
	if err == nil {
		return nil
	}
	var le *lifeboat.Error
	if errors.As(err, &le) {
		return err
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		return &lifeboat.Error{Code: lifeboat.ECorrupt, Message: fmt.Sprintf("%s at %s", ce.Error(), be.Location()), Err: err}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &lifeboat.Error{Code: lifeboat.EInterrupted, Message: "interrupted", Err: err}
	case errors.Is(err, storage.ErrUnavailable):
		return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: err.Error(), Err: err}
	case errors.Is(err, storage.ErrNotFound):
		return &lifeboat.Error{Code: lifeboat.ECorrupt, Message: fmt.Sprintf("missing object at %s: %v", be.Location(), err), Err: err}
	}
	return &lifeboat.Error{Code: lifeboat.EInternal, Message: fmt.Sprintf("storage %s: %v", be.Location(), err), Err: err}
}

// putSealed seals plain with the current data key and stores it under name.
func (v *Vault) putSealed(ctx context.Context, name, context string, plain []byte) error {
	return v.be.Put(ctx, name, v.sealer().Seal(nil, plain, context))
}

// getSealed reads and opens a sealed object.
func (v *Vault) getSealed(ctx context.Context, name, context string) ([]byte, error) {
	b, err := storage.ReadAll(ctx, v.be, name)
	if err != nil {
		return nil, err
	}
	return v.openSealed(ctx, name, b, context)
}

// openSealed opens a sealed object read from name, first loading the data
// key object of its version if this value does not know it yet (another
// process rotated the data key since it was opened).
func (v *Vault) openSealed(ctx context.Context, name string, b []byte, context string) ([]byte, error) {
	s, err := v.sealerFor(ctx, b)
	if err != nil {
		return nil, keyError(name, "", err)
	}
	plain, err := s.Open(nil, b, context)
	if err != nil {
		return nil, &CorruptError{Object: name, Err: err}
	}
	return plain, nil
}

func (v *Vault) loadIndex(ctx context.Context) error {
	var names []string
	if err := v.be.List(ctx, "index/", func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return storageError(v.be, err)
	}
	v.mu.Lock()
	for _, n := range names {
		v.indexSeen[n] = true
	}
	v.mu.Unlock()
	present := map[blob.PackID]bool{}
	if err := v.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if p, err := blob.ParsePackName(oi.Name); err == nil {
			present[p] = true
		}
		return nil
	}); err != nil {
		return storageError(v.be, err)
	}
	var mu sync.Mutex
	var all []index.PackEntries
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, name := range names {
		g.Go(func() error {
			pes, err := v.readIndexObject(gctx, name)
			if err == nil {
				mu.Lock()
				all = append(all, pes...)
				mu.Unlock()
				return nil
			}
			var ce *CorruptError
			if errors.As(err, &ce) || errors.Is(err, storage.ErrNotFound) {
				mu.Lock()
				v.badIndexes = append(v.badIndexes, Problem{Object: name, What: "index object does not open: " + err.Error()})
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return storageError(v.be, err)
	}
	// The first location of a blob is the one read and deduped against:
	// healthy packs first, then condemned ones still present (a point may
	// reference one until the next collection removes its tombstone), then
	// missing ones (so that check names them). Packs a collector deleted
	// (condemned and absent) are left out.
	v.mu.Lock()
	cond := v.condemned
	for _, pe := range all {
		if !present[pe.Pack] && !cond[pe.Pack] {
			v.missing[pe.Pack] = true
		}
	}
	v.mu.Unlock()
	for pass := range 3 {
		for _, pe := range all {
			var want int
			switch {
			case present[pe.Pack] && !cond[pe.Pack]:
				want = 0
			case present[pe.Pack]:
				want = 1
			case !cond[pe.Pack]:
				want = 2
			default:
				continue
			}
			if want == pass {
				v.idx.Add(pe.Pack, pe.Entries)
			}
		}
	}
	if len(v.badIndexes) > 0 {
		_, err := v.indexOrphans(ctx)
		return err
	}
	return nil
}

// readIndexObject reads, opens and decodes one index object; one that does
// not open or decode is a CorruptError.
func (v *Vault) readIndexObject(ctx context.Context, name string) ([]index.PackEntries, error) {
	plain, err := v.getSealed(ctx, name, "index "+name)
	if err != nil {
		return nil, err
	}
	pes, err := index.Decode(plain)
	if err != nil {
		return nil, &CorruptError{Object: name, Err: err}
	}
	return pes, nil
}

// indexRefreshEvery spaces the index refreshes that blobs missing from the
// index cause once one found nothing new: a damaged vault misses many, and
// each refresh lists index/. (A refresh that found new index objects does
// not hold back the next one; a restore refreshes when it starts.)
const indexRefreshEvery = 10 * time.Second

// lookupFresh looks id up in the in-memory index, refreshing the index from
// the storage first (at most once every indexRefreshEvery) when id is not
// in it.
func (v *Vault) lookupFresh(ctx context.Context, id blob.ID) (index.Location, bool, error) {
	if loc, ok := v.idx.Lookup(id); ok {
		return loc, true, nil
	}
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	if loc, ok := v.idx.Lookup(id); ok {
		return loc, true, nil // another caller's refresh found it
	}
	if !v.fruitlessAt.IsZero() && time.Since(v.fruitlessAt) < indexRefreshEvery {
		return index.Location{}, false, nil
	}
	n, err := v.refreshIndex(ctx)
	if err != nil {
		return index.Location{}, false, err
	}
	loc, ok := v.idx.Lookup(id)
	if !ok && !v.orphansIndexed {
		// An index object may be lost while its packs are intact: their
		// own trailers say what they hold (once per handle).
		v.orphansIndexed = true
		if _, err := v.indexOrphans(ctx); err != nil {
			return index.Location{}, false, err
		}
		loc, ok = v.idx.Lookup(id)
	}
	if n == 0 && !ok {
		v.fruitlessAt = time.Now()
	}
	return loc, ok, nil
}

// refreshIndex adds to the in-memory index the index objects written since
// this handle loaded its own: by another process (a second server, a CLI
// backup into the server's vault). A long-lived handle then finds the blobs
// of points it did not write, instead of taking them for lost. Objects that
// do not open are left to check, as at open.
func (v *Vault) refreshIndex(ctx context.Context) (loaded int, err error) {
	var fresh []string
	if err := v.be.List(ctx, "index/", func(oi storage.ObjectInfo) error {
		v.mu.Lock()
		if !v.indexSeen[oi.Name] {
			fresh = append(fresh, oi.Name)
		}
		v.mu.Unlock()
		return nil
	}); err != nil {
		return 0, storageError(v.be, err)
	}
	for _, name := range fresh {
		pes, err := v.readIndexObject(ctx, name)
		var ce *CorruptError
		switch {
		case errors.Is(err, storage.ErrNotFound) || errors.As(err, &ce):
			continue // collected since the listing, or damaged
		case err != nil:
			return loaded, storageError(v.be, err)
		}
		for _, pe := range pes {
			v.idx.Add(pe.Pack, pe.Entries)
		}
		v.mu.Lock()
		v.indexSeen[name] = true
		v.mu.Unlock()
		loaded++
	}
	return loaded, nil
}

// indexOrphans adds to the in-memory index the blobs of every pack no
// index object names, read from the packs' own trailers, and returns those
// packs with their entries. It runs when an index object is damaged or
// lost, so that the points it served still restore.
func (v *Vault) indexOrphans(ctx context.Context) (map[blob.PackID][]blob.Entry, error) {
	added := map[blob.PackID][]blob.Entry{}
	known := map[blob.PackID]bool{}
	for _, p := range v.idx.Packs() {
		known[p] = true
	}
	var orphans []storage.ObjectInfo
	if err := v.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if p, err := blob.ParsePackName(oi.Name); err == nil && !known[p] {
			orphans = append(orphans, oi)
		}
		return nil
	}); err != nil {
		return nil, storageError(v.be, err)
	}
	for _, oi := range orphans {
		p, _ := blob.ParsePackName(oi.Name)
		if oi.Size < 4 {
			continue
		}
		last, err := readRange(ctx, v.be, oi.Name, oi.Size-4, 4)
		if err != nil || len(last) != 4 {
			continue
		}
		tl := int64(pack.TrailerLength(last))
		if tl+4 > oi.Size {
			continue
		}
		sealed, err := readRange(ctx, v.be, oi.Name, oi.Size-4-tl, tl)
		if err != nil {
			continue
		}
		s, err := v.sealerFor(ctx, sealed)
		if err != nil {
			continue
		}
		es, err := pack.ParseTrailer(s, p, sealed, oi.Size)
		if err != nil {
			continue // check reports the pack
		}
		v.idx.Add(p, es)
		added[p] = es
	}
	return added, nil
}

func readRange(ctx context.Context, be storage.Backend, name string, off, n int64) ([]byte, error) {
	rc, err := be.Get(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// loadCondemned reads the garbage collector's tombstones (condemned/<pack>)
// and finds indexed packs missing from storage: a writer never dedups
// against a condemned or missing pack.
func (v *Vault) loadCondemned(ctx context.Context) error {
	set, err := v.listCondemned(ctx)
	if err != nil {
		return err
	}
	// Packs indexed before the listing starts are durable, so listed.
	indexed := v.idx.Packs()
	present := make(map[blob.PackID]bool, len(indexed))
	if len(indexed) > 0 {
		if err := v.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
			if p, err := blob.ParsePackName(oi.Name); err == nil {
				present[p] = true
			}
			return nil
		}); err != nil {
			return storageError(v.be, err)
		}
	}
	missing := map[blob.PackID]bool{}
	for _, p := range indexed {
		if !present[p] && !set[p] {
			missing[p] = true
		}
	}
	v.mu.Lock()
	v.condemned = set
	v.missing = missing
	v.mu.Unlock()
	return nil
}

func (v *Vault) listCondemned(ctx context.Context) (map[blob.PackID]bool, error) {
	set := map[blob.PackID]bool{}
	err := v.be.List(ctx, "condemned/", func(oi storage.ObjectInfo) error {
		if p, ok := parseTombstone(oi.Name); ok {
			set[p] = true
		}
		return nil
	})
	if err != nil {
		return nil, storageError(v.be, err)
	}
	return set, nil
}

// isCondemned reports whether a pack is unusable for dedup: condemned, or
// missing from storage (a writer treats both alike).
func (v *Vault) isCondemned(p blob.PackID) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.condemned[p] || v.missing[p]
}

// readBlob reads, authenticates and decompresses one blob.
func (v *Vault) readBlob(ctx context.Context, id blob.ID) ([]byte, error) {
	return v.readBlobIn(ctx, v.idx, id)
}

// readBlobIn is readBlob with the locations of idx.
func (v *Vault) readBlobIn(ctx context.Context, idx *index.Index, id blob.ID) ([]byte, error) {
	loc, ok := idx.Lookup(id)
	if !ok && idx == v.idx {
		var err error
		if loc, ok, err = v.lookupFresh(ctx, id); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, &CorruptError{Object: "index", Blob: id.String(), Err: errors.New("blob not in any index")}
	}
	return v.readLocated(ctx, loc)
}

// readLocated reads, authenticates and decompresses the blob at loc.
func (v *Vault) readLocated(ctx context.Context, loc index.Location) ([]byte, error) {
	id := loc.ID
	rc, err := v.be.Get(ctx, loc.Pack.ObjectName(), int64(loc.Offset), int64(loc.Length))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, &CorruptError{Object: loc.Pack.ObjectName(), Blob: id.String(), Err: errors.New("pack missing")}
		}
		return nil, err
	}
	defer rc.Close()
	sealed := make([]byte, loc.Length)
	if _, err := io.ReadFull(rc, sealed); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, &CorruptError{Object: loc.Pack.ObjectName(), Blob: id.String(), Err: errors.New("pack truncated")}
		}
		return nil, err
	}
	return v.openBlob(ctx, loc, sealed)
}

// openBlob authenticates and decompresses a sealed blob read from its pack.
func (v *Vault) openBlob(ctx context.Context, loc index.Location, sealed []byte) ([]byte, error) {
	return v.openBlobInto(ctx, nil, nil, loc, sealed)
}

// openBlobInto is openBlob reusing the capacity of two scratch buffers: the
// result aliases plainBuf.
func (v *Vault) openBlobInto(ctx context.Context, framedBuf, plainBuf []byte, loc index.Location, sealed []byte) ([]byte, error) {
	s, err := v.sealerFor(ctx, sealed)
	if err != nil {
		return nil, keyError(loc.Pack.ObjectName(), loc.ID.String(), err)
	}
	framed, err := s.Open(framedBuf[:0], sealed, blob.Context(loc.Type, loc.ID))
	if err != nil {
		return nil, &CorruptError{Object: loc.Pack.ObjectName(), Blob: loc.ID.String(), Err: err}
	}
	if plainBuf == nil {
		plainBuf = make([]byte, 0, loc.RawLength)
	}
	plain, err := compress.Decompress(plainBuf[:0], framed)
	if err != nil {
		return nil, &CorruptError{Object: loc.Pack.ObjectName(), Blob: loc.ID.String(), Err: err}
	}
	if uint32(len(plain)) != loc.RawLength {
		return nil, &CorruptError{Object: loc.Pack.ObjectName(), Blob: loc.ID.String(), Err: fmt.Errorf("length %d, index says %d", len(plain), loc.RawLength)}
	}
	return plain, nil
}

// readPackTrailer reads and opens a pack's trailer.
func (v *Vault) readPackTrailer(ctx context.Context, p blob.PackID, data []byte) ([]blob.Entry, error) {
	name := p.ObjectName()
	if len(data) < 4 {
		return nil, &CorruptError{Object: name, Err: errors.New("pack shorter than its trailer length")}
	}
	tl := pack.TrailerLength(data[len(data)-4:])
	if int64(tl)+4 > int64(len(data)) {
		return nil, &CorruptError{Object: name, Err: fmt.Errorf("trailer length %d beyond the pack", tl)}
	}
	sealed := data[len(data)-4-int(tl) : len(data)-4]
	s, err := v.sealerFor(ctx, sealed)
	if err != nil {
		return nil, keyError(name, "", err)
	}
	es, err := pack.ParseTrailer(s, p, sealed, int64(len(data)))
	if err != nil {
		return nil, &CorruptError{Object: name, Err: err}
	}
	return es, nil
}

// packBuf returns a buffer for a new in-memory pack; releasePackBuf
// recycles it (a bounded free list, so a backup holds at most a few).
func (v *Vault) packBuf() []byte {
	select {
	case b := <-v.freePacks:
		return b
	default:
		return make([]byte, 0, v.cfg.PackSize+1024)
	}
}

func (v *Vault) releasePackBuf(b []byte) {
	if cap(b) == 0 {
		return
	}
	select {
	case v.freePacks <- b[:0]:
	default:
	}
}
