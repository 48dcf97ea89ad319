package federation

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// maxTokenLen bounds the raw token before any parsing: real ID tokens are a
// few KiB, and the bound keeps base64 and JSON work on hostile input small.
const maxTokenLen = 16 << 10

// signingAlgs are the algorithms a token may be signed with. All are
// asymmetric: HS256 would let anyone holding the issuer's public key mint
// tokens, and "none" is no signature at all.
var signingAlgs = []string{"RS256", "ES256", "PS256", "EdDSA"}

// unverified is what Exchange reads from a token before its signature is
// checked. It picks the issuer's keys and nothing else is trusted.
type unverified struct {
	alg string
	iss string
}

// peek splits a compact JWS and decodes its header and payload without
// verifying anything. It refuses tokens that are not signed JWTs, that are
// unsigned, or that use an algorithm outside signingAlgs.
func peek(raw string) (unverified, error) {
	var u unverified
	if raw == "" {
		return u, refused(nil, "empty")
	}
	if len(raw) > maxTokenLen {
		return u, refused(nil, "longer than %d KiB", maxTokenLen>>10)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return u, refused(nil, "not a signed JWT")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return u, refused(nil, "not a signed JWT (header)")
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return u, refused(nil, "not a signed JWT (payload)")
	}
	u.alg = header.Alg
	if strings.EqualFold(u.alg, "none") || u.alg == "" {
		return u, refused(nil, "unsigned (alg none)")
	}
	if parts[2] == "" {
		return u, refused(nil, "unsigned (empty signature)")
	}
	if !slices.Contains(signingAlgs, u.alg) {
		return u, refused(nil, "signing algorithm %s is not accepted (want one of %s)",
			quote(u.alg), strings.Join(signingAlgs, ", "))
	}
	if len(claims.Iss) == 0 || string(claims.Iss) == "null" {
		return u, refused(nil, "no issuer (iss)")
	}
	if err := json.Unmarshal(claims.Iss, &u.iss); err != nil || u.iss == "" {
		return u, refused(nil, "issuer (iss) is not a non-empty string")
	}
	return u, nil
}

// decodeSegment decodes one base64url JWS segment holding a JSON object.
func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// refused builds the EAuth error for a token that is turned away. The
// message says why; it must never include the raw token or its signature.
// cause is kept for errors.Is/As but not shown.
func refused(cause error, format string, args ...any) error {
	return &lifeboat.Error{
		Code:    lifeboat.EAuth,
		Message: "token refused: " + fmt.Sprintf(format, args...),
		Err:     cause,
	}
}

// unavailable builds the EUnavailable error for an issuer that cannot be
// reached or whose discovery document or keys are unusable.
func unavailable(issuer string, cause error, what string) *lifeboat.Error {
	msg := "issuer " + issuer + " unavailable: " + what
	if cause != nil {
		msg += ": " + clip(oneLine(cause.Error()), 300)
	}
	return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: msg, Err: cause}
}

// quote quotes an untrusted string for a one-line message, clipped so that a
// hostile claim cannot flood logs.
func quote(s string) string {
	return fmt.Sprintf("%q", clip(s, 200))
}

// clip shortens s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// oneLine folds s onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
