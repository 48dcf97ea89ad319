package federation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// now is the clock of every test: tokens are minted relative to it.
var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

const (
	testAudience = "lifeboat"
	mainSubject  = "repo:acme/shop:ref:refs/heads/main"
)

// testKey is a signing key with the kid and algorithm the issuer announces.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// keys are generated once per test binary: RSA generation is slow under -race.
var keys = sync.OnceValue(func() map[string]testKey {
	rsaKey := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	rsa1, rsa2, rsaEvil := rsaKey(), rsaKey(), rsaKey()
	ec1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	_, ed1, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]testKey{
		"rsa1": {"rsa1", jose.RS256, rsa1},
		"rsa2": {"rsa2", jose.RS256, rsa2}, // the rotated-in key
		"ps1":  {"ps1", jose.PS256, rsa1},
		"ec1":  {"ec1", jose.ES256, ec1},
		"ed1":  {"ed1", jose.EdDSA, ed1},
		// evil has the kid of rsa1 but a key the issuer never published.
		"evil": {"rsa1", jose.RS256, rsaEvil},
	}
})

func key(name string) testKey { return keys()[name] }

// testIssuer is a real OIDC issuer: discovery document plus JWKS.
type testIssuer struct {
	srv *httptest.Server

	mu        sync.Mutex
	keys      []testKey
	issuer    string // advertised issuer; "" means the server's URL
	failDisco int    // discovery requests still to fail with 500
	failJWKS  bool

	requests, discoveries, jwksFetches atomic.Int32
}

func newIssuer(t *testing.T, ks ...testKey) *testIssuer {
	t.Helper()
	is := &testIssuer{keys: ks}
	is.srv = httptest.NewServer(http.HandlerFunc(is.serve))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *testIssuer) URL() string { return is.srv.URL }

func (is *testIssuer) setKeys(ks ...testKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = ks
}

