package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/lifeboat-vault/lifeboat/internal/access"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// signedIn marks routes any authenticated principal may call (whoami,
// roles, its own tokens and password): no permission, but a token.
const signedIn = "signed-in"

// anyScope are the list routes: a principal holding the permission on some
// scope is let in, and sees only the items its scopes cover.
var anyScope = map[string]bool{
	"GET /api/v1/status": true,
	"GET /metrics":       true,
	"GET /api/v1/vaults": true,
	"GET /api/v1/apps":   true,
	"GET /api/v1/jobs":   true,
}

// target resolves what a request acts on, for the access decision: the app
// (with its vault and labels), the job's app, the vault, or the server.
func (s *Server) target(ctx context.Context, r *http.Request) (access.Target, error) {
	if app := r.PathValue("app"); app != "" {
		return s.appTarget(ctx, app)
	}
	if id := r.PathValue("job"); id != "" {
		var j *lifeboat.Job
		err := s.db.View(ctx, func(tx *catalog.Tx) error {
			var err error
			j, err = tx.Job(ctx, id)
			return err
		})
		switch {
		case err == catalog.ErrNotFound:
			return access.Target{Vault: "?", App: "?"}, nil // only "*" covers it; the handler says 404
		case err != nil:
			return access.Target{}, err
		case j.App != "":
			t, err := s.appTarget(ctx, j.App)
			if t.Vault == "" {
				t.Vault = j.Vault
			}
			return t, err
		}
		return access.Target{Vault: j.Vault}, nil
	}
	if v := r.PathValue("vault"); v != "" {
		return access.Target{Vault: v}, nil
	}
	return access.Target{}, nil
}

// appTarget is app name as a target: with its vault and labels when it
// exists (retired apps too).
func (s *Server) appTarget(ctx context.Context, name string) (access.Target, error) {
	t := access.Target{App: name}
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		a, err := tx.App(ctx, name)
		if err == nil {
			t.Vault, t.Labels = a.Vault, a.Labels
			return nil
		}
		if err == catalog.ErrNotFound {
			return nil
		}
		return err
	})
	return t, err
}

// visible pages through fetch keeping what keep allows, until a page is
// full: a principal with scoped grants sees only what they cover, and the
// cursor still walks the whole list.
func visible[T any](pg catalog.Page, fetch func(catalog.Page) ([]T, error), key func(T) string, keep func(T) bool) (List[T], error) {
	lim := pg.Limit
	if lim == 0 {
		lim = 100
	}
	out := List[T]{Items: []T{}}
	after := pg.After
	for {
		items, err := fetch(catalog.Page{After: after, Limit: lim})
		if err != nil {
			return out, err
		}
		for _, it := range items {
			after = key(it)
			if keep(it) {
				out.Items = append(out.Items, it)
				if len(out.Items) == lim {
					out.Next = after
					return out, nil
				}
			}
		}
		if len(items) < lim {
			return out, nil
		}
	}
}

// readable returns a filter of the apps p may read (targets cached).
func (s *Server) readable(ctx context.Context, p *lifeboat.Principal) func(app, vault string) bool {
	cache := map[string]access.Target{}
	return func(app, vault string) bool {
		t := access.Target{Vault: vault}
		if app != "" {
			var ok bool
			if t, ok = cache[app]; !ok {
				t, _ = s.appTarget(ctx, app)
				cache[app] = t
			}
		}
		return access.Decide(p, access.Read, t).Allow
	}
}

// ---- passwords ----

// Password hashing: Argon2id with the parameters OWASP recommends for
// sign-in (19 MiB, 2 passes), in the PHC string format, so that stronger
// parameters can come later without invalidating stored hashes.
const (
	pwMemory  = 19 * 1024
	pwTime    = 2
	pwThreads = 1
	pwKeyLen  = 32
	// MinPasswordLength bounds passwords from below.
	MinPasswordLength = 12
)

func hashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, pwTime, pwMemory, pwThreads, pwKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, pwMemory, pwTime, pwThreads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkPassword compares pw with a stored hash in constant time.
func checkPassword(pw, stored string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<22 || t == 0 || t > 64 || p == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is compared against when the user does not exist, so that a
// sign-in takes as long for unknown names as for wrong passwords.
var dummyHash = sync.OnceValue(func() string {
	h, _ := hashPassword("lifeboat-no-such-user")
	return h
})

// ---- sign-in rate limit ----

// signInLimit allows a burst of failed sign-ins per name and per source
// address in a window, then one more each time the oldest leaves it (on
// average one per interval); a success does not reset the address. The
// failures are in the catalog, so several servers share one count.
type signInLimit struct {
	db       *catalog.DB
	burst    int
	interval time.Duration
}

func newSignInLimit(db *catalog.DB) *signInLimit {
	return &signInLimit{db: db, burst: 5, interval: 10 * time.Second}
}

func (l *signInLimit) window() time.Duration { return time.Duration(l.burst) * l.interval }

// allow reports whether another attempt under every key may go on now,
// and if not, how long to wait.
func (l *signInLimit) allow(ctx context.Context, now time.Time, keys ...string) (bool, time.Duration, error) {
	var n int
	var oldest time.Time
	err := l.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		n, oldest, err = tx.RecentFailures(ctx, keys, now.Add(-l.window()))
		return err
	})
	if err != nil || n < l.burst {
		return err == nil, 0, err
	}
	return false, max(oldest.Add(l.window()).Sub(now), time.Second), nil
}

// reset forgets every failure (tests).
func (l *signInLimit) reset() {
	l.db.Update(context.Background(), func(tx *catalog.Tx) error { return tx.ClearFailures(context.Background()) })
}

// fail records one failed attempt under every key.
func (l *signInLimit) fail(ctx context.Context, now time.Time, keys ...string) {
	l.db.Update(context.WithoutCancel(ctx), func(tx *catalog.Tx) error {
		return tx.AddFailure(ctx, keys, now, now.Add(-l.window()))
	})
}

func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authorize is the route's access decision: signed-in routes need a token
// only; list routes a grant of the permission on some scope; every other
// route a grant whose scope covers its target. A denial is audited.
func (s *Server) authorize(r *http.Request, rt route, p *lifeboat.Principal) error {
	if rt.Action == signedIn {
		return nil
	}
	var d access.Decision
	var t access.Target
	if anyScope[rt.Method+" "+rt.Pattern] {
		d = access.DecideAny(p, rt.Action)
	} else {
		var err error
		if t, err = s.target(r.Context(), r); err != nil {
			return err
		}
		d = access.Decide(p, rt.Action, t)
	}
	if d.Allow {
		return nil
	}
	ctx := context.WithoutCancel(r.Context())
	s.db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.Audit(ctx, p.Name, rt.Action, t.Ref(), "denied", map[string]string{"route": rt.Method + " " + rt.Pattern, "path": r.URL.Path, "source": sourceAddr(r), "reason": d.Reason})
	})
	return &lifeboat.Error{Code: lifeboat.EForbidden, Message: "forbidden: " + d.Reason}
}
