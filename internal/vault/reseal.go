package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
)

// Resealed copies (docs/vault-format.md, "Re-encryption"). Manifests,
// markers and audit segments are immutable and named by what they are, so
// one cannot be rewritten in place without a moment when it does not
// exist. Re-encryption writes a copy under the current data key named
// <name>.<version, 8 hex digits>, then deletes the older copies. Readers
// treat every copy of a name as the same object (the AEAD context is that
// of the original name, so a copy opens only as what it copies) and read
// the newest; the collector deletes every copy.

// resealedName is the name of base's copy sealed under data key version ver.
func resealedName(base string, ver uint32) string { return fmt.Sprintf("%s.%08x", base, ver) }

// splitResealed returns the original name of a copy and the version in its
// name; for an original name, the name itself and 0.
func splitResealed(name string) (string, uint32) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || len(name)-i-1 != 8 || i == 0 || name[i-1] == '/' {
		return name, 0
	}
	h := name[i+1:]
	for j := 0; j < len(h); j++ {
		if !('0' <= h[j] && h[j] <= '9' || 'a' <= h[j] && h[j] <= 'f') {
			return name, 0
		}
	}
	ver, err := strconv.ParseUint(h, 16, 32)
	if err != nil || ver == 0 {
		return name, 0
	}
	return name[:i], uint32(ver)
}

// sortCopies orders the copies of one object newest first (the highest
// version in the name; the original, which has none, last).
func sortCopies(names []string) {
	sort.Slice(names, func(i, j int) bool {
		_, a := splitResealed(names[i])
		_, b := splitResealed(names[j])
		if a != b {
			return a > b
		}
		return names[i] < names[j]
	})
}

// purgedPrefix holds the collector's purge tombstones: purged/<point id>,
// empty, written before a purged point's manifests are deleted and kept
// once they are, so that a re-encryption racing with the purge withdraws
// the copy it wrote instead of bringing the point back. (A tombstone is
// deleted only when its purge is given up: gc.go.)
const purgedPrefix = "purged/"

func purgedName(id string) string { return purgedPrefix + id }

// listCopies lists the objects below prefix grouped by base name (an
// object and its re-encrypted copies), each group newest copy first,
// keeping the base names that key accepts under the key it returns.
func (v *Vault) listCopies(ctx context.Context, prefix string, key func(base string) (string, bool)) (map[string][]string, error) {
	out, _, err := v.listCopiesWritten(ctx, prefix, key)
	return out, err
}

