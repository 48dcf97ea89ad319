// Package oidctest serves a real OpenID Connect issuer for tests: a
// discovery document, a JSON Web Key Set, an authorization endpoint that
// signs one person in at once (no login page) and a token endpoint that
// checks the client, the redirect URI and the PKCE verifier before it
// issues an RS256-signed ID token carrying the nonce. Nothing is stubbed:
// clients talk to it over HTTP like to any issuer.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a running test issuer.
type Issuer struct {
	URL          string
	ClientID     string
	ClientSecret string
	// Subject is who signs in at the authorization endpoint.
	Subject string

	srv    *httptest.Server
	signer jose.Signer
	key    *rsa.PrivateKey
	mu     sync.Mutex
	codes  map[string]grant
	tamper func(claims map[string]any)
	// authorized counts authorization requests; redeemed, codes traded.
	authorized, redeemed int
}

// SetTamper makes the token endpoint change an ID token's claims before it
// is signed (nil: no more).
func (is *Issuer) SetTamper(f func(claims map[string]any)) {
	is.mu.Lock()
	is.tamper = f
	is.mu.Unlock()
}

// Counts returns how many authorization requests were made and how many
// codes were traded for tokens.
func (is *Issuer) Counts() (authorized, redeemed int) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.authorized, is.redeemed
}

type grant struct {
	challenge, redirect, nonce, client string
}

// Start serves an issuer until the test ends.
func Start(t testing.TB, clientID, clientSecret, subject string) *Issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	is := &Issuer{ClientID: clientID, ClientSecret: clientSecret, Subject: subject, signer: signer, key: key, codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/jwks",
			"authorization_endpoint": is.URL + "/authorize", "token_endpoint": is.URL + "/token",
			"response_types_supported": []string{"code"}, "code_challenge_methods_supported": []string{"S256"},
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", is.authorize)
	mux.HandleFunc("POST /token", is.token)
	is.srv = httptest.NewUnstartedServer(mux)
	is.URL = "http://" + is.srv.Listener.Addr().String()
	is.srv.Start()
	t.Cleanup(is.srv.Close)
	return is
}

func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("client_id") != is.ClientID || q.Get("response_type") != "code" || redirect.Scheme == "" {
		http.Error(w, "invalid_request: client_id, response_type=code and redirect_uri are required", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "invalid_request: PKCE with S256 is required", http.StatusBadRequest)
		return
	}
	b := make([]byte, 16)
	rand.Read(b)
	code := base64.RawURLEncoding.EncodeToString(b)
	is.mu.Lock()
	is.authorized++
	is.codes[code] = grant{challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), nonce: q.Get("nonce"), client: q.Get("client_id")}
	is.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func tokenError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, "invalid_request", "bad form")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != is.ClientID || secret != is.ClientSecret {
		tokenError(w, "invalid_client", "unknown client or wrong secret")
		return
	}
	code := r.PostForm.Get("code")
	is.mu.Lock()
	g, ok := is.codes[code]
	delete(is.codes, code) // one use
	is.mu.Unlock()
	if !ok || r.PostForm.Get("grant_type") != "authorization_code" {
		tokenError(w, "invalid_grant", "unknown or used code")
		return
	}
	if r.PostForm.Get("redirect_uri") != g.redirect {
		tokenError(w, "invalid_grant", "redirect_uri differs from the authorization request's")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		tokenError(w, "invalid_grant", "PKCE verifier does not match the challenge")
		return
	}
	claims := map[string]any{"iss": is.URL, "aud": g.client, "sub": is.Subject, "nonce": g.nonce,
		"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(), "email": is.Subject}
	is.mu.Lock()
	tamper := is.tamper
	is.mu.Unlock()
	if tamper != nil {
		tamper(claims)
	}
	raw, err := jwt.Signed(is.signer).Claims(claims).Serialize()
	if err != nil {
		tokenError(w, "server_error", err.Error())
		return
	}
	is.mu.Lock()
	is.redeemed++
	is.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + code, "token_type": "Bearer", "expires_in": 300, "id_token": raw})
}
