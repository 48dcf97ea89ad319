package vault

import (
	"context"
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
// content: it is the server's.

// AuditSegmentRef names one segment.
type AuditSegmentRef struct {
	First, Last int64
	Name        string
}

const auditPrefix = "audit/"

func auditContext(name string) string { return "lifeboat audit segment " + name }

// PutAuditSegment stores the segment of events first..last.
func (v *Vault) PutAuditSegment(ctx context.Context, first, last int64, data []byte) error {
	if first < 1 || last < first {
		return lifeboat.Errorf(lifeboat.EInvalid, "audit segment %d-%d: bad range", first, last)
	}
	name := fmt.Sprintf("%s%016x-%016x", auditPrefix, first, last)
	if err := v.putSealed(ctx, name, auditContext(name), data); err != nil {
		return storageError(v.be, err)
	}
	return nil
}

// AuditSegments lists the vault's audit segments in chain order.
func (v *Vault) AuditSegments(ctx context.Context) ([]AuditSegmentRef, error) {
	var out []AuditSegmentRef
	err := v.be.List(ctx, auditPrefix, func(oi storage.ObjectInfo) error {
		a, b, ok := strings.Cut(strings.TrimPrefix(oi.Name, auditPrefix), "-")
		first, err1 := strconv.ParseInt(a, 16, 64)
		last, err2 := strconv.ParseInt(b, 16, 64)
		if !ok || err1 != nil || err2 != nil || len(a) != 16 || len(b) != 16 {
			return nil // not ours; check reports unknown objects elsewhere
		}
		out = append(out, AuditSegmentRef{First: first, Last: last, Name: oi.Name})
		return nil
	})
	if err != nil {
		return nil, storageError(v.be, err)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].First < out[j].First || (out[i].First == out[j].First && out[i].Last < out[j].Last)
	})
	return out, nil
}

// AuditSegment reads and authenticates one segment.
func (v *Vault) AuditSegment(ctx context.Context, ref AuditSegmentRef) ([]byte, error) {
	b, err := v.getSealed(ctx, ref.Name, auditContext(ref.Name))
	if err != nil {
		if _, ok := err.(*CorruptError); ok {
			return nil, err
		}
		return nil, storageError(v.be, err)
	}
	return b, nil
}
