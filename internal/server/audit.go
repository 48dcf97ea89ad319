package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/syslog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// requestIDPattern accepts a caller's X-Request-Id; anything else gets a
// fresh one.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// withOrigin tags the request's context with its source address and
// request id (echoed in X-Request-Id), which its audit events record.
func withOrigin(w http.ResponseWriter, r *http.Request) *http.Request {
	id := r.Header.Get("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Request-Id", id)
	return r.WithContext(catalog.WithOrigin(r.Context(), catalog.Origin{Source: sourceAddr(r), RequestID: id}))
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	pg, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := catalog.AuditFilter{Actor: q.Get("principal"), Action: q.Get("action"), App: q.Get("app")}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			if *dst, err = time.Parse(time.RFC3339, v); err != nil {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s %q: want an RFC 3339 time (2026-11-25T10:00:00Z)", name, v)
			}
		}
	}
	var out []lifeboat.AuditEvent
	err = s.db.View(r.Context(), func(tx *catalog.Tx) error {
		out, err = tx.AuditEvents(r.Context(), f, pg)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, pg, func(e lifeboat.AuditEvent) string { return fmt.Sprint(e.Seq) }))
}

// auditSegment is the content of one audit segment in a vault.
type auditSegment struct {
	Format  string                `json:"format"` // lifeboat-audit-segment
	Version int                   `json:"version"`
	Server  string                `json:"server"`
	Events  []lifeboat.AuditEvent `json:"events"`
}

// segmentEvents bounds one segment.
const segmentEvents = 1000

// copyAuditToVaults appends the events not yet copied to every vault's
// storage as new segments. Vault segments are immutable: a copied event
// can no longer be changed or removed without the difference showing.
func (s *Server) copyAuditToVaults(ctx context.Context) error {
	var names []string
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		vs, err := tx.Vaults(ctx)
		for _, v := range vs {
			if v.RetiredAt == nil {
				names = append(names, v.Name)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := s.copyAuditTo(ctx, name); err != nil {
			return fmt.Errorf("audit copy to vault %s: %w", name, err)
		}
	}
	return s.sendAuditSinks(ctx)
}

// Server settings holding the newest event each external sink took.
const (
	auditWebhookKey = "audit_webhook_seq"
	auditSyslogKey  = "audit_syslog_seq"
)

// sendAuditSinks sends the events the external sinks (webhook, syslog)
// have not taken yet.
func (s *Server) sendAuditSinks(ctx context.Context) error {
	if s.cfg.AuditWebhook != "" {
		if err := s.sendAuditSink(ctx, auditWebhookKey, s.postAuditSegment); err != nil {
			return fmt.Errorf("audit webhook: %w", err)
		}
	}
	if s.cfg.AuditSyslog != "" {
		if err := s.sendAuditSink(ctx, auditSyslogKey, s.syslogAuditEvents); err != nil {
			return fmt.Errorf("audit syslog: %w", err)
		}
	}
	return nil
}

// sendAuditSink sends a sink the events it has not taken, a segment at a
// time, oldest first; a failure is retried next time from the first
// event not taken (the receiver may see an event twice: the sequence
// number tells).
func (s *Server) sendAuditSink(ctx context.Context, key string, send func(context.Context, []lifeboat.AuditEvent, []byte) error) error {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	last := int64(0)
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		v, err := tx.Setting(ctx, key)
		if err == catalog.ErrNotFound {
			return nil
		}
		if err == nil {
			last, _ = strconv.ParseInt(v, 10, 64)
		}
		return err
	})
	if err != nil {
		return err
	}
	for {
		evs, b, err := s.nextSegment(ctx, last)
		if err != nil || len(evs) == 0 {
			return err
		}
		if err := send(ctx, evs, b); err != nil {
			return err
		}
		last = evs[len(evs)-1].Seq
		err = s.db.Update(ctx, func(tx *catalog.Tx) error { return tx.PutSetting(ctx, key, fmt.Sprint(last)) })
		if err != nil {
			return err
		}
	}
}