// listCopiesWritten is listCopies that also gives, per key, the storage's
// latest timestamp among the key's objects.
func (v *Vault) listCopiesWritten(ctx context.Context, prefix string, key func(base string) (string, bool)) (map[string][]string, map[string]time.Time, error) {
	out := map[string][]string{}
	written := map[string]time.Time{}
	err := v.be.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		base, _ := splitResealed(oi.Name)
		if k, ok := key(base); ok {
			out[k] = append(out[k], oi.Name)
			if oi.ModTime.After(written[k]) {
				written[k] = oi.ModTime
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, storageError(v.be, err)
	}
	for _, ns := range out {
		sortCopies(ns)
	}
	return out, written, nil
}

// copiesOf lists the objects that are base or a re-encrypted copy of it,
// newest copy first.
func (v *Vault) copiesOf(ctx context.Context, base string) ([]string, error) {
	var names []string
	err := v.be.List(ctx, base, func(oi storage.ObjectInfo) error {
		if b, _ := splitResealed(oi.Name); b == base {
			names = append(names, oi.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortCopies(names)
	return names, nil
}

// listPoints lists every manifest object, grouped by point id, each
// group's names newest copy first.
func (v *Vault) listPoints(ctx context.Context) (map[string][]string, error) {
	out, _, err := v.listPointsWritten(ctx)
	return out, err
}

// listPointsWritten is listPoints with when each point's manifest (or its
// latest copy) was written, by the storage's clock.
func (v *Vault) listPointsWritten(ctx context.Context) (map[string][]string, map[string]time.Time, error) {
	return v.listCopiesWritten(ctx, "points/", func(base string) (string, bool) {
		id := strings.TrimPrefix(base, "points/")
		return id, manifest.ValidID(id) && manifest.ObjectName(id) == base
	})
}

// pointCopies lists the manifest objects of one point, newest copy first.
func (v *Vault) pointCopies(ctx context.Context, id string) ([]string, error) {
	return v.copiesOf(ctx, manifest.ObjectName(id))
}

// pointExists reports whether a point has a manifest (or a copy of one).
func (v *Vault) pointExists(ctx context.Context, id string) (bool, error) {
	_, err := v.be.Stat(ctx, manifest.ObjectName(id))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	names, err := v.pointCopies(ctx, id)
	return len(names) > 0, err
}

// readCopies reads the first of names (newest first) that opens. A missing
// copy (deleted since the listing) is skipped; if none opens, the error of
// the first that exists is returned, or ErrNotFound.
func (v *Vault) readCopies(ctx context.Context, names []string, context string) (plain []byte, name string, ver uint32, err error) {
	var first error
	for _, n := range names {
		b, err := storage.ReadAll(ctx, v.be, n)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err == nil {
			plain, err = v.openSealed(ctx, n, b, context)
		}
		if err == nil {
			ver, _ := crypto.KeyVersion(b)
			return plain, n, ver, nil
		}
		var ce *CorruptError
		if !errors.As(err, &ce) {
			return nil, "", 0, err
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = fmt.Errorf("%s: %w", strings.Join(names, ", "), storage.ErrNotFound)
	}
	return nil, "", 0, first
}

// resealResult is what resealing one object did.
type resealResult int

const (
	resealKept      resealResult = iota // already under a key at least min; nothing to do
	resealDone                          // a copy under the current key written, older ones deleted
	resealTidied                        // older copies of a good one deleted
	resealWithdrawn                     // copy written, then withdrawn (the object was purged meanwhile)
)

// reseal re-encrypts one object whose copies are names (newest first):
// unless the newest readable copy is sealed under version min or later, it
// writes a copy under the current data key, then (unless purged reports
// that the object was purged meanwhile: the copy is deleted again) deletes
// every other copy. Write first, delete after: a copy always exists.
func (v *Vault) reseal(ctx context.Context, base string, names []string, context string, min uint32, purged func(context.Context) (bool, error)) (resealResult, error) {
	plain, from, ver, err := v.readCopies(ctx, names, context)
	if err != nil {
		return 0, err
	}
	s := v.sealer()
	target := resealedName(base, s.Current())
	res := resealTidied
	if ver < min {
		res = resealDone
		err := v.be.Put(ctx, target, s.Seal(nil, plain, context))
		if errors.Is(err, storage.ErrExists) {
			// A concurrent re-encryption wrote it, or an earlier run did
			// and the copy is damaged (readCopies passed over it): the
			// older copies go only if it opens as this very object.
			got, rerr := v.getSealed(ctx, target, context)
			if rerr != nil {
				var ce *CorruptError
				if errors.As(rerr, &ce) {
					return 0, &CorruptError{Object: target, Err: fmt.Errorf("a copy under the current key exists and does not open (%v); the older copies are kept: delete it and run again", ce.Err)}
				}
				return 0, fmt.Errorf("read %s: %w", target, rerr)
			}
			if !bytes.Equal(got, plain) {
				return 0, &CorruptError{Object: target, Err: fmt.Errorf("a copy under the current key holds another content than %s; the older copies are kept", from)}
			}
		} else if err != nil {
			return 0, fmt.Errorf("write %s: %w", target, err)
		}
		if purged != nil {
			gone, err := purged(ctx)
			if err != nil {
				return 0, err
			}
			if gone {
				if err := v.be.Delete(ctx, target); err != nil && !errors.Is(err, storage.ErrNotFound) {
					return 0, fmt.Errorf("withdraw %s: %w", target, err)
				}
				return resealWithdrawn, nil
			}
		}
	} else {
		target = from
		if len(names) == 1 {
			return resealKept, nil
		}
	}
	for _, n := range names {
		if n == target {
			continue
		}
		if err := v.be.Delete(ctx, n); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return 0, fmt.Errorf("delete %s: %w", n, err)
		}
	}
	return res, nil
}
