package federation

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Options configures a Federation. The zero value is usable.
type Options struct {
	// HTTPClient fetches discovery documents and key sets. Nil means a
	// client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock for expiry checks and TTLs. Nil means time.Now.
	Now func() time.Time
}

// Federation verifies external tokens against a set of rules. It caches one
// OIDC provider (discovery document and key set) per issuer, so it should be
// long-lived and shared. It is safe for concurrent use.
type Federation struct {
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	issuers map[string]*issuer // by issuer URL, as named in rules
}

// issuer holds the provider of one issuer once discovery has succeeded.
// Discovery that fails is not remembered: the next Exchange tries again.
type issuer struct {
	sem      chan struct{} // held while discovering, so callers don't stampede
	provider *oidc.Provider
}

// Match is the outcome of a successful Exchange.
type Match struct {
	Rule    Rule
	Subject string
	Issuer  string
	Expiry  time.Time     // the external token's expiry
	TTL     time.Duration // the Lifeboat token's lifetime: min(rule TTL or DefaultTTL, time until the external token expires)
}

// New returns a Federation with the defaults of Options applied.
func New(o Options) *Federation {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Federation{client: o.HTTPClient, now: o.Now, issuers: map[string]*issuer{}}
}

// Exchange verifies raw (a compact JWS) and returns the first rule (in the
// order given) whose issuer, audience, subject pattern and claims all match,
// with the token's subject and expiry.
//
// Every refusal is an EAuth error saying why; an issuer that cannot be
// reached is EUnavailable; an invalid rule is EInvalid. No error contains
// the raw token.
func (f *Federation) Exchange(ctx context.Context, raw string, rules []Rule) (*Match, error) {
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			return nil, err
		}
	}
	u, err := peek(raw)
	if err != nil {
		return nil, err
	}
	var candidates []*Rule
	for i := range rules {
		if rules[i].Issuer == u.iss {
			candidates = append(candidates, &rules[i])
		}
	}
	if len(candidates) == 0 {
		return nil, refused(nil, "issuer %s is not trusted by any rule", quote(u.iss))
	}
	provider, err := f.provider(ctx, u.iss)
	if err != nil {
		return nil, err
	}

	// go-oidc checks signature, issuer, audience and expiry together, so
	// verify once per distinct audience, in rule order.
	var (
		tokens      = map[string]*oidc.IDToken{} // audience -> verified token
		missedAuds  []string                     // audiences the token lacks
		claims      map[string]any
		claimsWhy   string // why the first rule matching the subject failed its claims
		subjectSeen string
	)
	for _, r := range candidates {
		tok, ok := tokens[r.Audience]
		if !ok {
			if slices.Contains(missedAuds, r.Audience) {
				continue
			}
			tok, err = f.verify(ctx, provider, r, raw)
			if errors.Is(err, errAudience) {
				missedAuds = append(missedAuds, r.Audience)
				continue
			}
			if err != nil {
				return nil, err
			}
			tokens[r.Audience] = tok
		}
		subjectSeen = tok.Subject
		if !matchPattern(r.Subject, tok.Subject) {
			continue
		}
		if len(r.Claims) > 0 {
			if claims == nil {
				if err := tok.Claims(&claims); err != nil {
					return nil, refused(err, "claims are not a JSON object")
				}
			}
			if why := r.claimsMismatch(claims); why != "" {
				if claimsWhy == "" {
					claimsWhy = "rule " + quote(r.Name) + ": " + why
				}
				continue
			}
		}
		ttl := r.ttl()
		if left := tok.Expiry.Sub(f.now()); left < ttl {
			ttl = left
		}
		if ttl <= 0 { // exp == now passes go-oidc (not Before now) but leaves no time
			return nil, refused(nil, "expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
		}
		m := &Match{Rule: *r, Subject: tok.Subject, Issuer: tok.Issuer, Expiry: tok.Expiry, TTL: ttl}
		m.Rule.Claims = maps.Clone(r.Claims) // the caller's rules stay unaliased
		return m, nil
	}

	if len(tokens) == 0 {
		for i, a := range missedAuds {
			missedAuds[i] = quote(a)
		}
		return nil, refused(nil, "audience does not include %s", strings.Join(missedAuds, " or "))
	}
	if claimsWhy != "" {
		return nil, refused(nil, "no rule matches subject %s with its claims (%s)", quote(subjectSeen), claimsWhy)
	}
	return nil, refused(nil, "no rule matches subject %s", quote(subjectSeen))
}

// errAudience marks a token whose aud lacks a rule's audience: the next rule
// may name another audience, so Exchange goes on instead of refusing.
var errAudience = errors.New("audience mismatch")

// verify checks raw's signature, issuer, expiry and audience (r.Audience)
// and translates go-oidc's errors into refusals.
func (f *Federation) verify(ctx context.Context, p *oidc.Provider, r *Rule, raw string) (*oidc.IDToken, error) {
	v := p.Verifier(&oidc.Config{
		ClientID:             r.Audience,
		SupportedSigningAlgs: signingAlgs,
		Now:                  f.now,
	})
	tok, err := v.Verify(oidc.ClientContext(ctx, f.client), raw)
	if err == nil {
		return tok, nil
	}
	// go-oidc types only the expiry error; the others are matched on their
	// text (oidc/verify.go, v3.21.0). The tests pin each of these reasons.
	var expired *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &expired):
		if expired.Expiry.IsZero() {
			return nil, refused(err, "no expiry (exp)")
		}
		return nil, refused(err, "expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
	case strings.Contains(msg, "fetching keys"):
		if ctx.Err() != nil {
			return nil, unavailable(r.Issuer, ctx.Err(), "fetching signing keys")
		}
		return nil, unavailable(r.Issuer, err, "fetching signing keys")
	case strings.HasPrefix(msg, "failed to verify signature"):
		return nil, refused(err, "signature does not verify with the issuer's keys")
	case strings.Contains(msg, "expected audience"):
		return nil, errAudience
	case strings.Contains(msg, "issued by a different provider"):
		return nil, refused(err, "issuer does not match %s", r.Issuer)
	case strings.Contains(msg, "nbf"):
		return nil, refused(err, "not valid yet (nbf is in the future)")
	case strings.Contains(msg, "malformed jwt") && strings.Contains(msg, "signature algorithm"):
		return nil, refused(err, "signing algorithm is not accepted")
	case strings.Contains(msg, "malformed jwt"):
		return nil, refused(err, "not a signed JWT")
	}
	return nil, refused(err, "does not verify")
}

// provider returns the cached provider for iss, running discovery if no
// earlier call succeeded.
func (f *Federation) provider(ctx context.Context, iss string) (*oidc.Provider, error) {
	f.mu.Lock()
	is := f.issuers[iss]
	if is == nil {
		is = &issuer{sem: make(chan struct{}, 1)}
		f.issuers[iss] = is
	}
	f.mu.Unlock()

	select {
	case is.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, unavailable(iss, ctx.Err(), "discovery")
	}
	defer func() { <-is.sem }()
	if is.provider != nil {
		return is.provider, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, f.client), iss)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			e := unavailable(iss, nil, "discovery document names issuer "+quote(mismatch.Discovered))
			e.Err = err
			return nil, e
		}
		return nil, unavailable(iss, err, "discovery")
	}
	is.provider = p
	return p, nil
}