func (is *testIssuer) serve(w http.ResponseWriter, r *http.Request) {
	is.requests.Add(1)
	is.mu.Lock()
	defer is.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		is.discoveries.Add(1)
		if is.failDisco > 0 {
			is.failDisco--
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		iss := is.issuer
		if iss == "" {
			iss = is.srv.URL
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              is.srv.URL + "/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case "/jwks":
		is.jwksFetches.Add(1)
		if is.failJWKS {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		var set jose.JSONWebKeySet
		for _, k := range is.keys {
			set.Keys = append(set.Keys, k.jwk())
		}
		json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// claims returns the claims of a good token from iss, with over applied;
// a nil value in over removes the claim.
func claims(iss string, over map[string]any) map[string]any {
	c := map[string]any{
		"iss":         iss,
		"aud":         testAudience,
		"sub":         mainSubject,
		"exp":         now.Add(time.Hour).Unix(),
		"iat":         now.Add(-time.Minute).Unix(),
		"repository":  "acme/shop",
		"environment": "production",
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// mint signs claims with k, as the issuer would.
func mint(t *testing.T, k testKey, c map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("new signer: %v", err)
	}
	raw, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return raw
}

// handMade builds header.payload.signature from JSON values, for tokens that
// no honest library would produce.
func handMade(t *testing.T, header, payload any, sig string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(payload) + "." + sig
}

func shopRule(iss string) Rule {
	return Rule{Name: "shop", Issuer: iss, Audience: testAudience, Subject: mainSubject, Principal: "app:shop"}
}

func newFed() *Federation {
	return New(Options{Now: func() time.Time { return now }})
}

func mustExchange(t *testing.T, f *Federation, raw string, rules ...Rule) *Match {
	t.Helper()
	m, err := f.Exchange(context.Background(), raw, rules)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return m
}

// wantRefused checks err's code and reason, and that neither err nor any
// error it wraps repeats the raw token or its signature.
func wantRefused(t *testing.T, err error, code lifeboat.Code, reason, raw string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Exchange succeeded, want %s error %q", code, reason)
	}
	if got := lifeboat.ErrorCode(err); got != code {
		t.Errorf("code = %s, want %s (error: %v)", got, code, err)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("error = %q, want it to contain %q", err, reason)
	}
	sig := raw[strings.LastIndex(raw, ".")+1:]
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := e.Error()
		if raw != "" && strings.Contains(msg, raw) {
			t.Errorf("error contains the raw token: %.80q…", msg)
		}
		if len(sig) >= 8 && strings.Contains(msg, sig) {
			t.Errorf("error contains the token's signature: %.80q…", msg)
		}
	}
}

func TestExchangeGood(t *testing.T) {
	for _, name := range []string{"rsa1", "ps1", "ec1", "ed1"} {
		t.Run(name, func(t *testing.T) {
			k := key(name)
			is := newIssuer(t, key("rsa1"), key("ps1"), key("ec1"), key("ed1"))
			f := newFed()
			raw := mint(t, k, claims(is.URL(), nil))
			m := mustExchange(t, f, raw, shopRule(is.URL()))
			if m.Rule.Principal != "app:shop" || m.Rule.Name != "shop" {
				t.Errorf("rule = %+v, want shop -> app:shop", m.Rule)
			}
			if m.Subject != mainSubject || m.Issuer != is.URL() {
				t.Errorf("subject, issuer = %q, %q; want %q, %q", m.Subject, m.Issuer, mainSubject, is.URL())
			}
			if !m.Expiry.Equal(now.Add(time.Hour)) {
				t.Errorf("expiry = %v, want %v", m.Expiry, now.Add(time.Hour))
			}
			if m.TTL != DefaultTTL {
				t.Errorf("TTL = %v, want %v", m.TTL, DefaultTTL)
			}
		})
	}
}

func TestExchangeCachesProvider(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	f := newFed()
	for range 3 {
		mustExchange(t, f, mint(t, key("rsa1"), claims(is.URL(), nil)), shopRule(is.URL()))
	}
	if d, j := is.discoveries.Load(), is.jwksFetches.Load(); d != 1 || j != 1 {
		t.Errorf("discoveries, key fetches = %d, %d; want 1, 1 (cached)", d, j)
	}
}

func TestExchangeConcurrent(t *testing.T) {
	is := newIssuer(t, key("rsa1"), key("ec1"))
	f := newFed()
	rule := shopRule(is.URL())
	toks := []string{mint(t, key("rsa1"), claims(is.URL(), nil)), mint(t, key("ec1"), claims(is.URL(), nil))}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := f.Exchange(context.Background(), toks[i%2], []Rule{rule}); err != nil {
				t.Errorf("Exchange: %v", err)
			}
		})
	}
	wg.Wait()
	if d := is.discoveries.Load(); d != 1 {
		t.Errorf("discoveries = %d, want 1", d)
	}
}

func TestExchangeTTL(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	f := newFed()
	for _, tc := range []struct {
		name    string
		ruleTTL time.Duration
		left    time.Duration // until the external token expires
		want    time.Duration
	}{
		{"default", 0, time.Hour, DefaultTTL},
		{"rule ttl", 30 * time.Minute, time.Hour, 30 * time.Minute},
		{"max ttl", MaxTTL, 2 * time.Hour, MaxTTL},
		{"capped by expiry, default", 0, 5 * time.Minute, 5 * time.Minute},
		{"capped by expiry, rule ttl", time.Hour, 20 * time.Minute, 20 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := shopRule(is.URL())
			r.TTL = tc.ruleTTL
			raw := mint(t, key("rsa1"), claims(is.URL(), map[string]any{"exp": now.Add(tc.left).Unix()}))
			if m := mustExchange(t, f, raw, r); m.TTL != tc.want {
				t.Errorf("TTL = %v, want %v", m.TTL, tc.want)
			}
		})
	}
}

func TestExchangeExpired(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	f := newFed()
	raw := mint(t, key("rsa1"), claims(is.URL(), map[string]any{"exp": now.Add(-time.Minute).Unix()}))
	_, err := f.Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EAuth, "token refused: expired at 2026-05-04T11:59:00Z", raw)

	// exp == now: go-oidc lets it through (not Before now), but no time is left.
	raw = mint(t, key("rsa1"), claims(is.URL(), map[string]any{"exp": now.Unix()}))
	_, err = f.Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EAuth, "token refused: expired at 2026-05-04T12:00:00Z", raw)

	raw = mint(t, key("rsa1"), claims(is.URL(), map[string]any{"exp": nil}))
	_, err = f.Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EAuth, "token refused: no expiry (exp)", raw)
}

