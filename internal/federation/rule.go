package federation

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// DefaultTTL is the lifetime of a Lifeboat token issued through a rule that
// sets no TTL.
const DefaultTTL = 15 * time.Minute

// MaxTTL is the longest lifetime a rule may grant.
const MaxTTL = time.Hour

// Rule maps external OIDC tokens to a Lifeboat service identity.
type Rule struct {
	Name      string            `json:"name" yaml:"name"`
	Issuer    string            `json:"issuer" yaml:"issuer"`                     // https URL (http allowed only for 127.0.0.1/localhost/::1 — tests)
	Audience  string            `json:"audience" yaml:"audience"`                 // required; the token's aud must contain it
	Subject   string            `json:"subject" yaml:"subject"`                   // pattern for the sub claim: exact, or with '*' wildcards matching any run of characters; required
	Claims    map[string]string `json:"claims,omitempty" yaml:"claims,omitempty"` // other claims that must be present and equal (string claims; same '*' patterns)
	Principal string            `json:"principal" yaml:"principal"`               // the service identity granted, e.g. "app:shop"
	TTL       time.Duration     `json:"ttl,omitempty" yaml:"ttl,omitempty"`       // lifetime of the Lifeboat token; 0 = DefaultTTL; at most MaxTTL
}

// Validate reports the first problem with r as a one-line EInvalid error
// naming the rule and the field.
func (r *Rule) Validate() error {
	name := "rule " + quote(r.Name)
	if r.Name == "" {
		name = "rule (unnamed)"
	}
	invalid := func(format string, args ...any) error {
		return lifeboat.Errorf(lifeboat.EInvalid, name+": "+format, args...)
	}
	if strings.TrimSpace(r.Name) == "" {
		return invalid("name is empty")
	}
	if r.Issuer == "" {
		return invalid("issuer is empty")
	}
	if why := checkIssuer(r.Issuer); why != "" {
		return invalid("issuer %s %s", quote(r.Issuer), why)
	}
	if r.Audience == "" {
		return invalid("audience is empty")
	}
	if r.Subject == "" {
		return invalid("subject is empty")
	}
	if strings.Trim(r.Subject, "*") == "" {
		return invalid("subject %s matches every subject; name the repository, branch or workload", quote(r.Subject))
	}
	for k := range r.Claims {
		if k == "" {
			return invalid("claims has an empty claim name")
		}
	}
	if r.Principal == "" {
		return invalid("principal is empty")
	}
	if r.TTL < 0 {
		return invalid("ttl %s is negative", r.TTL)
	}
	if r.TTL > MaxTTL {
		return invalid("ttl %s is longer than the maximum %s", r.TTL, MaxTTL)
	}
	return nil
}

// ttl is the lifetime the rule grants before capping by the token's expiry.
func (r *Rule) ttl() time.Duration {
	if r.TTL == 0 {
		return DefaultTTL
	}
	return r.TTL
}

// checkIssuer returns why issuer is not an acceptable issuer URL, or "".
// Plain http is allowed only on loopback so that tests can run an issuer
// without TLS; anything else would let a network attacker swap the keys.
func checkIssuer(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return "is not a URL"
	}
	if u.Host == "" || u.Opaque != "" {
		return "has no host"
	}
	if u.User != nil {
		return "must not contain user information"
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "must not have a query or fragment"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		switch u.Hostname() {
		case "127.0.0.1", "localhost", "::1":
			return ""
		}
		return "must use https (http only on localhost)"
	}
	return "must use https"
}

// matchPattern reports whether s matches pattern, where each '*' matches any
// run of characters (including none, and including ':' and '/') and every
// other character matches itself.
func matchPattern(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	// The middle parts must appear in order between the prefix and suffix;
	// taking the leftmost occurrence of each is optimal for '*'-only globs.
	mid := s[len(first) : len(s)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(mid, p)
		if i < 0 {
			return false
		}
		mid = mid[i+len(p):]
	}
	return true
}

// claimsMismatch returns why claims fail r's claim patterns, or "".
// Only string claims can match; a number or boolean never does.
func (r *Rule) claimsMismatch(claims map[string]any) string {
	// Check in a stable order so the reason is the same on every call.
	for _, k := range slices.Sorted(maps.Keys(r.Claims)) {
		v, ok := claims[k]
		if !ok {
			return "claim " + quote(k) + " is missing"
		}
		s, ok := v.(string)
		if !ok {
			return "claim " + quote(k) + " is not a string"
		}
		if !matchPattern(r.Claims[k], s) {
			return "claim " + quote(k) + " does not match"
		}
	}
	return ""
}
