package catalog

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// TokenPrefix starts every API token, so that leaked tokens are easy to find.
const TokenPrefix = "lbt_"

// HashToken is how tokens are stored: SHA-256, hex. Tokens are 32 random
// bytes, so a plain hash is enough (no passphrase to stretch).
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// PutPrincipal creates a principal (or updates its admin flag).
func (t *Tx) PutPrincipal(ctx context.Context, p *lifeboat.Principal) error {
	_, err := t.exec(ctx, `INSERT INTO principals (name, kind, admin, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, admin = excluded.admin`, p.Name, p.Kind, b2i(p.Admin), ns(t.now))
	return err
}

// Principals counts principals.
func (t *Tx) CountPrincipals(ctx context.Context) (int, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM principals`).Scan(&n)
	return n, err
}

// TokenInfo describes a token (never the token itself).
type TokenInfo struct {
	ID         string     `json:"id"`
	Principal  string     `json:"principal"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
}

// CreateToken makes a new token for principal and returns it: the only time
// it is ever seen. ttl 0 means no expiry.
func (t *Tx) CreateToken(ctx context.Context, principal string, ttl time.Duration) (token string, info *TokenInfo, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	info = &TokenInfo{ID: NewID(t.now), Principal: principal, CreatedAt: t.now}
	var exp any
	if ttl > 0 {
		e := t.now.Add(ttl)
		info.ExpiresAt = &e
		exp = ns(e)
	}
	_, err = t.exec(ctx, `INSERT INTO tokens (id, principal, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		info.ID, principal, HashToken(token), ns(t.now), exp)
	if err != nil {
		return "", nil, err
	}
	return token, info, nil
}

// lastUsedEvery bounds how often a token's last use is written: reads stay
// read-only (on SQLite a write is an fsynced commit).
const lastUsedEvery = time.Minute

// Authenticate finds the principal of a token that is neither expired nor
// revoked, and records its use (at most once a minute). It returns
// ErrNotFound for any bad token.
func (d *DB) Authenticate(ctx context.Context, token string) (*lifeboat.Principal, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return nil, ErrNotFound
	}
	var p lifeboat.Principal
	var id string
	var touch bool
	err := d.View(ctx, func(t *Tx) error {
		var admin int
		var exp, rev, used sql.NullInt64
		err := t.queryRow(ctx, `SELECT t.id, p.name, p.kind, p.admin, t.expires_at, t.revoked_at, t.last_used_at FROM tokens t JOIN principals p ON p.name = t.principal WHERE t.hash = ?`,
			HashToken(token)).Scan(&id, &p.Name, &p.Kind, &admin, &exp, &rev, &used)
		if err != nil {
			return rowErr(err)
		}
		if rev.Valid || (exp.Valid && exp.Int64 <= ns(t.now)) {
			return ErrNotFound
		}
		p.Admin = admin == 1
		touch = !used.Valid || ns(t.now)-used.Int64 >= int64(lastUsedEvery)
		return t.resolve(ctx, &p)
	})
	if err != nil {
		return nil, err
	}
	if touch {
		err = d.Update(ctx, func(t *Tx) error {
			_, err := t.exec(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, ns(t.now), id)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return &p, nil
}

// PutOIDCLogin records a browser sign-in in progress, and forgets those
// that expired.
func (t *Tx) PutOIDCLogin(ctx context.Context, state string, doc []byte, expires time.Time) error {
	if _, err := t.exec(ctx, `DELETE FROM oidc_logins WHERE expires_at < ?`, ns(t.now)); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO oidc_logins (state, doc, expires_at) VALUES (?, ?, ?)`, state, string(doc), ns(expires))
	return err
}

// TakeOIDCLogin returns a browser sign-in in progress and forgets it (one
// use); ErrNotFound if there is none or it expired.
func (t *Tx) TakeOIDCLogin(ctx context.Context, state string) ([]byte, error) {
	var doc string
	var exp int64
	if err := t.queryRow(ctx, `SELECT doc, expires_at FROM oidc_logins WHERE state = ?`, state).Scan(&doc, &exp); err != nil {
		return nil, rowErr(err)
	}
	if err := t.execOne(ctx, `DELETE FROM oidc_logins WHERE state = ?`, state); err != nil {
		return nil, err
	}
	if fromNS(exp).Before(t.now) {
		return nil, ErrNotFound
	}
	return []byte(doc), nil
}

// RecentFailures returns, for the key with the most failed sign-ins since
// since, how many there were and the oldest of them.
func (t *Tx) RecentFailures(ctx context.Context, keys []string, since time.Time) (int, time.Time, error) {
	most, oldest := 0, time.Time{}
	for _, k := range keys {
		var n int
		var first sql.NullInt64
		if err := t.queryRow(ctx, `SELECT COUNT(*), MIN(at) FROM signin_failures WHERE key = ? AND at > ?`, k, ns(since)).Scan(&n, &first); err != nil {
			return 0, time.Time{}, err
		}
		if n > most {
			most, oldest = n, fromNS(first.Int64)
		}
	}
	return most, oldest, nil
}

// AddFailure records a failed sign-in under each key, and forgets those
// older than before.
func (t *Tx) AddFailure(ctx context.Context, keys []string, at, before time.Time) error {
	if _, err := t.exec(ctx, `DELETE FROM signin_failures WHERE at < ?`, ns(before)); err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := t.exec(ctx, `INSERT INTO signin_failures (key, at) VALUES (?, ?)`, k, ns(at)); err != nil {
			return err
		}
	}
	return nil
}

// ClearFailures forgets every failed sign-in (tests).
func (t *Tx) ClearFailures(ctx context.Context) error {
	_, err := t.exec(ctx, `DELETE FROM signin_failures`)
	return err
}
