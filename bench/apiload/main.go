// Command apiload sends API requests to a running `lifeboat serve` at a
// fixed rate and prints their latency percentiles.
//
// It is open-loop: request i is due at start + i/rate whatever happened to
// the earlier ones, and its latency runs from that scheduled time, not from
// when it was sent. A server that stalls therefore shows its stall in every
// request that queued behind it (no coordinated omission).
//
//	go run ./bench/apiload -url http://127.0.0.1:7480 -mode list -rate 200 -duration 20s
//	go run ./bench/apiload -mode trigger -apps 1000 -app-format app-%04d
//
// The token comes from $LIFEBOAT_TOKEN. Modes:
//
//	list     GET /api/v1/apps?limit=100 (the cursor cycles through the apps)
//	trigger  POST /api/v1/apps/{app}/backups with a unique Idempotency-Key,
//	         round-robin over -apps apps named by -app-format
//
// The last line is tab-separated for scripts:
// mode, sent, errors, achieved rate, p50, p90, p99, max (milliseconds).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:7480", "server URL")
	mode := flag.String("mode", "list", "list or trigger")
	rate := flag.Float64("rate", 200, "requests per second")
	dur := flag.Duration("duration", 20*time.Second, "how long to send")
	warmup := flag.Duration("warmup", 2*time.Second, "sent at the same rate first, not counted")
	apps := flag.Int("apps", 1000, "trigger: number of apps")
	appFormat := flag.String("app-format", "app-%04d", "trigger: app name format")
	timeout := flag.Duration("timeout", 30*time.Second, "per-request timeout")
	flag.Parse()
	token := os.Getenv("LIFEBOAT_TOKEN")
	if token == "" {
		fatalf("set LIFEBOAT_TOKEN")
	}
	if *mode != "list" && *mode != "trigger" {
		fatalf("-mode: want list or trigger")
	}
	client := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute},
	}
	l := &loader{client: client, base: strings.TrimRight(*base, "/"), token: token, mode: *mode,
		apps: *apps, appFormat: *appFormat, run: time.Now().UnixNano()}
	if *warmup > 0 {
		l.send(*rate, *warmup)
	}
	res := l.send(*rate, *dur)
	res.print(*mode, *dur)
}

type loader struct {
	client    *http.Client
	base      string
	token     string
	mode      string
	apps      int
	appFormat string
	run       int64

	mu      sync.Mutex
	seq     int
	listing string // list: the cursor of the next page
}

type result struct {
	lat      []time.Duration // from the scheduled time
	service  []time.Duration // from the actual send
	errors   int
	firstErr string
	late     time.Duration // the latest a send started after its scheduled time
}

// send issues rate*d requests at their scheduled times and waits for all of them.
func (l *loader) send(rate float64, d time.Duration) *result {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	res := &result{lat: make([]time.Duration, n), service: make([]time.Duration, n)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		if late := time.Since(due); late > res.late {
			res.late = late
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := time.Now()
			err := l.one()
			end := time.Now()
			res.lat[i] = end.Sub(due)
			res.service[i] = end.Sub(sent)
			if err != nil {
				mu.Lock()
				if res.errors == 0 {
					res.firstErr = err.Error()
				}
				res.errors++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return res
}

// one sends one request and checks its status.
func (l *loader) one() error {
	l.mu.Lock()
	l.seq++
	seq := l.seq
	after := l.listing
	l.mu.Unlock()
	var req *http.Request
	var want int
	switch l.mode {
	case "list":
		u := l.base + "/api/v1/apps?limit=100"
		if after != "" {
			u += "&after=" + url.QueryEscape(after)
		}
		req, _ = http.NewRequestWithContext(context.Background(), "GET", u, nil)
		want = http.StatusOK
	case "trigger":
		app := fmt.Sprintf(l.appFormat, seq%l.apps)
		req, _ = http.NewRequestWithContext(context.Background(), "POST", l.base+"/api/v1/apps/"+url.PathEscape(app)+"/backups", strings.NewReader(`{"reason":"bench"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("apiload-%d-%d", l.run, seq))
		want = http.StatusAccepted
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if l.mode == "list" {
		// Follow the cursor so the pages cycle through the whole catalog.
		var page struct {
			Next string `json:"next"`
		}
		if json.Unmarshal(body, &page) == nil {
			l.mu.Lock()
			l.listing = page.Next
			l.mu.Unlock()
		}
	}
	return nil
}

func (r *result) print(mode string, d time.Duration) {
	n := len(r.lat)
	if n == 0 {
		fatalf("no requests")
	}
	slices.Sort(r.lat)
	slices.Sort(r.service)
	pct := func(v []time.Duration, p float64) float64 {
		i := int(p*float64(n)+0.5) - 1
		i = max(0, min(n-1, i))
		return float64(v[i]) / float64(time.Millisecond)
	}
	fmt.Printf("%s: %d requests in %s (%.0f/s), %d errors", mode, n, d, float64(n)/d.Seconds(), r.errors)
	if r.errors > 0 {
		fmt.Printf(" (first: %s)", r.firstErr)
	}
	fmt.Println()
	fmt.Printf("  latency from scheduled time: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		pct(r.lat, 0.50), pct(r.lat, 0.90), pct(r.lat, 0.99), pct(r.lat, 1))
	fmt.Printf("  service time (from send):    p50 %.2f ms, p99 %.2f ms; latest send %.2f ms after its time\n",
		pct(r.service, 0.50), pct(r.service, 0.99), float64(r.late)/float64(time.Millisecond))
	fmt.Printf("%s\t%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\n", mode, n, r.errors, float64(n)/d.Seconds(),
		pct(r.lat, 0.50), pct(r.lat, 0.90), pct(r.lat, 0.99), pct(r.lat, 1))
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "apiload: "+format+"\n", a...)
	os.Exit(2)
}
