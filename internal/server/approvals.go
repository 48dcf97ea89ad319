package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Two-person approval. A destructive request (shortening retention,
// removing an owner, changing the approvers group or its roles...) is not
// run when it arrives: it is kept, bound to a hash of its exact method,
// path and body, and answered 202 with the approval request. A human user
// other than the requester, who has been in the approvers group for at
// least ApprovalStanding before the request was made, approves it; the
// server then runs it as the requester (whose permissions are checked
// again). Requests expire. All of it is audited.
//
// Until the approvers group has a user of that standing, protected
// requests run at once (a new installation has nobody to ask) and the
// audit trail says so.

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalExecuted = "executed" // approved and run; Result says how it went
	ApprovalFailed   = "failed"   // approved, but running it failed
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
)

// Approval is a request waiting for, or decided by, a second person.
type Approval struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Requester string `json:"requester"`
	Action    string `json:"action"` // what is protected, e.g. policy.shorten-retention
	Target    string `json:"target"`
	// Approvers is the group whose members may approve: the vault's own
	// approvers group for a vault's requests, else the server's.
	Approvers string          `json:"approvers"`
	Reason    string          `json:"reason"` // what the request would do
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Body      json.RawMessage `json:"body,omitempty"`
	Hash      string          `json:"hash"` // SHA-256 of method, path and body
	CreatedAt time.Time       `json:"createdAt"`
	ExpiresAt time.Time       `json:"expiresAt"`
	DecidedBy string          `json:"decidedBy,omitempty"`
	DecidedAt *time.Time      `json:"decidedAt,omitempty"`
	Result    *ApprovalResult `json:"result,omitempty"`
}

// ApprovalResult is what running an approved request answered.
type ApprovalResult struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body,omitempty"`
}

const (
	// ApprovalStanding is how long an approver must have been in the
	// approvers group before the request.
	ApprovalStanding = 24 * time.Hour
	// ApprovalTTL is how long a request waits before it expires.
	ApprovalTTL = 72 * time.Hour
	// DefaultApprovers is the approvers group's name.
	DefaultApprovers = "approvers"
)

// errApproval carries the approval request a handler created.
type errApproval struct{ a *Approval }

func (e *errApproval) Error() string {
	return fmt.Sprintf("%s needs a second person's approval: request %s waits (until %s) for a member of group %s other than %s",
		e.a.Action, e.a.ID, e.a.ExpiresAt.Format(time.RFC3339), e.a.approvers(), e.a.Requester)
}

// writeApproval answers 202 with the approval request.
func writeApproval(w http.ResponseWriter, e *errApproval) {
	w.Header().Set("Lifeboat-Approval", e.a.ID)
	writeJSON(w, http.StatusAccepted, map[string]any{"type": "about:blank", "title": "Approval required", "status": http.StatusAccepted,
		"code": string(lifeboat.EApproval), "detail": e.Error(), "approval": e.a})
}

type bodyKey struct{}
type approvedKey struct{}

// approved marks a replayed request: it runs as requester, once.
type approved struct {
	hash      string
	principal *lifeboat.Principal
}

// keepBody reads a mutating request's body into the context (bounded), so
// that a protected request can be kept exactly as it came.
func keepBody(r *http.Request) (*http.Request, error) {
	if r.Method == http.MethodGet || r.Body == nil {
		return r, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "request body: %v", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return r.WithContext(context.WithValue(r.Context(), bodyKey{}, b)), nil
}

func requestHashOf(method, path string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", method, path)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// approvers is the group that decides a (possibly older) request.
func (a *Approval) approvers() string {
	if a.Approvers == "" {
		return DefaultApprovers
	}
	return a.Approvers
}

// approvalsActive reports whether an approvers group has a user of
// standing (who could approve a request made now).
func (s *Server) approvalsActive(ctx context.Context, tx *catalog.Tx, group string) (bool, error) {
	users, err := tx.StandingUsers(ctx, group, s.now().Add(-ApprovalStanding))
	return len(users) > 0, err
}

// vaultApprovers returns the group that approves a vault's requests: its
// own approvers group, else the server's.
func vaultApprovers(ctx context.Context, tx *catalog.Tx, vault string) (string, error) {
	v, err := tx.Vault(ctx, vault)
	if err != nil {
		return "", notFound(err, "vault", vault)
	}
	if v.Approvers == "" {
		return DefaultApprovers, nil
	}
	return v.Approvers, nil
}

// approversOf is vaultApprovers in its own read transaction.
func (s *Server) approversOf(ctx context.Context, vault string) (string, error) {
	var g string
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		g, err = vaultApprovers(ctx, tx, vault)
		return err
	})
	return g, err
}

