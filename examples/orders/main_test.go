package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// freshDB creates an empty database named after the test and returns a
// DSN for it; the database is dropped when the test ends.
func freshDB(t *testing.T) string {
	t.Helper()
	admin := testenv.Require(t, "LIFEBOAT_TEST_PG_DSN")["LIFEBOAT_TEST_PG_DSN"]
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_"))
	name = fmt.Sprintf("orders_%s_%d", name, time.Now().UnixNano()%1e9)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func newTestServer(t *testing.T, dsn string) (*server, *httptest.Server) {
	t.Helper()
	s, err := newServer(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func do(t *testing.T, method, url string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func sameOrder(a, b order) bool {
	return a.ID == b.ID && a.Customer == b.Customer && a.TotalCents == b.TotalCents &&
		a.CreatedAt.Equal(b.CreatedAt) && bytes.Equal(a.Receipt, b.Receipt)
}

func TestOrders(t *testing.T) {
	_, ts := newTestServer(t, freshDB(t))

	if code := do(t, "GET", ts.URL+"/healthz", nil, nil); code != 200 {
		t.Fatalf("healthz on an empty table = %d", code)
	}
	var list []order
	if code := do(t, "GET", ts.URL+"/orders", nil, &list); code != 200 || list == nil || len(list) != 0 {
		t.Fatalf("empty list = %d %v", code, list)
	}

	var created []order
	for i := range 5 {
		receipt := bytes.Repeat([]byte{0, byte(i), 0xff, '\\'}, 100*(i+1))
		if i == 2 {
			receipt = nil // a receipt is optional
		}
		b, _ := json.Marshal(map[string]any{"customer": fmt.Sprintf("customer %d", i), "total_cents": 1999 * i, "receipt": receipt})
		var o order
		if code := do(t, "POST", ts.URL+"/orders", b, &o); code != http.StatusCreated {
			t.Fatalf("create = %d", code)
		}
		if o.ID == 0 || o.Customer != fmt.Sprintf("customer %d", i) || o.TotalCents != int64(1999*i) ||
			!bytes.Equal(o.Receipt, receipt) || time.Since(o.CreatedAt) > time.Minute {
			t.Fatalf("created %+v", o)
		}
		created = append(created, o)
	}

	if code := do(t, "GET", ts.URL+"/orders", nil, &list); code != 200 || len(list) != len(created) {
		t.Fatalf("list = %d, %d orders", code, len(list))
	}
	for i := range list {
		if !sameOrder(list[i], created[i]) {
			t.Errorf("order %d: %+v, want %+v", i, list[i], created[i])
		}
	}
	var page []order
	if code := do(t, "GET", fmt.Sprintf("%s/orders?after=%d&limit=2", ts.URL, created[1].ID), nil, &page); code != 200 ||
		len(page) != 2 || page[0].ID != created[2].ID || page[1].ID != created[3].ID {
		t.Errorf("page = %d %+v", code, page)
	}

	var one order
	if code := do(t, "GET", fmt.Sprintf("%s/orders/%d", ts.URL, created[3].ID), nil, &one); code != 200 || !sameOrder(one, created[3]) {
		t.Errorf("get = %d %+v", code, one)
	}
	if code := do(t, "GET", ts.URL+"/orders/999999", nil, nil); code != 404 {
		t.Errorf("get missing = %d, want 404", code)
	}
	for _, path := range []string{"/orders/abc", "/orders?after=x", "/orders?limit=0"} {
		if code := do(t, "GET", ts.URL+path, nil, nil); code != 400 {
			t.Errorf("GET %s = %d, want 400", path, code)
		}
	}
	for _, body := range []string{
		`not json`,
		`{"total_cents": 5}`,
		`{"customer": "  ", "total_cents": 5}`,
		`{"customer": "x"}`,
		`{"customer": "x", "total_cents": -1}`,
		`{"customer": "x", "total_cents": 1, "colour": "red"}`,
		`{"customer": "` + strings.Repeat("x", maxCustomer+1) + `", "total_cents": 1}`,
	} {
		if code := do(t, "POST", ts.URL+"/orders", []byte(body), nil); code != 400 {
			t.Errorf("POST %.40s = %d, want 400", body, code)
		}
	}
	big, _ := json.Marshal(map[string]any{"customer": "x", "total_cents": 1, "receipt": make([]byte, maxOrderSize)})
	if code := do(t, "POST", ts.URL+"/orders", big, nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized order = %d, want 413", code)
	}
	if code := do(t, "GET", ts.URL+"/orders", nil, &list); code != 200 || len(list) != len(created) {
		t.Errorf("refused orders were stored: %d orders", len(list))
	}
}

// Concurrent creates all succeed, with distinct ids.
func TestConcurrentCreates(t *testing.T) {
	_, ts := newTestServer(t, freshDB(t))
	var wg sync.WaitGroup
	ids := make(chan int64, 40)
	for i := range 40 {
		wg.Go(func() {
			var o order
			if code := do(t, "POST", ts.URL+"/orders", fmt.Appendf(nil, `{"customer":"c%d","total_cents":%d}`, i, i), &o); code != 201 {
				t.Errorf("create %d = %d", i, code)
			}
			ids <- o.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("id %d given twice", id)
		}
		seen[id] = true
	}
	var list []order
	if do(t, "GET", ts.URL+"/orders", nil, &list); len(list) != 40 {
		t.Errorf("%d orders, want 40", len(list))
	}
}

// A damaged table or a missing database makes the app unhealthy; it
// starts anyway, so the operator can see it.
func TestHealthz(t *testing.T) {
	dsn := freshDB(t)
	s, ts := newTestServer(t, dsn)
	if code := do(t, "GET", ts.URL+"/healthz", nil, nil); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	if _, err := s.pool.Exec(context.Background(), "ALTER TABLE orders DROP COLUMN receipt"); err != nil {
		t.Fatal(err)
	}
	if code := do(t, "GET", ts.URL+"/healthz", nil, nil); code != 500 {
		t.Errorf("healthz without a column = %d, want 500", code)
	}

	u, _ := url.Parse(dsn)
	u.Path = "/no_such_database_for_orders"
	_, ts2 := newTestServer(t, u.String())
	if code := do(t, "GET", ts2.URL+"/healthz", nil, nil); code != 500 {
		t.Errorf("healthz without a database = %d, want 500", code)
	}
}

// run takes the DSN from -dsn or ORDERS_DSN, serves, and stops on cancel.
func TestRun(t *testing.T) {
	dsn := freshDB(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan error, 1)
	getenv := func(k string) string {
		if k == "ORDERS_DSN" {
			return dsn
		}
		return ""
	}
	go func() { done <- run(ctx, []string{"-addr", addr}, getenv, &logs) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("healthz = %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the app did not answer: %v", <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no graceful shutdown")
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Errorf("log: %s", logs.String())
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	noenv := func(string) string { return "" }
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no database"},
		{[]string{"-dsn", "postgres://u:s3cret@127.0.0.1/db"}, "holds a password"},
		{[]string{"-dsn", "host=127.0.0.1 user=u password=s3cret dbname=db"}, "holds a password"},
		{[]string{"-dsn", "postgres://u@127.0.0.1/db", "extra"}, "unexpected argument"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), c.args, noenv, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run %q: %v, want %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error()+stderr.String(), "s3cret") {
			t.Errorf("run %q printed the password: %v %s", c.args, err, stderr.String())
		}
	}
}

func TestDSNHasPassword(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u@h:5432/db?sslmode=disable": false,
		"postgresql://u@h/db":                    false,
		"postgres://u:p@h/db":                    true,
		"postgres://u:@h/db":                     true,
		"postgres://u@h/db?password=p":           true,
		"host=h user=u dbname=db":                false,
		"host=h user=u password=p":               true,
		"password = p host=h":                    true,
		"host=h user=passwordless":               false,
	} {
		if got := dsnHasPassword(dsn); got != want {
			t.Errorf("dsnHasPassword(%q) = %v, want %v", dsn, got, want)
		}
	}
}
