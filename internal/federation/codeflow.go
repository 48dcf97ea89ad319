package federation

import (
	"context"
	"errors"
	"fmt"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Client is an OAuth 2.0 client registered with an OIDC issuer, for the
// authorization-code flow with PKCE (RFC 7636) that signs people in
// through their browser. ClientSecret is empty for a public client.
type Client struct {
	Issuer       string
	ClientID     string
	ClientSecret string
}

// Check reports a client that cannot work: an issuer URL that is not
// https (plain http only on loopback), or no client id.
func (c Client) Check() error {
	if why := checkIssuer(c.Issuer); why != "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "OIDC issuer %q %s", clip(c.Issuer, 200), why)
	}
	if c.ClientID == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "OIDC issuer %s: a client id is required", c.Issuer)
	}
	return nil
}

// Scopes asked for: an ID token and the claims that name the person.
var Scopes = []string{oidc.ScopeOpenID, "email", "profile"}

func (f *Federation) oauth(ctx context.Context, c Client, redirect string) (*oauth2.Config, *oidc.Provider, error) {
	p, err := f.provider(ctx, c.Issuer)
	if err != nil {
		return nil, nil, err
	}
	ep := p.Endpoint()
	if ep.AuthURL == "" || ep.TokenURL == "" {
		return nil, nil, unavailable(c.Issuer, nil, "discovery document names no authorization or token endpoint")
	}
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Endpoint: ep, RedirectURL: redirect, Scopes: Scopes}, p, nil
}

// AuthURL returns where to send the person's browser: the issuer's
// authorization endpoint, with state, nonce and the S256 challenge of
// verifier.
func (f *Federation) AuthURL(ctx context.Context, c Client, redirect, state, nonce, verifier string) (string, error) {
	conf, _, err := f.oauth(ctx, c, redirect)
	if err != nil {
		return "", err
	}
	return conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// Redeem trades the authorization code for tokens at the issuer's token
// endpoint (with the PKCE verifier and the same redirect URI), verifies
// the ID token (signature, issuer, audience = the client, expiry) and its
// nonce, and returns it raw. Refusals are EAuth and never contain the
// code or a token.
func (f *Federation) Redeem(ctx context.Context, c Client, redirect, code, verifier, nonce string) (string, error) {
	conf, p, err := f.oauth(ctx, c, redirect)
	if err != nil {
		return "", err
	}
	tok, err := conf.Exchange(oidc.ClientContext(ctx, f.client), code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			why := re.ErrorCode
			if why == "" {
				why = fmt.Sprintf("HTTP %d", re.Response.StatusCode)
			}
			if re.ErrorDescription != "" {
				why += ": " + oneLine(clip(re.ErrorDescription, 200))
			}
			return "", lifeboat.Errorf(lifeboat.EAuth, "sign-in refused by the identity provider %s: %s", c.Issuer, why)
		}
		return "", unavailable(c.Issuer, err, "token endpoint")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", lifeboat.Errorf(lifeboat.EAuth, "sign-in refused: the identity provider %s answered without an ID token", c.Issuer)
	}
	idt, err := f.verify(ctx, p, &Rule{Issuer: c.Issuer, Audience: c.ClientID}, raw)
	if errors.Is(err, errAudience) {
		return "", refused(nil, "its audience does not include the client %s", quote(c.ClientID))
	}
	if err != nil {
		return "", err
	}
	if idt.Nonce != nonce {
		return "", refused(nil, "its nonce does not match the sign-in's (a replayed token?)")
	}
	return raw, nil
}