// approverGroups returns every group that approves something (the
// server's approvers group and each vault's), with what it approves for.
func approverGroups(ctx context.Context, tx *catalog.Tx) (map[string][]string, error) {
	out := map[string][]string{DefaultApprovers: {"the server"}}
	vs, err := tx.Vaults(ctx)
	for _, v := range vs {
		if v.Approvers != "" && v.RetiredAt == nil {
			out[v.Approvers] = append(out[v.Approvers], "vault "+v.Name)
		}
	}
	return out, err
}

// isApprovers reports whether group approves something, itself or as a
// member (nested) of an approvers group: changing its members changes who
// approves. It returns what it approves for, and the approvers group that
// must approve such a change (group itself, or the one it is nested in).
func (s *Server) isApprovers(ctx context.Context, group string) (what, approver string, err error) {
	var ws []string
	err = s.db.View(ctx, func(tx *catalog.Tx) error {
		gs, err := approverGroups(ctx, tx)
		if err != nil {
			return err
		}
		up, err := tx.GroupsOf(ctx, group)
		if err != nil {
			return err
		}
		for _, g := range append([]string{group}, up...) {
			if len(gs[g]) > 0 && approver == "" {
				approver = g
			}
			for _, w := range gs[g] {
				if g != group {
					w += " (through group " + g + ")"
				}
				ws = append(ws, w)
			}
		}
		return nil
	})
	return strings.Join(ws, ", "), approver, err
}

// needApproval is called by a handler, before it changes anything, for a
// protected operation. It returns nil when the request may go on: it is
// the approved replay of a kept request, or nobody could approve yet.
// Otherwise it keeps the request and returns the error that answers 202.
func (s *Server) needApproval(r *http.Request, p *lifeboat.Principal, group, action, target, reason string) error {
	ctx := r.Context()
	body, _ := ctx.Value(bodyKey{}).([]byte)
	hash := requestHashOf(r.Method, r.URL.RequestURI(), body)
	if ap, ok := ctx.Value(approvedKey{}).(*approved); ok && ap.hash == hash {
		return nil
	}
	if secret := r.Header.Get("Lifeboat-Break-Glass"); secret != "" {
		return s.breakGlass(ctx, p, secret, action, target, reason)
	}
	var out *Approval
	err := s.db.Update(ctx, func(tx *catalog.Tx) error {
		active, err := s.approvalsActive(ctx, tx, group)
		if err != nil {
			return err
		}
		if !active {
			return tx.Audit(ctx, p.Name, "approval.skip", target, "ok", map[string]string{"action": action, "why": "no member of group " + group + " of 24 hours' standing yet"})
		}
		now := s.now()
		out = &Approval{ID: catalog.NewID(now), State: ApprovalPending, Requester: p.Name, Action: action, Target: target, Approvers: group, Reason: reason,
			Method: r.Method, Path: r.URL.RequestURI(), Hash: hash, CreatedAt: now, ExpiresAt: now.Add(ApprovalTTL)}
		if len(body) > 0 && json.Valid(body) {
			out.Body = json.RawMessage(body)
		}
		doc, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if err := tx.PutApproval(ctx, out.ID, out.State, now, doc); err != nil {
			return err
		}
		return tx.Audit(ctx, p.Name, "approval.request", target, "pending", map[string]string{"approval": out.ID, "action": action, "reason": reason})
	})
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return &errApproval{out}
}