func TestExchangeNotYetValid(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	raw := mint(t, key("rsa1"), claims(is.URL(), map[string]any{"nbf": now.Add(time.Hour).Unix()}))
	_, err := newFed().Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EAuth, "token refused: not valid yet", raw)
}

func TestExchangeAudience(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	f := newFed()
	rule := shopRule(is.URL())

	raw := mint(t, key("rsa1"), claims(is.URL(), map[string]any{"aud": "sts.amazonaws.com"}))
	_, err := f.Exchange(context.Background(), raw, []Rule{rule})
	wantRefused(t, err, lifeboat.EAuth, `token refused: audience does not include "lifeboat"`, raw)

	other := rule
	other.Name, other.Audience = "other", "other-aud"
	_, err = f.Exchange(context.Background(), raw, []Rule{rule, other})
	wantRefused(t, err, lifeboat.EAuth, `token refused: audience does not include "lifeboat" or "other-aud"`, raw)

	// aud may be a list; any member will do.
	raw = mint(t, key("rsa1"), claims(is.URL(), map[string]any{"aud": []string{"x", testAudience}}))
	if m := mustExchange(t, f, raw, rule); m.Rule.Name != "shop" {
		t.Errorf("rule = %q, want shop", m.Rule.Name)
	}

	// A rule with another audience is skipped, not fatal.
	raw = mint(t, key("rsa1"), claims(is.URL(), nil))
	if m := mustExchange(t, f, raw, other, rule); m.Rule.Name != "shop" {
		t.Errorf("rule = %q, want shop (the rule whose audience matches)", m.Rule.Name)
	}
}

func TestExchangeUntrustedIssuer(t *testing.T) {
	trusted := newIssuer(t, key("rsa1"))
	stranger := newIssuer(t, key("rsa1"))
	raw := mint(t, key("rsa1"), claims(stranger.URL(), nil))
	_, err := newFed().Exchange(context.Background(), raw, []Rule{shopRule(trusted.URL())})
	wantRefused(t, err, lifeboat.EAuth, "token refused: issuer \""+stranger.URL()+"\" is not trusted by any rule", raw)
	if n := stranger.requests.Load(); n != 0 {
		t.Errorf("untrusted issuer got %d requests, want 0", n)
	}
	if n := trusted.requests.Load(); n != 0 {
		t.Errorf("trusted issuer got %d requests, want 0", n)
	}
}

func TestExchangeBadSignature(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	f := newFed()
	rule := shopRule(is.URL())
	// Signed by a key the issuer never published, under the published kid.
	raw := mint(t, key("evil"), claims(is.URL(), nil))
	_, err := f.Exchange(context.Background(), raw, []Rule{rule})
	wantRefused(t, err, lifeboat.EAuth, "token refused: signature does not verify with the issuer's keys", raw)

	// A genuine signature over other claims: the payload was swapped.
	good := strings.Split(mint(t, key("rsa1"), claims(is.URL(), map[string]any{"sub": "repo:acme/other:ref:refs/heads/main"})), ".")
	evil := strings.Split(mint(t, key("evil"), claims(is.URL(), nil)), ".")
	raw = good[0] + "." + evil[1] + "." + good[2]
	_, err = f.Exchange(context.Background(), raw, []Rule{rule})
	wantRefused(t, err, lifeboat.EAuth, "token refused: signature does not verify", raw)
}

func TestExchangeUnsigned(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	payload := claims(is.URL(), nil)
	for _, tc := range []struct {
		name, raw, reason string
	}{
		{"alg none", handMade(t, map[string]string{"alg": "none", "typ": "JWT"}, payload, ""), "token refused: unsigned (alg none)"},
		{"alg None", handMade(t, map[string]string{"alg": "None"}, payload, ""), "token refused: unsigned (alg none)"},
		{"alg none with signature", handMade(t, map[string]string{"alg": "none"}, payload, "c2ln"), "token refused: unsigned (alg none)"},
		{"no alg", handMade(t, map[string]string{"typ": "JWT"}, payload, "c2ln"), "token refused: unsigned (alg none)"},
		{"RS256 without signature", handMade(t, map[string]string{"alg": "RS256", "kid": "rsa1"}, payload, ""), "token refused: unsigned (empty signature)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newFed().Exchange(context.Background(), tc.raw, []Rule{shopRule(is.URL())})
			wantRefused(t, err, lifeboat.EAuth, tc.reason, tc.raw)
		})
	}
	if n := is.requests.Load(); n != 0 {
		t.Errorf("issuer got %d requests for unsigned tokens, want 0", n)
	}
}

