package main_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/lifeboat-vault/lifeboat/internal/federation/oidctest"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// TestOIDCLoginCLI: a person signs in through the binary with an ID token
// from an identity provider (a real issuer served by the test), under a
// trust rule made with `lifeboat trust add`.
func TestOIDCLoginCLI(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var issuer string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": issuer + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	idp := httptest.NewServer(mux)
	defer idp.Close()
	issuer = idp.URL
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	idToken, err := jwt.Signed(signer).Claims(map[string]any{"iss": issuer, "aud": "lifeboat", "sub": "ann@example.com", "exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix()}).Serialize()
	if err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	os.MkdirAll(home, 0o700)
	st := startStory(t, home, filepath.Join(tmp, "data"))
	defer st.srv.stop(t)
	st.cli(0, "user", "add", "ann")
	st.cli(0, "trust", "add", "ann-sso", "--issuer", issuer, "--audience", "lifeboat", "--subject", "ann@example.com", "--principal", "ann")
	annHome := filepath.Join(tmp, "ann")
	os.MkdirAll(annHome, 0o700)
	env := []string{"HOME=" + annHome}
	if r := lifeboatIn(t, env, idToken+"\n", "login", "--server", "http://"+st.addr, "--id-token"); r.code != 0 || !strings.Contains(r.stdout, "as ann") {
		t.Fatalf("login --id-token: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := lifeboatIn(t, env, "not.a.token\n", "login", "--server", "http://"+st.addr, "--id-token"); r.code != 5 || strings.Contains(r.stderr, idToken) {
		t.Errorf("login with a bad ID token: %d %s", r.code, r.stderr)
	}
}

// TestOIDCBrowserLoginCLI: `lifeboat login --oidc` signs a person in
// through a browser (curl as $BROWSER, following the redirects like one)
// at a real issuer served by the test: the authorization-code flow with
// PKCE, the server as the OAuth client (its secret in a 0600 file), the
// CLI's loopback listener catching the redirect. A bad issuer URL stops
// serve; a server without the configuration says so.
func TestOIDCBrowserLoginCLI(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		testenv.Skip(t, "curl is not installed (scripts/test-services.sh installs it)")
	}
	idp := oidctest.Start(t, "lifeboat-cli", "the client secret 77", "ann@example.com")
	tmp := t.TempDir()
	secretFile := filepath.Join(tmp, "oidc-secret")
	if err := os.WriteFile(secretFile, []byte("the client secret 77\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(tmp, "home")
	os.MkdirAll(home, 0o700)
	st := startStory(t, home, filepath.Join(tmp, "data"), "--oidc-issuer", idp.URL, "--oidc-client-id", "lifeboat-cli", "--oidc-client-secret-file", secretFile)
	defer st.srv.stop(t)
	st.cli(0, "user", "add", "ann")
	st.cli(0, "trust", "add", "ann-web", "--issuer", idp.URL, "--audience", "lifeboat-cli", "--subject", "ann@example.com", "--principal", "ann")

	browser := filepath.Join(tmp, "browser.sh")
	page := filepath.Join(tmp, "page.html")
	os.WriteFile(browser, []byte("#!/bin/sh\n"+curl+" -fsSL -o "+page+".part \"$1\" 2>"+page+".err && mv "+page+".part "+page+"\n"), 0o755)
	annHome := filepath.Join(tmp, "ann")
	os.MkdirAll(annHome, 0o700)
	env := []string{"HOME=" + annHome, "PATH=" + os.Getenv("PATH"), "BROWSER=" + browser}
	r := lifeboat(t, env, "login", "--server", "http://"+st.addr, "--oidc")
	if r.code != 0 || !strings.Contains(r.stdout, "as ann") || !strings.Contains(r.stderr, idp.URL+"/authorize?") {
		t.Fatalf("login --oidc: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The browser was shown that it worked.
	var shown []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && shown == nil; time.Sleep(20 * time.Millisecond) {
		shown, _ = os.ReadFile(page)
	}
	if !strings.Contains(string(shown), "Signed in to Lifeboat") {
		errs, _ := os.ReadFile(page + ".err")
		t.Errorf("the browser's page: %q (%s)", shown, errs)
	}
	if a, n := idp.Counts(); a != 1 || n != 1 {
		t.Errorf("the issuer saw %d authorization requests and %d code exchanges, want 1 and 1", a, n)
	}
	// The saved session is ann's.
	if r := lifeboat(t, env, "access", "check", "read", "server"); r.code != 9 || !strings.Contains(r.stdout, "ann") {
		t.Errorf("ann's saved session: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := lifeboat(t, env, "login", "--server", "http://"+st.addr, "--oidc", "--user", "ann"); r.code != 2 {
		t.Errorf("two ways to sign in at once: exit %d", r.code)
	}
	audit := st.cli(0, "audit", "list", "--action", "session.create", "-o", "json").stdout
	if !strings.Contains(audit, `"via": "oidc"`) && !strings.Contains(audit, `"via":"oidc"`) {
		t.Errorf("the browser sign-in is not audited:\n%s", audit)
	}

	// Without the configuration, or with a bad issuer.
	other := startStory(t, filepath.Join(tmp, "home2"), filepath.Join(tmp, "data2"))
	defer other.srv.stop(t)
	if r := lifeboat(t, env, "login", "--server", "http://"+other.addr, "--oidc", "--no-browser"); r.code != 4 || !strings.Contains(r.stderr, "not configured") {
		t.Errorf("login --oidc on a server without it: exit %d %s", r.code, r.stderr)
	}
	if r := lifeboat(t, env, "serve", "--data-dir", filepath.Join(tmp, "data3"), "--oidc-issuer", "http://idp.example.com", "--oidc-client-id", "x"); r.code != 2 || !strings.Contains(r.stderr, "must use https") {
		t.Errorf("serve with an http issuer: exit %d %s", r.code, r.stderr)
	}
}
