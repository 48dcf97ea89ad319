package vault

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// Audit segments are copies of the control plane's audit chain kept in the
// vault's storage, so that the trail survives the loss of the catalog and
// edits to the catalog show: one immutable sealed object per segment,
// audit/<first seq>-<last seq> (16 hex digits each), never overwritten
// (the backend refuses) and never collected. The vault does not read their
// content: it is the server's. Re-encryption (reseal.go) replaces a segment
// by a copy <name>.<8 hex version> sealed under the current data key.

// AuditSegmentRef names one segment.
type AuditSegmentRef struct {
	First, Last int64
	Name        string // the object to read: the segment's name or its newest copy
}

const auditPrefix = "audit/"

func auditContext(name string) string { return "lifeboat audit segment " + name }

// PutAuditSegment stores the segment of events first..last.
func (v *Vault) PutAuditSegment(ctx context.Context, first, last int64, data []byte) error {
	if first < 1 || last < first {
		return lifeboat.Errorf(lifeboat.EInvalid, "audit segment %d-%d: bad range", first, last)
	}
	name := AuditSegmentName(first, last)
	if err := v.putSealed(ctx, name, auditContext(name), data); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return lifeboat.Errorf(lifeboat.EExists, "audit segment %s exists", name)
		}
		return storageError(v.be, err)
	}
	return nil
}

// AuditSegments lists the vault's audit segments in chain order.
func (v *Vault) AuditSegments(ctx context.Context) ([]AuditSegmentRef, error) {
	byBase, err := v.listAuditSegments(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]AuditSegmentRef, 0, len(byBase))
	for base, names := range byBase {
		first, last, _ := parseAuditName(base)
		out = append(out, AuditSegmentRef{First: first, Last: last, Name: names[0]})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].First < out[j].First || (out[i].First == out[j].First && out[i].Last < out[j].Last)
	})
	return out, nil
}

// listAuditSegments lists the segment objects by segment name, newest copy first.
func (v *Vault) listAuditSegments(ctx context.Context) (map[string][]string, error) {
	return v.listCopies(ctx, auditPrefix, func(base string) (string, bool) {
		_, _, ok := parseAuditName(base) // others are not ours
		return base, ok
	})
}

func parseAuditName(name string) (first, last int64, ok bool) {
	a, b, ok := strings.Cut(strings.TrimPrefix(name, auditPrefix), "-")
	first, err1 := strconv.ParseInt(a, 16, 64)
	last, err2 := strconv.ParseInt(b, 16, 64)
	if !ok || err1 != nil || err2 != nil || len(a) != 16 || len(b) != 16 || !strings.HasPrefix(name, auditPrefix) {
		return 0, 0, false
	}
	return first, last, true
}

// AuditSegment reads and authenticates one segment.
func (v *Vault) AuditSegment(ctx context.Context, ref AuditSegmentRef) ([]byte, error) {
	base, _ := splitResealed(ref.Name)
	b, err := v.getSealed(ctx, ref.Name, auditContext(base))
	if errors.Is(err, storage.ErrNotFound) {
		// Re-encrypted since the listing: read its newest copy.
		var names []string
		if names, err = v.copiesOf(ctx, base); err == nil {
			b, _, _, err = v.readCopies(ctx, names, auditContext(base))
		}
	}
	if err != nil {
		if _, ok := err.(*CorruptError); ok {
			return nil, err
		}
		return nil, storageError(v.be, err)
	}
	return b, nil
}

// AuditSegmentName is the object name of the segment of events first..last.
func AuditSegmentName(first, last int64) string {
	return fmt.Sprintf("%s%016x-%016x", auditPrefix, first, last)
}
