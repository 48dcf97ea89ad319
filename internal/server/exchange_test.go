package server

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// oidcIssuer is a real OIDC issuer for tests: discovery, a JWKS endpoint
// and RS256-signed ID tokens.
type oidcIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &oidcIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"}, "response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// token signs claims (iss and a 10-minute exp added unless given) with key.
func (is *oidcIssuer) token(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	if _, ok := claims["iss"]; !ok {
		claims["iss"] = is.srv.URL
	}
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = time.Now().Add(10 * time.Minute).Unix()
	}
	claims["iat"] = time.Now().Add(-time.Minute).Unix()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestTokenExchange: a CI job's OIDC token, from a real issuer served by
// the test, is exchanged for a short-lived token of the app's identity,
// which backs the app up and nothing else; expired, wrong-audience,
// wrong-issuer, badly signed and other-branch tokens are refused with a
// reason, audited, and never echoed.
func TestTokenExchange(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	doc := f.doc()
	doc.Apps = append(doc.Apps, lifeboat.App{Name: "blog", Components: []lifeboat.Component{{Name: "data", Kind: "files", Path: f.dataDir}}})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	is := newOIDCIssuer(t)
	rule := TrustRule{Name: "shop-main", Issuer: is.srv.URL, Audience: "lifeboat", Subject: "repo:acme/shop:ref:refs/heads/main",
		Claims: map[string]string{"event_name": "push"}, Principal: "app:shop", TTL: lifeboat.Duration(5 * time.Minute)}
	// Bad rules are refused.
	for _, bad := range []TrustRule{{Name: "x", Issuer: is.srv.URL, Audience: "lifeboat", Subject: "*", Principal: "app:shop"},
		{Name: "x", Issuer: is.srv.URL, Audience: "lifeboat", Subject: "repo:*", Principal: "admin"},
		{Name: "x", Issuer: "http://ci.example.com", Audience: "lifeboat", Subject: "repo:*", Principal: "app:shop"}} {
		if err := ts.do(t, "PUT", "/api/v1/trust-rules/x", bad, nil); codeOf(err) != lifeboat.EInvalid {
			t.Errorf("trust rule %+v: %v", bad, err)
		}
	}
	ts.must(t, "PUT", "/api/v1/trust-rules/shop-main", rule, nil)

	anon := api.New(ts.url, "")
	good := map[string]any{"aud": "lifeboat", "sub": "repo:acme/shop:ref:refs/heads/main", "event_name": "push"}
	var ex ExchangeResult
	if err := anon.Do(t.Context(), "POST", "/api/v1/token/exchange", ExchangeRequest{Token: is.token(t, is.key, good)}, &ex); err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if ex.Principal != "app:shop" || ex.Rule != "shop-main" || time.Until(ex.ExpiresAt) > 5*time.Minute || time.Until(ex.ExpiresAt) < 4*time.Minute {
		t.Errorf("exchanged: %+v", ex)
	}
	ci := api.New(ts.url, ex.Token)
	var j lifeboat.Job
	if err := ci.Do(t.Context(), "POST", "/api/v1/apps/shop/backups", BackupRequest{Reason: "pre-deploy"}, &j); err != nil {
		t.Fatalf("backup with the exchanged token: %v", err)
	}
	ts.waitJob(t, j.ID)
	if err := ci.Do(t.Context(), "POST", "/api/v1/apps/blog/backups", BackupRequest{}, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("the exchanged token backs up another app: %v", err)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	mod := func(k string, v any) map[string]any {
		c := map[string]any{}
		for a, b := range good {
			c[a] = b
		}
		c[k] = v
		return c
	}
	var refusedTokens []string
	for _, c := range []struct {
		name, token, reason string
	}{
		{"expired", is.token(t, is.key, mod("exp", time.Now().Add(-time.Minute).Unix())), "expired"},
		{"wrong audience", is.token(t, is.key, mod("aud", "someone-else")), "audience"},
		{"wrong issuer", is.token(t, is.key, mod("iss", "https://other-ci.example.com")), "not trusted"},
		{"badly signed", is.token(t, other, good), "signature"},
		{"other branch", is.token(t, is.key, mod("sub", "repo:acme/shop:ref:refs/heads/dev")), "no rule matches"},
		{"missing claim", is.token(t, is.key, mod("event_name", "pull_request")), "event_name"},
		{"unsigned", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", "unsigned"},
		{"garbage", "not a token", "not a signed JWT"},
	} {
		refusedTokens = append(refusedTokens, c.token)
		err := anon.Do(t.Context(), "POST", "/api/v1/token/exchange", ExchangeRequest{Token: c.token}, nil)
		if codeOf(err) != lifeboat.EAuth || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %v (want a refusal naming %q)", c.name, err, c.reason)
		}
		ts.signIns.reset() // eight refusals in a row: past the limiter's burst
	}
	audit := auditText(t, ts)
	if !strings.Contains(audit, `"action":"token.exchange","target":"app:shop","outcome":"ok"`) || !strings.Contains(audit, `"outcome":"denied","detail":{"reason":"token refused: expired`) {
		t.Errorf("exchanges are not in the audit trail")
	}
	for _, tok := range append(refusedTokens, is.token(t, is.key, good), ex.Token) {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if len(sig) > 10 && (strings.Contains(audit, sig) || strings.Contains(ts.logs.String(), sig)) {
			t.Errorf("a token's signature is in the audit trail or the logs")
		}
	}
	// Rules are managed by access.manage only.
	var rules struct{ Items []TrustRule }
	ts.must(t, "GET", "/api/v1/trust-rules", nil, &rules)
	if len(rules.Items) != 1 || rules.Items[0].TTL != lifeboat.Duration(5*time.Minute) {
		t.Errorf("trust rules: %+v", rules.Items)
	}
	if err := ci.Do(t.Context(), "PUT", "/api/v1/trust-rules/evil", rule, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("the app's identity writes a trust rule: %v", err)
	}
	ts.must(t, "DELETE", "/api/v1/trust-rules/shop-main", nil, nil)
	if err := anon.Do(t.Context(), "POST", "/api/v1/token/exchange", ExchangeRequest{Token: is.token(t, is.key, good)}, nil); codeOf(err) != lifeboat.EAuth {
		t.Errorf("exchange after the rule went: %v", err)
	}
}

// TestOIDCSignIn: a person signs in with an ID token from their identity
// provider (a real issuer served by the test): a trust rule maps that
// person's exact subject to their user; a pattern for a user is refused.
func TestOIDCSignIn(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	is := newOIDCIssuer(t)
	ts.must(t, "PUT", "/api/v1/principals/ann", PrincipalSpec{Kind: "user"}, nil)
	bad := TrustRule{Name: "people", Issuer: is.srv.URL, Audience: "lifeboat-people", Subject: "*@example.com", Principal: "ann"}
	if err := ts.do(t, "PUT", "/api/v1/trust-rules/people", bad, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "exact subject") {
		t.Errorf("a subject pattern for a user: %v", err)
	}
	rule := TrustRule{Name: "ann-sso", Issuer: is.srv.URL, Audience: "lifeboat-people", Subject: "ann@example.com", Principal: "ann", TTL: lifeboat.Duration(time.Hour)}
	ts.must(t, "PUT", "/api/v1/trust-rules/ann-sso", rule, nil)
	anon := api.New(ts.url, "")
	var ex ExchangeResult
	if err := anon.Do(t.Context(), "POST", "/api/v1/token/exchange", ExchangeRequest{Token: is.token(t, is.key, map[string]any{"aud": "lifeboat-people", "sub": "ann@example.com"})}, &ex); err != nil {
		t.Fatalf("ann's ID token: %v", err)
	}
	var me lifeboat.Principal
	if err := api.New(ts.url, ex.Token).Do(t.Context(), "GET", "/api/v1/whoami", nil, &me); err != nil || me.Name != "ann" || me.Kind != lifeboat.KindUser {
		t.Errorf("signed in as %+v (%v)", me, err)
	}
	// Someone else's ID token from the same provider is not ann.
	if err := anon.Do(t.Context(), "POST", "/api/v1/token/exchange", ExchangeRequest{Token: is.token(t, is.key, map[string]any{"aud": "lifeboat-people", "sub": "mallory@example.com"})}, nil); codeOf(err) != lifeboat.EAuth {
		t.Errorf("mallory's ID token: %v", err)
	}
}
