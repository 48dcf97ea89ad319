package main_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
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
