package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// TestAuditChainTamper: the audit trail is a hash chain in the catalog with
// copies in vault storage. Editing, deleting, reordering and truncating
// events behind the server's back (straight in the catalog's tables) is
// each caught by verify, which names the first broken event.
func TestAuditChainTamper(t *testing.T) {
	cases := []struct {
		name   string
		tamper []string // SQL: {t} is the event to hit, {t1} the one after it, {newest} the newest
		// want: in the catalog's check, and in the vault copy's check
		catalog, vault string
	}{
		{"edit", []string{`UPDATE audit SET target = 'someone-else' WHERE seq = {t}`}, "edited", "differs from this vault's copy"},
		{"delete", []string{`DELETE FROM audit WHERE seq = {t}`}, "missing (deleted)", "in this vault's copy but not in the catalog"},
		{"reorder", []string{`UPDATE audit SET seq = -1 WHERE seq = {t}`, `UPDATE audit SET seq = {t} WHERE seq = {t1}`, `UPDATE audit SET seq = {t1} WHERE seq = -1`}, "does not link", "differs from this vault's copy"},
		{"drop newest", []string{`DELETE FROM audit WHERE seq = {newest}`}, "dropped from the end", "not in the catalog"},
		// Dropping the newest and rewinding the head leaves the catalog's
		// chain consistent: only the vault copy shows it.
		{"truncate and rewind", []string{`DELETE FROM audit WHERE seq >= {newest} - 1`, `UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit), hash = (SELECT hash FROM audit WHERE seq = (SELECT MAX(seq) FROM audit))`}, "", "older than this vault's copy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			ts := newTestServer(t, testOpts{dataDir: dataDir})
			for i := range 6 {
				ts.must(t, "PUT", fmt.Sprintf("/api/v1/principals/user%d", i), PrincipalSpec{Kind: "user"}, nil)
			}
			if err := ts.copyAuditToVaults(context.Background()); err != nil {
				t.Fatal(err)
			}
			var v AuditVerify
			ts.must(t, "GET", "/api/v1/audit/verify", nil, &v)
			if !v.OK || v.Catalog.Events < 8 || len(v.Vaults) != 1 || v.Vaults[0].Events != v.Catalog.Events {
				t.Fatalf("before tampering: %+v %+v", v.Catalog, v.Vaults)
			}
			newest := v.Catalog.Head.Seq
			target := newest - 3
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, CatalogFile)+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			for _, q := range c.tamper {
				q = strings.NewReplacer("{t1}", fmt.Sprint(target+1), "{t}", fmt.Sprint(target), "{newest}", fmt.Sprint(newest)).Replace(q)
				if _, err := raw.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			ts.must(t, "GET", "/api/v1/audit/verify", nil, &v)
			if v.OK {
				t.Fatalf("tampering went unnoticed: %+v", v)
			}
			switch {
			case c.catalog == "" && v.Catalog.Break != nil:
				t.Errorf("catalog check: %+v (the chain itself is consistent)", v.Catalog.Break)
			case c.catalog != "" && (v.Catalog.Break == nil || !strings.Contains(v.Catalog.Break.Reason, c.catalog)):
				t.Errorf("catalog check: %+v, want %q", v.Catalog.Break, c.catalog)
			}
			if vc := v.Vaults[0]; !strings.Contains(vc.Problem, c.vault) {
				t.Errorf("vault copy check: %+v, want %q", vc, c.vault)
			}
			if b := v.Catalog.Break; b != nil && c.name != "drop newest" && b.Seq != target {
				t.Errorf("the first broken event is %d, want %d", b.Seq, target)
			}
		})
	}
}

