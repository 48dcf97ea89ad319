package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// stallingFake opens a backend on a fake whose requests for keys ending in
// "stall" hang as serve decides, until the test ends; connections make no
// progress for at most 200 ms.
func stallingFake(t *testing.T, serve func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) (*fakeS3, *Backend) {
	t.Helper()
	old := ioIdle
	ioIdle = 200 * time.Millisecond
	t.Cleanup(func() { ioIdle = old })
	f, b := openFake(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the server closes
	f.mu.Lock()
	f.intercept = func(w http.ResponseWriter, r *http.Request, key string) bool {
		if !strings.HasSuffix(key, "stall") {
			return false
		}
		serve(w, r, release)
		return true
	}
	f.mu.Unlock()
	return f, b
}

// A server that stops reading a put's body (frozen, or a stuck proxy)
// fails the put as storage unavailable within seconds. (The backup waited
// forever: the response header timeout only starts once the body is sent.)
func TestPutToStalledServer(t *testing.T) {
	_, b := stallingFake(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) { <-release })
	err := within(t, "put to a server that stopped reading", func() error {
		return b.Put(context.Background(), "data/stall", make([]byte, 16<<20))
	})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("put to a server that stopped reading: %v, want unavailable", err)
	}
}

// within runs fn and returns its error, failing the test if it takes 30 s.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still waiting after 30 s", what)
		return nil
	}
}

// A server that stops in the middle of a body: the read fails as storage
// unavailable, not an unknown error (exit 1) and not never.
func TestGetFromStalledServer(t *testing.T) {
	_, b := stallingFake(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		w.Header().Set("Content-Length", "100000")
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-release
	})
	err := within(t, "read from a server that stopped sending", func() error {
		r, err := b.Get(context.Background(), "data/stall", 0, -1)
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		return err
	})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("read from a server that stopped sending: %v, want unavailable", err)
	}
}

// A server that throttles for longer than a second (five SlowDowns in a
// row) gets the put through: it was failed after four attempts in one
// second, which failed whole backups on routine throttling.
func TestPutRidesOutThrottling(t *testing.T) {
	defer func(d time.Duration) { throttleBackoff = d }(throttleBackoff)
	throttleBackoff = time.Millisecond
	f, b := openFake(t)
	f.mu.Lock()
	f.onPut = func(f *fakeS3, w http.ResponseWriter, key string, body []byte, attempt int) bool {
		if strings.HasSuffix(key, "busy") && attempt <= 5 {
			f.fail(w, http.StatusServiceUnavailable, "SlowDown")
			return true
		}
		return false
	}
	f.mu.Unlock()
	if err := b.Put(context.Background(), "index/busy", []byte("x")); err != nil {
		t.Fatalf("put through five SlowDowns: %v", err)
	}
}

// The caller's cancellation stays a cancellation; a timeout of the
// storage's is the storage unavailable. (Go's transport timeouts match
// context.DeadlineExceeded, and were taken for the caller's.)
func TestTimeoutIsUnavailable(t *testing.T) {
	b := &Backend{loc: "s3://b/p"}
	storageTimeout := &timeoutErr{}
	if err := b.wrap(context.Background(), "get", "x", storageTimeout); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("a transport timeout: %v, want unavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.wrap(ctx, "get", "x", context.Canceled); errors.Is(err, storage.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled call: %v, want the cancellation", err)
	}
	if retry, _ := retryablePut(context.Background(), storageTimeout); !retry {
		t.Error("a put that timed out is not retried")
	}
}

// timeoutErr is what net/http's timeouts look like since Go 1.23.
type timeoutErr struct{}

func (*timeoutErr) Error() string        { return "net/http: timeout awaiting response headers" }
func (*timeoutErr) Timeout() bool        { return true }
func (*timeoutErr) Temporary() bool      { return true }
func (*timeoutErr) Is(target error) bool { return target == context.DeadlineExceeded }

// A key that may read but not write (for restores, checks and audits)
// opens the vault: reads work, and every write says why it is refused.
// (Open's write probe refused such a key outright, with a hint to check the
// secret, which was right.) A refusal that passes (a proxy, a clock skew)
// does not stick: the next write probes again.
func TestReadOnlyKey(t *testing.T) {
	ctx := context.Background()
	f, cfg := newFake(t)
	f.mu.Lock()
	f.store("vault/points/p1", []byte("a point"))
	f.onPut = func(f *fakeS3, w http.ResponseWriter, key string, body []byte, attempt int) bool {
		f.fail(w, http.StatusForbidden, "AccessDenied")
		return true
	}
	f.mu.Unlock()
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open with a read-only key: %v", err)
	}
	got, err := storage.ReadAll(ctx, b, "points/p1")
	if err != nil || string(got) != "a point" {
		t.Fatalf("read with a read-only key: %q %v", got, err)
	}
	n := 0
	if err := b.List(ctx, "points/", func(storage.ObjectInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("list with a read-only key: %d, %v", n, err)
	}
	for what, err := range map[string]error{"put": b.Put(ctx, "index/i", []byte("x")), "delete": b.Delete(ctx, "points/p1")} {
		if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "may not write") || !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("%s with a read-only key: %v", what, err)
		}
	}
	f.mu.Lock()
	if f.objects["vault/points/p1"] == nil || f.objects["vault/index/i"] != nil {
		t.Errorf("a refused write changed the storage")
	}
	f.onPut = nil // the key may write now
	f.mu.Unlock()
	if err := b.Put(ctx, "index/i", []byte("x")); err != nil {
		t.Fatalf("put once the storage takes writes: %v", err)
	}
}

// A web server that answers HEAD with 200 and refuses puts is no read-only
// S3 vault: open fails (it cannot list).
func TestWebServerRefusingPutsIsNoVault(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>It works!</html>")
	}))
	defer srv.Close()
	if _, err := Open(context.Background(), Config{Endpoint: srv.URL, Bucket: "bucket", Prefix: "v", AccessKey: "ak", SecretKey: "sk"}); err == nil {
		t.Fatal("a web server refusing puts opened as a vault")
	}
}

// A server that answers a HEAD of the bucket with 404 for an access key it
// does not know (versitygw does) is not reported as a missing bucket: the
// listing's answer names the key.
func TestUnknownKeyIsNoMissingBucket(t *testing.T) {
	f, cfg := newFake(t)
	f.mu.Lock()
	f.intercept = func(w http.ResponseWriter, r *http.Request, key string) bool {
		if key != "" {
			return false
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusNotFound)
		} else {
			f.fail(w, http.StatusForbidden, "InvalidAccessKeyId")
		}
		return true
	}
	f.mu.Unlock()
	_, err := Open(context.Background(), cfg)
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "InvalidAccessKeyId") || strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("open with a key the server does not know: %v", err)
	}
	// A bucket that is really missing is still named so.
	f.mu.Lock()
	f.intercept = nil
	f.mu.Unlock()
	cfg.Bucket = "other-bucket"
	if _, err := Open(context.Background(), cfg); !strings.Contains(fmt.Sprint(err), "does not exist") {
		t.Fatalf("open of a missing bucket: %v", err)
	}
}