func TestExchangeHMAC(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	pubDER, err := x509.MarshalPKIXPublicKey(key("rsa1").priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		secret []byte
	}{
		{"some secret", []byte("a shared secret of thirty-two bytes!")},
		// The classic confusion attack: HMAC keyed with the issuer's public key.
		{"public key as secret", pubDER},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: tc.secret},
				(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "rsa1"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := jwt.Signed(signer).Claims(claims(is.URL(), nil)).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			_, err = newFed().Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
			wantRefused(t, err, lifeboat.EAuth, `token refused: signing algorithm "HS256" is not accepted`, raw)
		})
	}
}

// TestVerifierRefusesHMAC checks the second line of defence: even past
// peek's algorithm check, go-oidc refuses an HMAC token.
func TestVerifierRefusesHMAC(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("a shared secret of thirty-two bytes!")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims(is.URL(), nil)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	f := newFed()
	rule := shopRule(is.URL())
	p, err := f.provider(context.Background(), is.URL())
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.verify(context.Background(), p, &rule, raw)
	wantRefused(t, err, lifeboat.EAuth, "token refused: signing algorithm is not accepted", raw)
}

func TestExchangeSubject(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	raw := mint(t, key("rsa1"), claims(is.URL(), map[string]any{"sub": "repo:acme/shop:ref:refs/heads/dev"}))
	_, err := newFed().Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EAuth, `token refused: no rule matches subject "repo:acme/shop:ref:refs/heads/dev"`, raw)
}

func TestExchangeClaims(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	f := newFed()
	rule := shopRule(is.URL())
	rule.Claims = map[string]string{"environment": "production", "repository": "acme/*"}
	for _, tc := range []struct {
		name   string
		over   map[string]any
		reason string // "" means accepted
	}{
		{"all present", nil, ""},
		{"wildcard claim", map[string]any{"repository": "acme/shop-api"}, ""},
		{"missing", map[string]any{"environment": nil}, `no rule matches subject "` + mainSubject + `" with its claims (rule "shop": claim "environment" is missing)`},
		{"different", map[string]any{"environment": "staging"}, `(rule "shop": claim "environment" does not match)`},
		{"empty", map[string]any{"environment": ""}, `(rule "shop": claim "environment" does not match)`},
		{"not a string", map[string]any{"environment": true}, `(rule "shop": claim "environment" is not a string)`},
		{"wildcard claim mismatch", map[string]any{"repository": "evil/shop"}, `claim "repository" does not match`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := mint(t, key("rsa1"), claims(is.URL(), tc.over))
			m, err := f.Exchange(context.Background(), raw, []Rule{rule})
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
				if m.Rule.Principal != "app:shop" {
					t.Errorf("principal = %q", m.Rule.Principal)
				}
				return
			}
			wantRefused(t, err, lifeboat.EAuth, tc.reason, raw)
		})
	}
}

