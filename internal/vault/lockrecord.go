package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// The vault's lock, as recorded in the vault itself (DESIGN.md: a vault
// owns its lock settings): so that the lock survives the loss of the
// server's catalog, and binds the offline CLI too. Each change is a new
// object, never overwritten; the newest decides:
//
//	settings/lock-<unix nanoseconds, 19 digits>-<8 hex>
//	body = sealed JSON LockRecord, context "lock <name>"

const lockRecordPrefix = "settings/lock-"

var lockRecordName = regexp.MustCompile(`^settings/lock-(\d{19})-([0-9a-f]{8})$`)

// LockRecord is one change of the vault's lock.
type LockRecord struct {
	// Removed: the lock was removed; the other fields are empty.
	Removed      bool          `json:"removed,omitempty"`
	Mode         string        `json:"mode,omitempty"` // governance or compliance
	MinRetention time.Duration `json:"min_retention,omitempty"`
	EffectiveAt  time.Time     `json:"effective_at,omitzero"` // compliance: in force from then
	By           string        `json:"by,omitempty"`
	Time         time.Time     `json:"time"` // the writer's clock; equals the name's
}

func lockRecordContext(name string) string { return "lock " + name }

// RecordLock writes a change of the vault's lock (rec.Time is set to the
// vault's clock, or just after the newest record if that is later).
func (v *Vault) RecordLock(ctx context.Context, rec LockRecord) error {
	if !rec.Removed && (rec.Mode == "" || rec.MinRetention <= 0) {
		return lifeboat.Errorf(lifeboat.EInvalid, "lock record: a mode and a positive minimum retention are required")
	}
	rec.Time = v.opts.Now().UTC()
	// A change is never ordered before the one it replaces, even when the
	// clock has not moved (or went back): it comes a nanosecond after.
	existing, err := v.lockRecords(ctx)
	if err != nil {
		return err
	}
	for base := range existing {
		m := lockRecordName.FindStringSubmatch(base)
		if ns, _ := strconv.ParseInt(m[1], 10, 64); ns >= rec.Time.UnixNano() {
			rec.Time = time.Unix(0, ns+1).UTC()
		}
	}
	var rnd [4]byte
	if _, err := randRead(rnd[:]); err != nil {
		return err
	}
	name := fmt.Sprintf("%s%019d-%x", lockRecordPrefix, rec.Time.UnixNano(), rnd)
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := v.putSealed(ctx, name, lockRecordContext(name), body); err != nil {
		return storageError(v.be, fmt.Errorf("write lock record %s: %w", name, err))
	}
	return nil
}

// Lock returns the vault's lock as its newest record says: nil if it has
// none or it was removed. A newest record that does not open is an error
// naming it (a lock is never guessed from unauthenticated bytes).
func (v *Vault) Lock(ctx context.Context) (*LockRecord, error) {
	byBase, err := v.lockRecords(ctx)
	if err != nil {
		return nil, err
	}
	if len(byBase) == 0 {
		return nil, nil
	}
	bases := make([]string, 0, len(byBase))
	for b := range byBase {
		bases = append(bases, b)
	}
	sort.Strings(bases) // fixed-width time, then random: oldest first
	newest := bases[len(bases)-1]
	plain, _, _, err := v.readCopies(ctx, byBase[newest], lockRecordContext(newest))
	if err != nil {
		return nil, storageError(v.be, err)
	}
	var rec LockRecord
	if err := json.Unmarshal(plain, &rec); err != nil {
		return nil, &CorruptError{Object: newest, Err: err}
	}
	m := lockRecordName.FindStringSubmatch(newest)
	if ns, _ := strconv.ParseInt(m[1], 10, 64); rec.Time.UnixNano() != ns {
		return nil, &CorruptError{Object: newest, Err: fmt.Errorf("its time %s is not its name's", rec.Time.Format(time.RFC3339Nano))}
	}
	if rec.Removed {
		return nil, nil
	}
	return &rec, nil
}

// lockRecords lists the lock records' copies by base name, newest copy
// first.
func (v *Vault) lockRecords(ctx context.Context) (map[string][]string, error) {
	return v.listCopies(ctx, lockRecordPrefix, func(base string) (string, bool) {
		return base, lockRecordName.MatchString(base)
	})
}
