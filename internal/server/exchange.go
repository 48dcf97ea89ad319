package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/federation"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// TrustRule maps external OIDC tokens (a CI job's ID token) to a service
// identity: workload-identity federation. See docs/access.md.
type TrustRule struct {
	Name     string            `json:"name" yaml:"name"`
	Issuer   string            `json:"issuer" yaml:"issuer"`
	Audience string            `json:"audience" yaml:"audience"`
	Subject  string            `json:"subject" yaml:"subject"` // pattern; '*' matches any run of characters
	Claims   map[string]string `json:"claims,omitempty" yaml:"claims,omitempty"`
	// Principal is a service identity (app:NAME), or a user: OIDC sign-in
	// for people, with the exact subject of that person's ID tokens.
	Principal string            `json:"principal" yaml:"principal"`
	TTL       lifeboat.Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`
}

func (r TrustRule) rule() federation.Rule {
	return federation.Rule{Name: r.Name, Issuer: r.Issuer, Audience: r.Audience, Subject: r.Subject, Claims: r.Claims, Principal: r.Principal, TTL: r.TTL.D()}
}

// ExchangeRequest carries an external token to exchange.
type ExchangeRequest struct {
	Token string `json:"token"`
}

// ExchangeResult is the Lifeboat token an exchange issues.
type ExchangeResult struct {
	Token     string    `json:"token"`
	Principal string    `json:"principal"`
	Rule      string    `json:"rule"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func (s *Server) trustRules(ctx context.Context) ([]TrustRule, error) {
	var out []TrustRule
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		docs, err := tx.TrustRules(ctx)
		for _, d := range docs {
			var r TrustRule
			if err := json.Unmarshal(d, &r); err != nil {
				return lifeboat.Errorf(lifeboat.ECorrupt, "catalog: unreadable trust rule: %v", err)
			}
			out = append(out, r)
		}
		return err
	})
	return out, err
}

func (s *Server) listTrustRules(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	rules, err := s.trustRules(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(rules, catalog.Page{Limit: 1 << 30}, func(r TrustRule) string { return r.Name }))
}

func (s *Server) putTrustRule(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var tr TrustRule
	if err := decode(r, &tr); err != nil {
		return err
	}
	if tr.Name == "" {
		tr.Name = r.PathValue("rule")
	}
	if tr.Name != r.PathValue("rule") {
		return lifeboat.Errorf(lifeboat.EInvalid, "trust rule name %q in the body differs from %q in the path", tr.Name, r.PathValue("rule"))
	}
	if err := validName("trust rule", tr.Name); err != nil {
		return err
	}
	rule := tr.rule()
	if err := rule.Validate(); err != nil {
		return err
	}
	doc, err := json.Marshal(tr)
	if err != nil {
		return err
	}
	err = s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		who, err := tx.GetPrincipal(r.Context(), tr.Principal)
		if err != nil {
			return notFound(err, "principal", tr.Principal)
		}
		switch who.Kind {
		case lifeboat.KindService:
		case lifeboat.KindUser:
			// One person's tokens only: a pattern would let many people in
			// as one user.
			if strings.Contains(tr.Subject, "*") {
				return lifeboat.Errorf(lifeboat.EInvalid, "trust rule %s: principal %s is a user: the subject must be that person's exact subject, with no '*'", tr.Name, tr.Principal)
			}
		default:
			return lifeboat.Errorf(lifeboat.EInvalid, "trust rule %s: principal %s is a %s; external tokens map to service identities (app:NAME) or users", tr.Name, tr.Principal, who.Kind)
		}
		if err := tx.PutTrustRule(r.Context(), tr.Name, doc); err != nil {
			return err
		}
		return tx.Audit(r.Context(), p.Name, "trust-rule.put", tr.Name, "ok", tr)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, tr)
}

func (s *Server) deleteTrustRule(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("rule")
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		if err := tx.DeleteTrustRule(r.Context(), name); err != nil {
			return notFound(err, "trust rule", name)
		}
		return tx.Audit(r.Context(), p.Name, "trust-rule.delete", name, "ok", nil)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// exchangeToken: POST /api/v1/token/exchange. Public: the external token is
// the credential. It is verified against the trust rules (issuer keys
// fetched and cached); a match issues a short-lived token of the rule's
// service identity. Every attempt is audited with its reason, the token
// never; failures count against the caller's address like failed sign-ins.
func (s *Server) exchangeToken(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	var req ExchangeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	src := sourceAddr(r)
	key := "exchange:" + src
	audit := func(actor, target, outcome string, detail map[string]string) {
		detail["source"] = src
		s.db.Update(context.WithoutCancel(ctx), func(tx *catalog.Tx) error {
			return tx.Audit(ctx, actor, "token.exchange", target, outcome, detail)
		})
	}
	if ok, wait, err := s.signIns.allow(r.Context(), s.now(), key); err != nil {
		return err
	} else if !ok {
		audit("external", "", "denied", map[string]string{"reason": "rate limited"})
		return lifeboat.Errorf(lifeboat.ERateLimited, "token exchange: too many refused tokens from this address; try again in %v", wait.Round(time.Second))
	}
	if req.Token == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "token exchange: token is required")
	}
	m, err := s.matchTrust(ctx, req.Token)
	if err != nil {
		if lifeboat.ErrorCode(err) == lifeboat.EAuth {
			s.signIns.fail(r.Context(), s.now(), key)
		}
		audit("external", "", "denied", map[string]string{"reason": err.Error()})
		return err
	}
	var out ExchangeResult
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		who, err := tx.GetPrincipal(ctx, m.Rule.Principal)
		if err != nil || (who.Kind != lifeboat.KindService && who.Kind != lifeboat.KindUser) || (who.Kind == lifeboat.KindUser && m.Subject != m.Rule.Subject) {
			return lifeboat.Errorf(lifeboat.EAuth, "token refused: rule %s maps to %s, which is no longer a service identity or that user", m.Rule.Name, m.Rule.Principal)
		}
		tok, info, err := tx.CreateToken(ctx, m.Rule.Principal, m.TTL)
		if err != nil {
			return err
		}
		out = ExchangeResult{Token: tok, Principal: m.Rule.Principal, Rule: m.Rule.Name, ExpiresAt: *info.ExpiresAt}
		return tx.Audit(ctx, "external:"+m.Subject, "token.exchange", m.Rule.Principal, "ok",
			map[string]string{"rule": m.Rule.Name, "issuer": m.Issuer, "subject": m.Subject, "token": info.ID, "source": src})
	})
	if err != nil {
		if lifeboat.ErrorCode(err) == lifeboat.EAuth {
			audit("external:"+m.Subject, m.Rule.Principal, "denied", map[string]string{"reason": err.Error()})
		}
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

// matchTrust verifies an external token and returns the first trust rule
// that accepts it.
func (s *Server) matchTrust(ctx context.Context, raw string) (*federation.Match, error) {
	trs, err := s.trustRules(ctx)
	if err != nil {
		return nil, err
	}
	rules := make([]federation.Rule, len(trs))
	for i, tr := range trs {
		rules[i] = tr.rule()
	}
	return s.fed.Exchange(ctx, raw, rules)
}

// auditSignIn records a sign-in attempt in its own transaction (refusals
// too: the caller's answer is an error).
func (s *Server) auditSignIn(ctx context.Context, actor, target, outcome string, detail map[string]string) {
	s.db.Update(context.WithoutCancel(ctx), func(tx *catalog.Tx) error {
		return tx.Audit(ctx, actor, "session.create", target, outcome, detail)
	})
}