func TestExchangeWildcards(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	f := newFed()
	for _, tc := range []struct {
		pattern, subject string
		match            bool
	}{
		{"repo:acme/shop:*", "repo:acme/shop:ref:refs/heads/main", true},
		{"repo:acme/shop:*", "repo:acme/shop:environment:production", true},
		{"repo:acme/shop:*", "repo:acme/shopping-evil:ref:refs/heads/main", false},
		{"repo:acme/shop:*", "repo:acme/shop", false},
		{"repo:acme/shop:ref:refs/heads/*", "repo:acme/shop:ref:refs/heads/release/1.2", true},
		{"repo:acme/shop:ref:refs/heads/*", "repo:acme/shop:ref:refs/tags/v1", false},
		{"repo:acme/*:environment:production", "repo:acme/shop:environment:production", true},
		{"repo:acme/*:environment:production", "repo:acme/shop:environment:staging", false},
		{"repo:acme/*:environment:production", "repo:evil/shop:environment:production", false},
		{"*:environment:production", "repo:acme/shop:environment:production", true},
		{"*:environment:production", "repo:acme/shop:environment:production-2", false},
	} {
		t.Run(tc.pattern+"~"+tc.subject, func(t *testing.T) {
			rule := shopRule(is.URL())
			rule.Subject = tc.pattern
			raw := mint(t, key("rsa1"), claims(is.URL(), map[string]any{"sub": tc.subject}))
			_, err := f.Exchange(context.Background(), raw, []Rule{rule})
			if tc.match && err != nil {
				t.Errorf("Exchange: %v, want a match", err)
			}
			if !tc.match {
				wantRefused(t, err, lifeboat.EAuth, "token refused: no rule matches subject", raw)
			}
		})
	}
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"abc", "ab", false},
		{"", "", true},
		{"a*", "a", true},
		{"a*", "abc", true},
		{"a*", "ba", false},
		{"*c", "abc", true},
		{"*c", "cb", false},
		{"a*c", "ac", true},
		{"a*c", "abbbc", true},
		{"a*c", "abcd", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"a*b*b", "ab", false},     // prefix and suffix must not overlap
		{"ab*ba", "aba", false},    // ditto
		{"*a*a*", "a", false},      // needs two a's
		{"*a*a*", "xaya", true},    // found in order
		{"a**b", "ab", true},       // adjacent stars are one star
		{"a?b", "axb", false},      // '?' is literal
		{"a?b", "a?b", true},       // ditto
		{"[a]", "a", false},        // brackets are literal
		{"a/*", "a/b/c", true},     // '*' crosses '/'
		{"x:*:z", "x:y:y:z", true}, // and ':'
	} {
		if got := matchPattern(tc.pattern, tc.s); got != tc.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestExchangeFirstRuleWins(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	elsewhere := shopRule("https://token.actions.githubusercontent.com")
	elsewhere.Name, elsewhere.Principal = "github", "app:github"
	narrow := shopRule(is.URL())
	narrow.Name, narrow.Principal = "narrow", "app:narrow"
	narrow.Subject = "repo:acme/shop:ref:refs/heads/dev"
	broad := shopRule(is.URL())
	broad.Name, broad.Principal = "broad", "app:broad"
	broad.Subject = "repo:acme/shop:*"
	exact := shopRule(is.URL())
	exact.Name, exact.Principal = "exact", "app:exact"

	raw := mint(t, key("rsa1"), claims(is.URL(), nil))
	f := newFed()
	if m := mustExchange(t, f, raw, elsewhere, narrow, broad, exact); m.Rule.Name != "broad" {
		t.Errorf("rule = %q, want broad (first match)", m.Rule.Name)
	}
	if m := mustExchange(t, f, raw, exact, broad); m.Rule.Name != "exact" {
		t.Errorf("rule = %q, want exact (first match)", m.Rule.Name)
	}
}

func TestExchangeKeyRotation(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	f := newFed()
	rule := shopRule(is.URL())
	mustExchange(t, f, mint(t, key("rsa1"), claims(is.URL(), nil)), rule)

	// go-oidc answers a key fetch's waiters before it stores the keys and
	// clears the fetch (v3.21.0, jwks.go keysFromRemote): for a moment
	// after a fetch, a new kid can meet the finished fetch's old keys, and
	// an old kid the old cache. Each check below waits that moment out.
	is.setKeys(key("rsa2"))
	fresh := mint(t, key("rsa2"), claims(is.URL(), nil))
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err = f.Exchange(context.Background(), fresh, []Rule{rule}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("a token signed with the new key: %v", err)
	}
	if n := is.jwksFetches.Load(); n < 2 {
		t.Errorf("key fetches = %d, want at least 2 (refetched on the new kid)", n)
	}
	if n := is.discoveries.Load(); n != 1 {
		t.Errorf("discoveries = %d, want 1", n)
	}

	// The retired key no longer verifies.
	raw := mint(t, key("rsa1"), claims(is.URL(), nil))
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err = f.Exchange(context.Background(), raw, []Rule{rule}); err != nil {
			break
		}
	}
	wantRefused(t, err, lifeboat.EAuth, "token refused: signature does not verify", raw)
}

func TestExchangeUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	raw := mint(t, key("rsa1"), claims(url, nil))
	_, err := newFed().Exchange(context.Background(), raw, []Rule{shopRule(url)})
	wantRefused(t, err, lifeboat.EUnavailable, "issuer "+url+" unavailable: discovery", raw)
}

func TestExchangeDiscoveryRetried(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	is.failDisco = 1
	f := newFed()
	raw := mint(t, key("rsa1"), claims(is.URL(), nil))
	_, err := f.Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EUnavailable, "issuer "+is.URL()+" unavailable: discovery: 500", raw)
	// The failure is not cached: the issuer is back, so is the exchange.
	mustExchange(t, f, raw, shopRule(is.URL()))
	if n := is.discoveries.Load(); n != 2 {
		t.Errorf("discoveries = %d, want 2", n)
	}
}

func TestExchangeDiscoveryIssuerMismatch(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	is.issuer = "https://evil.example"
	raw := mint(t, key("rsa1"), claims(is.URL(), nil))
	_, err := newFed().Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EUnavailable, `discovery document names issuer "https://evil.example"`, raw)
}

func TestExchangeKeysUnavailable(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	is.failJWKS = true
	raw := mint(t, key("rsa1"), claims(is.URL(), nil))
	_, err := newFed().Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EUnavailable, "issuer "+is.URL()+" unavailable: fetching signing keys", raw)
}

func TestExchangeOversized(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	raw := mint(t, key("rsa1"), claims(is.URL(), map[string]any{"pad": strings.Repeat("x", 16<<10)}))
	_, err := newFed().Exchange(context.Background(), raw, []Rule{shopRule(is.URL())})
	wantRefused(t, err, lifeboat.EAuth, "token refused: longer than 16 KiB", raw)
	if n := is.requests.Load(); n != 0 {
		t.Errorf("issuer got %d requests, want 0", n)
	}
}

func TestExchangeGarbage(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	good := strings.Split(mint(t, key("rsa1"), claims(is.URL(), nil)), ".")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, raw, reason string
	}{
		{"empty", "", "token refused: empty"},
		{"word", "garbage", "token refused: not a signed JWT"},
		{"two parts", good[0] + "." + good[1], "token refused: not a signed JWT"},
		{"five parts (JWE)", strings.Join([]string{good[0], good[1], good[2], "x", "y"}, "."), "token refused: not a signed JWT"},
		{"bad base64 header", "!!!." + good[1] + "." + good[2], "token refused: not a signed JWT (header)"},
		{"header not JSON", b64("alg") + "." + good[1] + "." + good[2], "token refused: not a signed JWT (header)"},
		{"bad base64 payload", good[0] + ".***." + good[2], "token refused: not a signed JWT (payload)"},
		{"payload not an object", good[0] + "." + b64(`["iss"]`) + "." + good[2], "token refused: not a signed JWT (payload)"},
		{"bearer prefix", "Bearer " + strings.Join(good, "."), "token refused: not a signed JWT (header)"},
		{"no iss", handMade(t, map[string]string{"alg": "RS256"}, map[string]any{"sub": "x"}, good[2]), "token refused: no issuer (iss)"},
		{"iss not a string", handMade(t, map[string]string{"alg": "RS256"}, map[string]any{"iss": 7}, good[2]), "token refused: issuer (iss) is not a non-empty string"},
		{"iss empty", handMade(t, map[string]string{"alg": "RS256"}, map[string]any{"iss": ""}, good[2]), "token refused: issuer (iss) is not a non-empty string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newFed().Exchange(context.Background(), tc.raw, []Rule{shopRule(is.URL())})
			wantRefused(t, err, lifeboat.EAuth, tc.reason, tc.raw)
		})
	}
	if n := is.requests.Load(); n != 0 {
		t.Errorf("issuer got %d requests for garbage, want 0", n)
	}
}

func TestExchangeInvalidRule(t *testing.T) {
	is := newIssuer(t, key("rsa1"))
	bad := shopRule(is.URL())
	bad.Name, bad.Subject = "open", "*"
	raw := mint(t, key("rsa1"), claims(is.URL(), nil))
	_, err := newFed().Exchange(context.Background(), raw, []Rule{shopRule(is.URL()), bad})
	wantRefused(t, err, lifeboat.EInvalid, `rule "open": subject "*" matches every subject`, raw)
}

