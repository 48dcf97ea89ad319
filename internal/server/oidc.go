package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/oauth2"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/federation"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Browser sign-in for people: the OIDC authorization-code flow with PKCE.
// The server is the OAuth client registered with the identity provider
// (its secret stays on the server). A sign-in starts here (state, nonce
// and PKCE verifier kept in the catalog), the person's browser goes to the
// issuer, the issuer sends it back to the redirect URI with a code, and
// whoever holds the redirect (the CLI's loopback listener, later the
// dashboard) finishes here with state and code. The ID token is verified
// (audience: the client; nonce) and mapped to a user by a trust rule for
// that exact subject, like `login --id-token`.

// OIDCConfig is the server's OAuth client at one OIDC issuer.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string // "" for a public client (PKCE only)
	// RedirectURLs are the redirect URIs allowed besides loopback ones
	// (http://127.0.0.1:PORT/oidc/callback, any port: RFC 8252), e.g. the
	// dashboard's.
	RedirectURLs []string
}

// OIDCStartRequest starts a browser sign-in.
type OIDCStartRequest struct {
	RedirectURI string `json:"redirectUri"`
}

// OIDCStart is where to send the browser.
type OIDCStart struct {
	AuthURL   string    `json:"authUrl"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// OIDCFinishRequest finishes a browser sign-in with what the issuer sent
// back to the redirect URI.
type OIDCFinishRequest struct {
	State string `json:"state"`
	Code  string `json:"code"`
}

// oidcLogin is a sign-in in progress, kept in the catalog by its state.
type oidcLogin struct {
	Nonce       string `json:"nonce"`
	Verifier    string `json:"verifier"`
	RedirectURI string `json:"redirectUri"`
}

// oidcLoginTTL is how long a person has to sign in at the issuer.
const oidcLoginTTL = 10 * time.Minute

// loopbackCallback is the path of a native client's loopback redirect.
const loopbackCallback = "/oidc/callback"

func (s *Server) oidcClient() (federation.Client, error) {
	o := s.cfg.OIDC
	if o == nil || o.Issuer == "" {
		return federation.Client{}, lifeboat.Errorf(lifeboat.ENotFound, "browser sign-in is not configured on this server (serve --oidc-issuer URL --oidc-client-id ID)")
	}
	return federation.Client{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret}, nil
}

// allowedRedirect: a loopback http URI on /oidc/callback (any port), or
// one the configuration names exactly.
func (s *Server) allowedRedirect(raw string) bool {
	if slices.Contains(s.cfg.OIDC.RedirectURLs, raw) {
		return true
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Path != loopbackCallback || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return false
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	return (host == "localhost" || (ip != nil && ip.IsLoopback())) && u.Port() != ""
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// startOIDC: POST /api/v1/sign-in/oidc/start (public).
func (s *Server) startOIDC(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	ctx := r.Context()
	c, err := s.oidcClient()
	if err != nil {
		return err
	}
	var req OIDCStartRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if !s.allowedRedirect(req.RedirectURI) {
		return lifeboat.Errorf(lifeboat.EInvalid, "sign-in: redirectUri %q is not allowed: want http://127.0.0.1:PORT%s or one given to serve --oidc-redirect-url", clipText(req.RedirectURI, 200), loopbackCallback)
	}
	src := sourceAddr(r)
	if ok, wait, err := s.signIns.allow(r.Context(), s.now(), "addr:"+src); err != nil {
		return err
	} else if !ok {
		return lifeboat.Errorf(lifeboat.ERateLimited, "sign-in: too many failed attempts from this address; try again in %v", wait.Round(time.Second))
	}
	l := oidcLogin{Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), RedirectURI: req.RedirectURI}
	state := randomToken()
	authURL, err := s.fed.AuthURL(ctx, c, l.RedirectURI, state, l.Nonce, l.Verifier)
	if err != nil {
		return err
	}
	doc, _ := json.Marshal(l)
	exp := s.now().Add(oidcLoginTTL)
	if err := s.db.Update(ctx, func(tx *catalog.Tx) error { return tx.PutOIDCLogin(ctx, state, doc, exp) }); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, OIDCStart{AuthURL: authURL, State: state, ExpiresAt: exp})
}

// finishOIDC: POST /api/v1/sign-in/oidc/finish (public). Rate limited and
// audited like a password sign-in; the code and tokens are never logged.
func (s *Server) finishOIDC(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	ctx := r.Context()
	c, err := s.oidcClient()
	if err != nil {
		return err
	}
	var req OIDCFinishRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.State == "" || req.Code == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "sign-in: state and code are required")
	}
	src := sourceAddr(r)
	key := "addr:" + src
	if ok, wait, err := s.signIns.allow(r.Context(), s.now(), key); err != nil {
		return err
	} else if !ok {
		s.auditSignIn(ctx, "external", "", "denied", map[string]string{"source": src, "reason": "rate limited", "via": "oidc"})
		return lifeboat.Errorf(lifeboat.ERateLimited, "sign-in: too many failed attempts from this address; try again in %v", wait.Round(time.Second))
	}
	fail := func(err error) error {
		if code := lifeboat.ErrorCode(err); code == lifeboat.EAuth || code == lifeboat.ENotFound {
			s.signIns.fail(r.Context(), s.now(), key)
		}
		s.auditSignIn(ctx, "external", "", "denied", map[string]string{"source": src, "reason": err.Error(), "via": "oidc"})
		return err
	}
	var l oidcLogin
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		doc, err := tx.TakeOIDCLogin(ctx, req.State)
		if err == catalog.ErrNotFound {
			return lifeboat.Errorf(lifeboat.EAuth, "sign-in: unknown, used or expired state (a sign-in lasts %v; start again)", lifeboat.Duration(oidcLoginTTL))
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(doc, &l)
	})
	if err != nil {
		return fail(err)
	}
	raw, err := s.fed.Redeem(ctx, c, l.RedirectURI, req.Code, l.Verifier, l.Nonce)
	if err != nil {
		return fail(err)
	}
	m, err := s.matchTrust(ctx, raw)
	if err != nil {
		return fail(err)
	}
	var out TokenCreated
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		who, err := tx.GetPrincipal(ctx, m.Rule.Principal)
		if err != nil || who.Kind != lifeboat.KindUser || m.Subject != m.Rule.Subject {
			return lifeboat.Errorf(lifeboat.EAuth, "sign-in refused: no trust rule maps subject %q of %s to a user (lifeboat trust add NAME --issuer %s --audience %s --subject SUBJECT --principal USER)", clipText(m.Subject, 200), c.Issuer, c.Issuer, c.ClientID)
		}
		// The person has just signed in at the issuer: a session as long
		// as a password sign-in's, whatever the ID token's own expiry.
		tok, info, err := tx.CreateToken(ctx, who.Name, defaultSessionTTL)
		if err != nil {
			return err
		}
		out = TokenCreated{Token: tok, Info: info}
		return tx.Audit(ctx, who.Name, "session.create", who.Name, "ok", map[string]string{"source": src, "token": info.ID, "via": "oidc", "issuer": c.Issuer, "subject": m.Subject, "rule": m.Rule.Name})
	})
	if err != nil {
		if lifeboat.ErrorCode(err) == lifeboat.EAuth {
			return fail(err)
		}
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

// clipText shortens an untrusted string for a message.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