// postAuditSegment POSTs a segment to the webhook; a 2xx answer is taking it.
func (s *Server) postAuditSegment(ctx context.Context, _ []lifeboat.AuditEvent, b []byte) error {
	client := &http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, "POST", s.cfg.AuditWebhook, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return lifeboat.Errorf(lifeboat.EUnavailable, "POST to the audit webhook: %v", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return lifeboat.Errorf(lifeboat.EUnavailable, "the audit webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// syslogAuditEvents writes one syslog message per event (facility auth,
// severity notice, tag "lifeboat-audit"): the event's JSON, hash included.
func (s *Server) syslogAuditEvents(ctx context.Context, evs []lifeboat.AuditEvent, _ []byte) error {
	network, addr, err := ParseSyslogTarget(s.cfg.AuditSyslog)
	if err != nil {
		return err
	}
	w, err := syslog.Dial(network, addr, syslog.LOG_AUTH|syslog.LOG_NOTICE, "lifeboat-audit")
	if err != nil {
		return lifeboat.Errorf(lifeboat.EUnavailable, "syslog %s: %v", s.cfg.AuditSyslog, err)
	}
	defer w.Close()
	for _, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := w.Notice(string(b)); err != nil {
			return lifeboat.Errorf(lifeboat.EUnavailable, "syslog %s: %v", s.cfg.AuditSyslog, err)
		}
	}
	return nil
}

// ParseSyslogTarget splits udp://host:port, tcp://host:port or
// unix:///path (a local syslog socket such as /dev/log).
func ParseSyslogTarget(target string) (network, addr string, err error) {
	u, err := url.Parse(target)
	if err == nil {
		switch u.Scheme {
		case "udp", "tcp":
			if u.Host != "" && u.Port() != "" && u.Path == "" {
				return u.Scheme, u.Host, nil
			}
		case "unix":
			if u.Host == "" && u.Path != "" {
				return "unixgram", u.Path, nil
			}
		}
	}
	return "", "", lifeboat.Errorf(lifeboat.EInvalid, "audit syslog target %q: want udp://HOST:PORT, tcp://HOST:PORT or unix:///PATH", target)
}

func (s *Server) copyAuditTo(ctx context.Context, name string) error {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	v, err := s.vaults.get(ctx, name)
	if err != nil {
		return err
	}
	last, ok := s.auditCopied[name]
	if !ok {
		segs, err := v.AuditSegments(ctx)
		if err != nil {
			return err
		}
		for _, sg := range segs {
			last = max(last, sg.Last)
		}
	}
	keep, err := s.lockRetention(ctx, name)
	if err != nil {
		return err
	}
	for {
		evs, b, err := s.nextSegment(ctx, last)
		if err != nil || len(evs) == 0 {
			return err
		}
		first, end := evs[0].Seq, evs[len(evs)-1].Seq
		if err := v.PutAuditSegment(ctx, first, end, b); err != nil && lifeboat.ErrorCode(err) != lifeboat.EExists {
			return err
		}
		if keep > 0 { // object-locked where a compliance lock is in force
			if err := v.RetainObject(ctx, vault.AuditSegmentName(first, end), s.now().Add(keep)); err != nil {
				return err
			}
		}
		last = end
		s.auditCopied[name] = last
	}
}

// nextSegment returns up to segmentEvents events after seq last, and
// their segment as JSON (nothing when there is no newer event).
func (s *Server) nextSegment(ctx context.Context, last int64) ([]lifeboat.AuditEvent, []byte, error) {
	var evs []lifeboat.AuditEvent
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		evs, err = tx.AuditEvents(ctx, catalog.AuditFilter{}, catalog.Page{After: fmt.Sprint(last), Limit: segmentEvents})
		return err
	})
	if err != nil || len(evs) == 0 {
		return nil, nil, err
	}
	b, err := json.Marshal(auditSegment{Format: "lifeboat-audit-segment", Version: 1, Server: s.cfg.Name, Events: evs})
	return evs, b, err
}

// AuditVerify is what `lifeboat audit verify` reports.
type AuditVerify struct {
	Catalog *catalog.ChainCheck `json:"catalog"`
	Vaults  []VaultAuditCheck   `json:"vaults"`
	OK      bool                `json:"ok"`
}

// VaultAuditCheck compares the catalog's chain with one vault's copy.
type VaultAuditCheck struct {
	Vault    string `json:"vault"`
	Segments int    `json:"segments"`
	Events   int64  `json:"events"` // events in the vault's copy
	Newest   int64  `json:"newest"` // the newest event in the copy
	Problem  string `json:"problem,omitempty"`
	FirstBad int64  `json:"firstBad,omitempty"` // the first event that differs
}

