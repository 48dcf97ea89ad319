package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/federation/oidctest"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// browse follows an authorization URL as a browser would, up to the
// redirect back to the client, and returns the code and state it carries.
func browse(t *testing.T, authURL string) (code, state string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorization endpoint: %s", resp.Status)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("code"), u.Query().Get("state")
}

// TestOIDCBrowserSignIn: the authorization-code flow with PKCE against a
// real issuer (served by the test): a person signs in and gets a session
// of the user a trust rule maps their subject to; a used or unknown
// state, a code stolen from another sign-in (PKCE), a token with a wrong
// nonce or audience, a subject no rule maps, and a redirect URI that is
// neither loopback nor configured are all refused, audited, and leak
// neither code nor token.
func TestOIDCBrowserSignIn(t *testing.T) {
	idp := oidctest.Start(t, "lifeboat-web", "client secret 123", "ann@example.com")
	ts := newTestServerCfg(t, testOpts{}, func(c *Config) {
		c.OIDC = &OIDCConfig{Issuer: idp.URL, ClientID: "lifeboat-web", ClientSecret: "client secret 123", RedirectURLs: []string{"https://lifeboat.example.com/signed-in"}}
	})
	ts.must(t, "PUT", "/api/v1/principals/ann", PrincipalSpec{Kind: "user"}, nil)
	ts.must(t, "PUT", "/api/v1/trust-rules/ann-sso", TrustRule{Issuer: idp.URL, Audience: "lifeboat-web", Subject: "ann@example.com", Principal: "ann"}, nil)
	anon := api.New(ts.url, "")
	const redirect = "http://127.0.0.1:45678/oidc/callback"
	start := func(redirect string) OIDCStart {
		t.Helper()
		var st OIDCStart
		if err := anon.Do(t.Context(), "POST", "/api/v1/sign-in/oidc/start", OIDCStartRequest{RedirectURI: redirect}, &st); err != nil {
			t.Fatalf("start: %v", err)
		}
		return st
	}
	finish := func(state, code string) (TokenCreated, error) {
		var tc TokenCreated
		err := anon.Do(t.Context(), "POST", "/api/v1/sign-in/oidc/finish", OIDCFinishRequest{State: state, Code: code}, &tc)
		return tc, err
	}

	for _, bad := range []string{"https://evil.example.com/oidc/callback", "http://127.0.0.1/oidc/callback", "http://127.0.0.1:9/other", "http://10.0.0.1:80/oidc/callback", "javascript:alert(1)"} {
		if err := anon.Do(t.Context(), "POST", "/api/v1/sign-in/oidc/start", OIDCStartRequest{RedirectURI: bad}, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("redirect %s: %v", bad, err)
		}
	}
	start("https://lifeboat.example.com/signed-in") // configured: allowed

	st := start(redirect)
	au, _ := url.Parse(st.AuthURL)
	q := au.Query()
	if !strings.HasPrefix(st.AuthURL, idp.URL+"/authorize?") || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") != st.State || q.Get("redirect_uri") != redirect || q.Get("client_id") != "lifeboat-web" {
		t.Fatalf("authorization URL: %s", st.AuthURL)
	}
	code, state := browse(t, st.AuthURL)
	if state != st.State {
		t.Fatalf("state came back as %q", state)
	}
	if _, err := finish("not-a-state", code); codeOf(err) != lifeboat.EAuth || !strings.Contains(err.Error(), "unknown, used or expired state") {
		t.Errorf("an unknown state: %v", err)
	}
	tc, err := finish(state, code)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	var who lifeboat.Principal
	if err := api.New(ts.url, tc.Token).Do(t.Context(), "GET", "/api/v1/whoami", nil, &who); err != nil || who.Name != "ann" {
		t.Fatalf("whoami after the browser sign-in: %+v %v", who, err)
	}
	if tc.Info.ExpiresAt == nil || tc.Info.ExpiresAt.Sub(ts.now()) < defaultSessionTTL-time.Minute {
		t.Errorf("session expiry: %+v", tc.Info)
	}
	if _, err := finish(state, code); codeOf(err) != lifeboat.EAuth {
		t.Errorf("the same state twice: %v", err)
	}

	// A code stolen from one sign-in, brought to another: its PKCE verifier
	// does not match, and the issuer refuses it.
	victim := start(redirect)
	stolen, _ := browse(t, victim.AuthURL)
	thief := start(redirect)
	if _, err := finish(thief.State, stolen); codeOf(err) != lifeboat.EAuth || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("a stolen code: %v", err)
	}

	ts.signIns.reset() // three refusals so far: room for the next ones

	refusedWith := func(tamper func(map[string]any), want string) {
		t.Helper()
		idp.SetTamper(tamper)
		defer idp.SetTamper(nil)
		st := start(redirect)
		code, state := browse(t, st.AuthURL)
		if _, err := finish(state, code); codeOf(err) != lifeboat.EAuth || !strings.Contains(err.Error(), want) {
			t.Errorf("want a refusal with %q: %v", want, err)
		}
	}
	refusedWith(func(c map[string]any) { c["nonce"] = "replayed" }, "nonce does not match")
	refusedWith(func(c map[string]any) { c["aud"] = "another-client" }, `audience does not include the client "lifeboat-web"`)
	refusedWith(func(c map[string]any) { c["sub"] = "bob@example.com" }, "no rule matches subject")

	// Refusals count against the address like failed password sign-ins.
	for range 2 {
		finish("guessed-state", "guessed-code")
	}
	if _, err := finish("guessed-state", "guessed-code"); codeOf(err) != lifeboat.ERateLimited {
		t.Errorf("the sixth refused sign-in from one address: %v", err)
	}

	// A server without the configuration says so.
	plain := newTestServer(t, testOpts{})
	if err := api.New(plain.url, "").Do(t.Context(), "POST", "/api/v1/sign-in/oidc/start", OIDCStartRequest{RedirectURI: redirect}, nil); codeOf(err) != lifeboat.ENotFound || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("start on a server without OIDC: %v", err)
	}

	audit := auditText(t, ts)
	if !strings.Contains(audit, `"actor":"ann","action":"session.create","target":"ann","outcome":"ok"`) || !strings.Contains(audit, `"via":"oidc"`) {
		t.Error("the browser sign-in is not audited")
	}
	if n := strings.Count(audit, `"action":"session.create","target":"","outcome":"denied"`); n < 5 {
		t.Errorf("%d refused browser sign-ins audited, want at least 5", n)
	}
	for _, secret := range []string{code, stolen, tc.Token, "client secret 123"} {
		if strings.Contains(audit, secret) || strings.Contains(ts.logs.String(), secret) {
			t.Errorf("a code, token or the client secret is in the audit trail or the logs")
		}
	}
}
