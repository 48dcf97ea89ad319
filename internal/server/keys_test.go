package server

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// TestKeyAge: a vault key older than the rotation period of a policy of
// its apps shows as a warning in status.
func TestKeyAge(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UTC().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ts := newTestServer(t, testOpts{now: now})
	f := newFixture(t)
	doc := f.doc()
	doc.Policies[0].KeyRotation = lifeboat.Duration(90 * 24 * time.Hour)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	var st Status
	ts.must(t, "GET", "/api/v1/status", nil, &st)
	for _, w := range st.Warnings {
		if strings.Contains(w, "rotation period") {
			t.Errorf("a new key is old: %s", w)
		}
	}
	clock.Add(int64(91 * 24 * time.Hour))
	st = Status{}
	ts.must(t, "GET", "/api/v1/status", nil, &st)
	found := false
	for _, w := range st.Warnings {
		found = found || strings.Contains(w, "past the rotation period of 90d (policy daily): run `lifeboat key rotate --vault default`")
	}
	if !found || len(st.Vaults) == 0 || st.Vaults[0].KeyAge.D() < 91*24*time.Hour {
		t.Errorf("status after 91 days: %+v", st)
	}
	code, metrics := ts.rawDo(t, "GET", "/metrics", ts.token, "")
	if code != 200 || !strings.Contains(metrics, `lifeboat_vault_key_age_seconds{vault="default"} 78`) || !strings.Contains(metrics, "lifeboat_warnings ") {
		t.Errorf("metrics: %d\n%s", code, metrics)
	}
}
