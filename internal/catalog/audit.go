package catalog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// The audit trail is a hash chain. Event n carries seq n, the hash of event
// n-1 (prev_hash; "" for the first) and its own hash:
//
//	hash = hex(SHA-256("lifeboat audit v1" ‖ prev_hash ‖ each field, length-prefixed))
//
// over seq, time (ns), actor, action, target, outcome, detail, source and
// request id. Events are appended under a lock on the single chain-head row
// (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer), in the
// transaction of the change they describe. Editing an event breaks its
// hash; deleting or reordering events breaks the sequence or the links;
// dropping the newest leaves the head ahead of the last event — and if the
// head is rewound too, the copies of the chain in vault storage (server
// side) still show it.

// Origin is where a request came from, recorded with its audit events.
type Origin struct {
	Source    string // the caller's address
	RequestID string
}

type originKey struct{}

// WithOrigin returns a context whose audit events record o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

func originOf(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}

// ChainHash is the hash of event e chained after prev.
func ChainHash(prev string, e *lifeboat.AuditEvent) string {
	h := sha256.New()
	h.Write([]byte("lifeboat audit v1"))
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(prev)
	field(strconv.FormatInt(e.Seq, 10))
	field(strconv.FormatInt(e.Time.UnixNano(), 10))
	for _, s := range []string{e.Actor, e.Action, e.Target, e.Outcome, string(e.Detail), e.Source, e.RequestID} {
		field(s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Audit records an event in the transaction of the change it describes,
// chained after the current head.
func (t *Tx) Audit(ctx context.Context, actor, action, target, outcome string, detail any) error {
	d := ""
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return err
		}
		d = string(b)
	}
	o := originOf(ctx)
	e := &lifeboat.AuditEvent{ID: NewID(t.now), Time: fromNS(ns(t.now)), Actor: actor, Action: action, Target: target, Outcome: outcome, Source: o.Source, RequestID: o.RequestID}
	if d != "" {
		e.Detail = json.RawMessage(d)
	}
	return t.appendEvent(ctx, e)
}

// appendEvent chains e after the head (under its lock) and stores it.
func (t *Tx) appendEvent(ctx context.Context, e *lifeboat.AuditEvent) error {
	q := `SELECT seq, hash FROM audit_head WHERE id = 1`
	if t.d.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	var seq int64
	var prev string
	if err := t.queryRow(ctx, q).Scan(&seq, &prev); err != nil {
		return t.wrap(err)
	}
	e.Seq, e.PrevHash = seq+1, prev
	e.Hash = ChainHash(prev, e)
	_, err := t.exec(ctx, `INSERT INTO audit (id, time, actor, action, target, outcome, detail, seq, prev_hash, hash, source, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, ns(e.Time), e.Actor, e.Action, e.Target, e.Outcome, string(e.Detail), e.Seq, e.PrevHash, e.Hash, e.Source, e.RequestID)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, e.Seq, e.Hash)
	return err
}

// chainUnchained gives events written before the chain existed (seq NULL)
// their place in it, in id order. It runs when the catalog opens.
func (d *DB) chainUnchained(ctx context.Context) error {
	return d.Update(ctx, func(t *Tx) error {
		rows, err := t.query(ctx, `SELECT id, time, actor, action, target, outcome, detail FROM audit WHERE seq IS NULL ORDER BY id`)
		if err != nil {
			return err
		}
		var evs []*lifeboat.AuditEvent
		for rows.Next() {
			e := &lifeboat.AuditEvent{}
			var tm int64
			var det string
			if err := rows.Scan(&e.ID, &tm, &e.Actor, &e.Action, &e.Target, &e.Outcome, &det); err != nil {
				rows.Close()
				return err
			}
			e.Time = fromNS(tm)
			if det != "" {
				e.Detail = json.RawMessage(det)
			}
			evs = append(evs, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, e := range evs {
			if _, err := t.exec(ctx, `DELETE FROM audit WHERE id = ?`, e.ID); err != nil {
				return err
			}
			if err := t.appendEvent(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// AuditFilter selects audit events.
type AuditFilter struct {
	Actor  string
	Action string // exact, or a prefix ending in "." or "*" ("app.", "token.*")
	App    string // events whose target is the app (name, "app:NAME")
	Since  time.Time
	Until  time.Time
}

// AuditEvents lists events in chain order after the cursor (a sequence
// number), filtered.
func (t *Tx) AuditEvents(ctx context.Context, f AuditFilter, pg Page) ([]lifeboat.AuditEvent, error) {
	after := int64(0)
	if pg.After != "" {
		n, err := strconv.ParseInt(pg.After, 10, 64)
		if err != nil || n < 0 {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "audit cursor %q: want a sequence number", pg.After)
		}
		after = n
	}
	q := `SELECT id, time, actor, action, target, outcome, detail, seq, prev_hash, hash, source, request_id FROM audit WHERE seq > ?`
	args := []any{after}
	if f.Actor != "" {
		q += ` AND actor = ?`
		args = append(args, f.Actor)
	}
	switch a := strings.TrimSuffix(f.Action, "*"); {
	case a == "":
	case strings.HasSuffix(a, "."):
		q += ` AND action LIKE ?`
		args = append(args, strings.NewReplacer("%", `\%`, "_", `\_`).Replace(a)+"%")
	default:
		q += ` AND action = ?`
		args = append(args, a)
	}
	if f.App != "" {
		q += ` AND target IN (?, ?)`
		args = append(args, f.App, "app:"+f.App)
	}
	if !f.Since.IsZero() {
		q += ` AND time >= ?`
		args = append(args, ns(f.Since))
	}
	if !f.Until.IsZero() {
		q += ` AND time < ?`
		args = append(args, ns(f.Until))
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, pg.limit())
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lifeboat.AuditEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}

func scanEvent(rows *sql.Rows) (*lifeboat.AuditEvent, error) {
	var e lifeboat.AuditEvent
	var tm int64
	var d string
	var seq sql.NullInt64
	if err := rows.Scan(&e.ID, &tm, &e.Actor, &e.Action, &e.Target, &e.Outcome, &d, &seq, &e.PrevHash, &e.Hash, &e.Source, &e.RequestID); err != nil {
		return nil, err
	}
	e.Time, e.Seq = fromNS(tm), seq.Int64
	if d != "" {
		e.Detail = json.RawMessage(d)
	}
	return &e, nil
}

// AuditHead is the chain's head: the newest event's sequence and hash.
type AuditHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Head returns the chain head row.
func (t *Tx) AuditHead(ctx context.Context) (AuditHead, error) {
	var h AuditHead
	err := t.queryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash)
	return h, rowErr(err)
}

// ChainBreak names the first place where the chain does not hold.
type ChainBreak struct {
	Seq    int64  `json:"seq"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
}

// ChainCheck is the result of walking the chain in the catalog.
type ChainCheck struct {
	Events int64       `json:"events"`
	Head   AuditHead   `json:"head"`
	Last   AuditHead   `json:"last"` // the newest event found
	Break  *ChainBreak `json:"break,omitempty"`
}

// VerifyAudit walks the whole chain: every event's hash recomputed, every
// link and sequence number checked, and the head compared with the newest
// event. It stops at the first break.
func (d *DB) VerifyAudit(ctx context.Context) (*ChainCheck, error) {
	res := &ChainCheck{}
	err := d.View(ctx, func(t *Tx) error {
		var err error
		if res.Head, err = t.AuditHead(ctx); err != nil {
			return err
		}
		rows, err := t.query(ctx, `SELECT id, time, actor, action, target, outcome, detail, seq, prev_hash, hash, source, request_id FROM audit ORDER BY seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		want := int64(1)
		prev := ""
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				return err
			}
			res.Events++
			brk := func(format string, args ...any) error {
				res.Break = &ChainBreak{Seq: e.Seq, ID: e.ID, Reason: fmt.Sprintf(format, args...)}
				return nil
			}
			switch {
			case e.Seq != want && e.Seq > want:
				brk("events %d to %d are missing (deleted)", want, e.Seq-1)
				res.Break.Seq, res.Break.ID = want, ""
				return nil
			case e.Seq != want:
				return brk("sequence %d where %d was expected", e.Seq, want)
			case e.PrevHash != prev:
				return brk("does not link to event %d (reordered, or an earlier event was replaced)", want-1)
			case ChainHash(prev, e) != e.Hash:
				return brk("its content does not match its hash (edited)")
			}
			prev, want = e.Hash, want+1
			res.Last = AuditHead{Seq: e.Seq, Hash: e.Hash}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		switch {
		case res.Head.Seq > res.Last.Seq:
			res.Break = &ChainBreak{Seq: res.Last.Seq + 1, Reason: fmt.Sprintf("the chain head is at event %d but the newest event is %d: events were dropped from the end", res.Head.Seq, res.Last.Seq)}
		case res.Head != res.Last:
			res.Break = &ChainBreak{Seq: res.Last.Seq, Reason: fmt.Sprintf("the chain head (%d) does not match the newest event (%d)", res.Head.Seq, res.Last.Seq)}
		}
		return nil
	})
	return res, err
}