// verifyAudit checks the chain in the catalog, then every vault's copy
// against it: an event in a copy that the catalog lacks or holds
// differently, and a catalog head older than a copy's newest event.
func (s *Server) verifyAudit(ctx context.Context, only string) (*AuditVerify, error) {
	cc, err := s.db.VerifyAudit(ctx)
	if err != nil {
		return nil, err
	}
	res := &AuditVerify{Catalog: cc, OK: cc.Break == nil, Vaults: []VaultAuditCheck{}}
	var names []string
	err = s.db.View(ctx, func(tx *catalog.Tx) error {
		vs, err := tx.Vaults(ctx)
		for _, v := range vs {
			if (only == "" && v.RetiredAt == nil) || v.Name == only {
				names = append(names, v.Name)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if only != "" && len(names) == 0 {
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "vault %s not found", only)
	}
	for _, name := range names {
		vc := s.checkAuditCopy(ctx, name)
		if vc.Problem != "" {
			res.OK = false
		}
		res.Vaults = append(res.Vaults, vc)
	}
	return res, nil
}

func (s *Server) checkAuditCopy(ctx context.Context, name string) VaultAuditCheck {
	vc := VaultAuditCheck{Vault: name}
	fail := func(seq int64, format string, args ...any) VaultAuditCheck {
		if vc.Problem == "" {
			vc.Problem, vc.FirstBad = fmt.Sprintf(format, args...), seq
		}
		return vc
	}
	v, err := s.vaults.get(ctx, name)
	if err != nil {
		return fail(0, "cannot open the vault: %v", err)
	}
	segs, err := v.AuditSegments(ctx)
	if err != nil {
		return fail(0, "cannot list its audit segments: %v", err)
	}
	vc.Segments = len(segs)
	var head catalog.AuditHead
	if err := s.db.View(ctx, func(tx *catalog.Tx) error { head, err = tx.AuditHead(ctx); return err }); err != nil {
		return fail(0, "catalog: %v", err)
	}
	for _, ref := range segs {
		b, err := v.AuditSegment(ctx, ref)
		if err != nil {
			return fail(ref.First, "segment %s: %v", ref.Name, err)
		}
		var sg auditSegment
		if err := json.Unmarshal(b, &sg); err != nil || sg.Format != "lifeboat-audit-segment" || len(sg.Events) == 0 ||
			sg.Events[0].Seq != ref.First || sg.Events[len(sg.Events)-1].Seq != ref.Last {
			return fail(ref.First, "segment %s: unreadable or not what its name says", ref.Name)
		}
		// The catalog's events of the same range, compared hash for hash.
		var cat []lifeboat.AuditEvent
		err = s.db.View(ctx, func(tx *catalog.Tx) error {
			var err error
			cat, err = tx.AuditEvents(ctx, catalog.AuditFilter{}, catalog.Page{After: fmt.Sprint(ref.First - 1), Limit: len(sg.Events)})
			return err
		})
		if err != nil {
			return fail(ref.First, "catalog: %v", err)
		}
		bySeq := map[int64]lifeboat.AuditEvent{}
		for _, e := range cat {
			bySeq[e.Seq] = e
		}
		for _, e := range sg.Events {
			vc.Events++
			vc.Newest = max(vc.Newest, e.Seq)
			if catalog.ChainHash(e.PrevHash, &e) != e.Hash {
				return fail(e.Seq, "event %d in segment %s does not match its own hash", e.Seq, ref.Name)
			}
			c, ok := bySeq[e.Seq]
			switch {
			case !ok && e.Seq > head.Seq:
				return fail(e.Seq, "the catalog's chain head (event %d) is older than this vault's copy (event %d): the newest events were removed from the catalog", head.Seq, ref.Last)
			case !ok:
				return fail(e.Seq, "event %d (%s %s by %s) is in this vault's copy but not in the catalog", e.Seq, e.Action, e.Target, e.Actor)
			case c.Hash != e.Hash || catalog.ChainHash(c.PrevHash, &c) != e.Hash:
				return fail(e.Seq, "event %d differs from this vault's copy (the catalog's was edited or replaced)", e.Seq)
			}
		}
	}
	return vc
}

// getAuditVerify: GET /api/v1/audit/verify[?vault=V].
func (s *Server) getAuditVerify(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	res, err := s.verifyAudit(r.Context(), r.URL.Query().Get("vault"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