func (s *Server) loadApproval(ctx context.Context, tx *catalog.Tx, id string) (*Approval, error) {
	doc, err := tx.Approval(ctx, id)
	if err != nil {
		return nil, notFound(err, "approval request", id)
	}
	var a Approval
	if err := json.Unmarshal(doc, &a); err != nil {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "catalog: unreadable approval request %s", id)
	}
	if a.State == ApprovalPending && !s.now().Before(a.ExpiresAt) {
		a.State = ApprovalExpired
	}
	return &a, nil
}

func (s *Server) saveApproval(ctx context.Context, tx *catalog.Tx, a *Approval) error {
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return tx.PutApproval(ctx, a.ID, a.State, a.CreatedAt, doc)
}

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	state := r.URL.Query().Get("state")
	var out []Approval
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		docs, err := tx.Approvals(r.Context(), "")
		for _, d := range docs {
			var a Approval
			if json.Unmarshal(d, &a) != nil {
				continue
			}
			if a.State == ApprovalPending && !s.now().Before(a.ExpiresAt) {
				a.State = ApprovalExpired
			}
			if state == "" || a.State == state {
				out = append(out, a)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, catalog.Page{Limit: 1 << 30}, func(a Approval) string { return a.ID }))
}

func (s *Server) getApproval(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	var a *Approval
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		a, err = s.loadApproval(r.Context(), tx, r.PathValue("approval"))
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

// decideApproval: POST /api/v1/approvals/{approval}/approve or /deny.
func (s *Server) decideApproval(approve bool) handler {
	return func(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
		ctx := r.Context()
		id := r.PathValue("approval")
		verb := map[bool]string{true: "approve", false: "deny"}[approve]
		var a *Approval
		var requester *lifeboat.Principal
		var refused error // a refusal commits its audit event, then answers
		err := s.db.Update(ctx, func(tx *catalog.Tx) error {
			var err error
			if a, err = s.loadApproval(ctx, tx, id); err != nil {
				return err
			}
			refuse := func(format string, args ...any) error {
				msg := fmt.Sprintf(format, args...)
				refused = lifeboat.Errorf(lifeboat.EForbidden, "approval request %s: %s", a.ID, msg)
				return tx.Audit(ctx, p.Name, "approval."+verb, a.Target, "denied", map[string]string{"approval": a.ID, "reason": msg})
			}
			switch {
			case a.State == ApprovalExpired:
				return lifeboat.Errorf(lifeboat.EInvalid, "approval request %s expired at %s", a.ID, a.ExpiresAt.Format(time.RFC3339))
			case a.State != ApprovalPending:
				return lifeboat.Errorf(lifeboat.EInvalid, "approval request %s is %s already", a.ID, a.State)
			case p.Kind != lifeboat.KindUser:
				return refuse("%s is not a person: only users approve", p.Name)
			case p.Name == a.Requester:
				return refuse("%s asked for it: someone else must approve", p.Name)
			}
			standing, err := tx.StandingMember(ctx, a.approvers(), p.Name, a.CreatedAt.Add(-ApprovalStanding))
			if err != nil {
				return err
			}
			if !standing {
				return refuse("%s has not been in group %s for %v before the request", p.Name, a.approvers(), ApprovalStanding)
			}
			now := s.now()
			a.DecidedBy, a.DecidedAt = p.Name, &now
			if !approve {
				a.State = ApprovalDenied
				if err := s.saveApproval(ctx, tx, a); err != nil {
					return err
				}
				return tx.Audit(ctx, p.Name, "approval.deny", a.Target, "ok", map[string]string{"approval": a.ID, "action": a.Action})
			}
			if requester, err = tx.GetPrincipal(ctx, a.Requester); err != nil {
				return lifeboat.Errorf(lifeboat.EInvalid, "approval request %s: its requester %s no longer exists", a.ID, a.Requester)
			}
			a.State = ApprovalExecuted // claimed: it runs once, below
			if err := s.saveApproval(ctx, tx, a); err != nil {
				return err
			}
			return tx.Audit(ctx, p.Name, "approval.approve", a.Target, "ok", map[string]string{"approval": a.ID, "action": a.Action, "requester": a.Requester})
		})
		if err != nil {
			return err
		}
		if refused != nil {
			return refused
		}
		if approve {
			a.Result = s.replay(ctx, a, requester)
			if a.Result.Status >= 300 {
				a.State = ApprovalFailed
			}
			err = s.db.Update(ctx, func(tx *catalog.Tx) error {
				if err := s.saveApproval(ctx, tx, a); err != nil {
					return err
				}
				return tx.Audit(ctx, a.Requester, "approval.execute", a.Target, a.State, map[string]any{"approval": a.ID, "action": a.Action, "status": a.Result.Status})
			})
			if err != nil {
				return err
			}
		}
		return writeJSON(w, http.StatusOK, a)
	}
}

// replay runs a kept request as its requester, through the same routes,
// access decision and handler as any request.
func (s *Server) replay(ctx context.Context, a *Approval, requester *lifeboat.Principal) *ApprovalResult {
	req := httptest.NewRequestWithContext(context.WithoutCancel(ctx), a.Method, a.Path, bytes.NewReader(a.Body))
	req = req.WithContext(context.WithValue(req.Context(), approvedKey{}, &approved{hash: a.Hash, principal: requester}))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	res := &ApprovalResult{Status: rec.Code}
	if b := bytes.TrimSpace(rec.Body.Bytes()); json.Valid(b) {
		res.Body = json.RawMessage(b)
	}
	return res
}

// shortens says how retention b keeps less than a ("" if it does not).
func shortens(a, b lifeboat.Retention) string {
	var less []string
	for _, f := range []struct {
		name     string
		old, new int
	}{{"last", a.Last, b.Last}, {"hourly", a.Hourly, b.Hourly}, {"daily", a.Daily, b.Daily}, {"weekly", a.Weekly, b.Weekly}, {"monthly", a.Monthly, b.Monthly}, {"yearly", a.Yearly, b.Yearly}} {
		if f.new < f.old {
			less = append(less, fmt.Sprintf("%s %d→%d", f.name, f.old, f.new))
		}
	}
	if b.Within < a.Within {
		less = append(less, fmt.Sprintf("within %v→%v", a.Within, b.Within))
	}
	return strings.Join(less, ", ")
}

// breakGlass lets a protected request through without approval when it
// carries the configured break-glass secret: an audit event that says so
// in its action, an error-level log line, a status warning until the
// server restarts, and an immediate push to the audit webhook.
func (s *Server) breakGlass(ctx context.Context, p *lifeboat.Principal, secret, action, target, reason string) error {
	sum := sha256.Sum256([]byte(secret))
	want, err := hex.DecodeString(s.cfg.BreakGlassHash)
	ok := s.cfg.BreakGlassHash != "" && err == nil && subtle.ConstantTimeCompare(sum[:], want) == 1
	outcome := "ok"
	if !ok {
		outcome = "denied"
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.Audit(ctx, p.Name, "approval.break-glass", target, outcome, map[string]string{"action": action, "reason": reason, "warning": "two-person approval bypassed with the break-glass secret"})
	})
	if err != nil {
		return err
	}
	if !ok {
		if s.cfg.BreakGlassHash == "" {
			return lifeboat.Errorf(lifeboat.EForbidden, "break-glass is not configured on this server")
		}
		return lifeboat.Errorf(lifeboat.EForbidden, "break-glass refused: wrong secret")
	}
	msg := fmt.Sprintf("BREAK-GLASS used by %s at %s: %s (%s) ran without two-person approval", p.Name, s.now().Format(time.RFC3339), action, reason)
	s.log.Error("break-glass used", "principal", p.Name, "action", action, "target", target)
	s.glassMu.Lock()
	s.brokenGlass = append(s.brokenGlass, msg)
	s.glassMu.Unlock()
	if s.cfg.AuditWebhook != "" || s.cfg.AuditSyslog != "" {
		go func() {
			if err := s.sendAuditSinks(context.WithoutCancel(ctx)); err != nil {
				s.log.Warn("audit sinks after break-glass", "err", err)
			}
		}()
	}
	return nil
}