// TestAuditEvents: events carry source address, request id and their place
// in the chain; filters by principal, action prefix, app and time work;
// job state changes are events too.
func TestAuditEvents(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	ts.backup(t, "shop")
	var l struct {
		Items []lifeboat.AuditEvent
		Next  string
	}
	ts.must(t, "GET", "/api/v1/audit?app=shop", nil, &l)
	actions := map[string]bool{}
	for i, e := range l.Items {
		actions[e.Action+"/"+e.Outcome] = true
		if e.Target != "shop" && e.Target != "app:shop" {
			t.Errorf("app filter let through %+v", e)
		}
		if e.Hash == "" || (i > 0 && e.Seq <= l.Items[i-1].Seq) {
			t.Errorf("event out of chain order: %+v", e)
		}
	}
	for _, want := range []string{"app.put/ok", "job.create/ok", "job.start/running", "job.finish/succeeded"} {
		if !actions[want] {
			t.Errorf("no %s event for shop: %v", want, actions)
		}
	}
	ts.must(t, "GET", "/api/v1/audit?principal=admin&action=app.", nil, &l)
	if len(l.Items) == 0 {
		t.Fatal("no app.* events by admin")
	}
	for _, e := range l.Items {
		if e.Actor != "admin" || !strings.HasPrefix(e.Action, "app.") || e.Source != "127.0.0.1" || e.RequestID == "" {
			t.Errorf("filtered event %+v", e)
		}
	}
	if err := ts.do(t, "GET", "/api/v1/audit?since=yesterday", nil, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("a bad time: %v", err)
	}
	ts.must(t, "GET", "/api/v1/audit?since=2099-01-01T00:00:00Z", nil, &l)
	if len(l.Items) != 0 {
		t.Errorf("events from the future: %d", len(l.Items))
	}
	// A caller's request id is kept.
	if err := ts.do(t, "PUT", "/api/v1/principals/zed", PrincipalSpec{Kind: "user"}, nil, "X-Request-Id", "deploy-42"); err != nil {
		t.Fatal(err)
	}
	ts.must(t, "GET", "/api/v1/audit?action=principal.create", nil, &l)
	if last := l.Items[len(l.Items)-1]; last.Target != "zed" || last.RequestID != "deploy-42" {
		t.Errorf("request id: %+v", last)
	}
	// Cursor paging walks the chain.
	var all []lifeboat.AuditEvent
	cursor := ""
	for range 100 {
		l.Items, l.Next = nil, ""
		ts.must(t, "GET", "/api/v1/audit?limit=7&after="+cursor, nil, &l)
		all = append(all, l.Items...)
		if l.Next == "" {
			break
		}
		cursor = l.Next
	}
	for i := range all {
		if all[i].Seq != int64(i+1) {
			t.Fatalf("paging: event %d has seq %d", i, all[i].Seq)
		}
	}
	if cc, err := ts.db.VerifyAudit(context.Background()); err != nil || cc.Break != nil || cc.Events != int64(len(all)) {
		t.Errorf("verify: %+v %v (listed %d)", cc, err, len(all))
	}
}

// TestAuditWebhook: every event reaches the webhook, in chain order, even
// when it fails for a while (retried from the first unacknowledged event).
func TestAuditWebhook(t *testing.T) {
	var mu sync.Mutex
	got := map[int64]string{}
	fail := atomic.Bool{}
	fail.Store(true)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		var sg auditSegment
		if err := json.NewDecoder(r.Body).Decode(&sg); err != nil || sg.Format != "lifeboat-audit-segment" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, e := range sg.Events {
			got[e.Seq] = e.Hash
		}
		mu.Unlock()
	}))
	defer hook.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	ts := newTestServerCfg(t, testOpts{dataDir: dataDir}, func(c *Config) { c.AuditWebhook = hook.URL })
	ts.must(t, "PUT", "/api/v1/principals/u1", PrincipalSpec{Kind: "user"}, nil)
	if err := ts.copyAuditToVaults(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTP 502") {
		t.Errorf("a failing webhook: %v", err)
	}
	fail.Store(false)
	ts.must(t, "PUT", "/api/v1/principals/u2", PrincipalSpec{Kind: "user"}, nil)
	if err := ts.copyAuditToVaults(context.Background()); err != nil {
		t.Fatal(err)
	}
	cc, err := ts.db.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for seq := int64(1); seq <= cc.Head.Seq; seq++ {
		if got[seq] == "" {
			t.Errorf("event %d never reached the webhook", seq)
		}
	}
}

// TestAuditSyslog: every audit event reaches a syslog receiver over UDP,
// once, in chain order, with its hash; bad targets are refused.
func TestAuditSyslog(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var msgs []string
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, string(buf[:n]))
			mu.Unlock()
		}
	}()
	ts := newTestServerCfg(t, testOpts{}, func(c *Config) { c.AuditSyslog = "udp://" + pc.LocalAddr().String() })
	ts.must(t, "PUT", "/api/v1/principals/u1", PrincipalSpec{Kind: "user"}, nil)
	if err := ts.copyAuditToVaults(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts.must(t, "PUT", "/api/v1/principals/u2", PrincipalSpec{Kind: "user"}, nil)
	if err := ts.copyAuditToVaults(context.Background()); err != nil {
		t.Fatal(err)
	}
	cc, err := ts.db.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []lifeboat.AuditEvent
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(msgs)
		mu.Unlock()
		if int64(n) >= cc.Head.Seq {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		if !strings.Contains(m, "lifeboat-audit") || !strings.HasPrefix(m, "<"+fmt.Sprint(4*8+5)+">") { // auth.notice
			t.Errorf("syslog message %q", m)
		}
		var e lifeboat.AuditEvent
		if err := json.Unmarshal([]byte(m[strings.Index(m, "{"):]), &e); err != nil {
			t.Fatalf("message %q: %v", m, err)
		}
		got = append(got, e)
	}
	if int64(len(got)) != cc.Head.Seq {
		t.Fatalf("%d messages for %d events", len(got), cc.Head.Seq)
	}
	for i, e := range got {
		if e.Seq != int64(i+1) || e.Hash == "" {
			t.Errorf("message %d: seq %d hash %q", i, e.Seq, e.Hash)
		}
	}
	for _, bad := range []string{"udp://host", "http://x:1", "unix://", "tcp://h:1/x", "udp:/x"} {
		if _, _, err := ParseSyslogTarget(bad); err == nil {
			t.Errorf("syslog target %q accepted", bad)
		}
	}
}