func TestRuleValidate(t *testing.T) {
	ok := Rule{Name: "shop", Issuer: "https://token.actions.githubusercontent.com", Audience: "lifeboat",
		Subject: "repo:acme/shop:ref:refs/heads/*", Principal: "app:shop"}
	for _, tc := range []struct {
		name string
		edit func(r *Rule)
		want string // "" means valid
	}{
		{"ok", func(r *Rule) {}, ""},
		{"ok with claims and ttl", func(r *Rule) { r.Claims = map[string]string{"environment": "prod"}; r.TTL = MaxTTL }, ""},
		{"http localhost", func(r *Rule) { r.Issuer = "http://localhost:8080" }, ""},
		{"http 127.0.0.1", func(r *Rule) { r.Issuer = "http://127.0.0.1:1234/tenant" }, ""},
		{"http ::1", func(r *Rule) { r.Issuer = "http://[::1]:1234" }, ""},
		{"empty name", func(r *Rule) { r.Name = "" }, "rule (unnamed): name is empty"},
		{"blank name", func(r *Rule) { r.Name = "  " }, `rule "  ": name is empty`},
		{"empty issuer", func(r *Rule) { r.Issuer = "" }, `rule "shop": issuer is empty`},
		{"http issuer", func(r *Rule) { r.Issuer = "http://token.example.com" }, `rule "shop": issuer "http://token.example.com" must use https (http only on localhost)`},
		{"http lookalike", func(r *Rule) { r.Issuer = "http://127.0.0.1.evil.example" }, `must use https (http only on localhost)`},
		{"no scheme", func(r *Rule) { r.Issuer = "token.example.com" }, `rule "shop": issuer "token.example.com" has no host`},
		{"ftp issuer", func(r *Rule) { r.Issuer = "ftp://token.example.com" }, `issuer "ftp://token.example.com" must use https`},
		{"issuer with query", func(r *Rule) { r.Issuer = "https://token.example.com?x=1" }, "must not have a query or fragment"},
		{"issuer with user", func(r *Rule) { r.Issuer = "https://u:p@token.example.com" }, "must not contain user information"},
		{"empty audience", func(r *Rule) { r.Audience = "" }, `rule "shop": audience is empty`},
		{"empty subject", func(r *Rule) { r.Subject = "" }, `rule "shop": subject is empty`},
		{"subject star", func(r *Rule) { r.Subject = "*" }, `rule "shop": subject "*" matches every subject`},
		{"subject stars", func(r *Rule) { r.Subject = "***" }, `rule "shop": subject "***" matches every subject`},
		{"empty claim name", func(r *Rule) { r.Claims = map[string]string{"": "x"} }, `rule "shop": claims has an empty claim name`},
		{"empty principal", func(r *Rule) { r.Principal = "" }, `rule "shop": principal is empty`},
		{"negative ttl", func(r *Rule) { r.TTL = -time.Second }, `rule "shop": ttl -1s is negative`},
		{"long ttl", func(r *Rule) { r.TTL = MaxTTL + time.Second }, `rule "shop": ttl 1h0m1s is longer than the maximum 1h0m0s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			err := r.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tc.want)
			}
			if lifeboat.ErrorCode(err) != lifeboat.EInvalid {
				t.Errorf("code = %s, want %s", lifeboat.ErrorCode(err), lifeboat.EInvalid)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Validate = %q, want one line", err)
			}
		})
	}
}

// FuzzPeek feeds hostile bytes to the only code that reads an untrusted
// token before its signature is checked.
func FuzzPeek(f *testing.F) {
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL3gifQ.c2ln")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL3gifQ.")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := peek(raw)
		if err != nil {
			if lifeboat.ErrorCode(err) != lifeboat.EAuth {
				t.Fatalf("code = %s, want auth", lifeboat.ErrorCode(err))
			}
			if len(raw) >= 8 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error repeats the token: %v", err)
			}
			return
		}
		if u.iss == "" || !slices.Contains(signingAlgs, u.alg) || len(raw) > maxTokenLen {
			t.Fatalf("peek(%q) accepted alg %q iss %q", raw, u.alg, u.iss)
		}
	})
}
