package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// fakeS3 is a small S3 server (path-style, no signature check) whose
// misbehaviour the tests choose, to check how the backend handles storage
// that ignores If-None-Match, loses answers, or fails. The conformance
// suite runs against a real server (s3_test.go).
type fakeS3 struct {
	t      *testing.T
	bucket string

	mu      sync.Mutex
	objects map[string][]byte
	mod     map[string]time.Time
	puts    int // PUT requests seen

	ignoreIfNoneMatch bool // store over existing objects
	hideFromList      bool // list shows nothing (no read-after-write)
	// onPut, if set, may answer a PUT itself (returning true); attempt
	// counts the PUTs of that key so far, from 1.
	onPut  func(f *fakeS3, w http.ResponseWriter, key string, body []byte, attempt int) bool
	perKey map[string]int
	// intercept, if set, sees each request first, without f.mu held, and
	// may answer it itself (returning true): a server that stalls.
	intercept func(w http.ResponseWriter, r *http.Request, key string) bool
}

func newFake(t *testing.T) (*fakeS3, Config) {
	f := &fakeS3{t: t, bucket: "fake-bucket", objects: map[string][]byte{}, mod: map[string]time.Time{}, perKey: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, Config{Endpoint: srv.URL, Bucket: f.bucket, Prefix: "vault", AccessKey: "ak", SecretKey: "fake-secret-key-42"}
}

// openFake opens the backend on a new fake server.
func openFake(t *testing.T) (*fakeS3, *Backend) {
	t.Helper()
	f, cfg := newFake(t)
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, b
}

func (f *fakeS3) fail(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s from the fake</Message><RequestId>1</RequestId></Error>`, code, code)
}

// store saves an object; callers hold f.mu.
func (f *fakeS3) store(key string, body []byte) {
	f.objects[key] = body
	f.mod[key] = time.Now().UTC()
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != f.bucket {
		f.fail(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	f.mu.Lock()
	intercept := f.intercept
	f.mu.Unlock()
	if intercept != nil && intercept(w, r, key) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case key == "" && r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case key == "" && r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2":
		f.list(w, r.URL.Query().Get("prefix"))
	case r.Method == http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err == nil && strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			body, err = decodeAWSChunked(body)
		}
		if n, _ := strconv.Atoi(r.Header.Get("X-Amz-Decoded-Content-Length")); err == nil && n != len(body) {
			err = fmt.Errorf("decoded %d bytes, header says %d", len(body), n)
		}
		if err != nil {
			f.t.Errorf("fake: put %s: %v", key, err)
			f.fail(w, http.StatusBadRequest, "IncompleteBody")
			return
		}
		f.puts++
		f.perKey[key]++
		if f.onPut != nil && f.onPut(f, w, key, body, f.perKey[key]) {
			return
		}
		if _, ok := f.objects[key]; ok && r.Header.Get("If-None-Match") == "*" && !f.ignoreIfNoneMatch {
			f.fail(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		f.store(key, body)
		sum := md5.Sum(body)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		data, ok := f.objects[key]
		if !ok {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			f.fail(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		sum := md5.Sum(data)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Header().Set("Last-Modified", f.mod[key].Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/octet-stream")
		if rg := r.Header.Get("Range"); rg != "" {
			var from, to int
			if n, _ := fmt.Sscanf(rg, "bytes=%d-%d", &from, &to); n < 2 {
				to = len(data) - 1
			}
			if from >= len(data) {
				f.fail(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange")
				return
			}
			data = data[from : min(to, len(data)-1)+1]
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, from+len(data)-1, len(f.objects[key])))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		}
		if r.Method == http.MethodGet {
			w.Write(data)
		}
	case r.Method == http.MethodDelete:
		delete(f.objects, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		f.fail(w, http.StatusNotImplemented, "NotImplemented")
	}
}

// decodeAWSChunked undoes the aws-chunked framing of a streaming-signed
// body: "SIZE-IN-HEX;chunk-signature=...\r\nDATA\r\n", ending with a chunk
// of size 0 (signatures are not checked).
func decodeAWSChunked(b []byte) ([]byte, error) {
	var out []byte
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return nil, fmt.Errorf("aws-chunked: no chunk header")
		}
		sizeHex, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(sizeHex), 16, 64)
		if err != nil || n < 0 || int64(len(rest)) < n {
			return nil, fmt.Errorf("aws-chunked: bad chunk header %q", line)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, rest[:n]...)
		b, ok = bytes.CutPrefix(rest[n:], []byte("\r\n"))
		if !ok {
			return nil, fmt.Errorf("aws-chunked: chunk not followed by CRLF")
		}
	}
}

func (f *fakeS3) list(w http.ResponseWriter, prefix string) {
	type content struct {
		Key          string
		LastModified string
		ETag         string
		Size         int
		StorageClass string
	}
	type result struct {
		XMLName     xml.Name `xml:"ListBucketResult"`
		Name        string
		Prefix      string
		KeyCount    int
		MaxKeys     int
		IsTruncated bool
		Contents    []content
	}
	res := result{Name: f.bucket, Prefix: prefix, MaxKeys: 1000}
	if !f.hideFromList {
		for k, v := range f.objects {
			if strings.HasPrefix(k, prefix) {
				res.Contents = append(res.Contents, content{Key: k, LastModified: f.mod[k].Format(time.RFC3339Nano), ETag: `"x"`, Size: len(v), StorageClass: "STANDARD"})
			}
		}
	}
	slices.SortFunc(res.Contents, func(a, b content) int { return strings.Compare(a.Key, b.Key) })
	res.KeyCount = len(res.Contents)
	w.Header().Set("Content-Type", "application/xml")
	xml.NewEncoder(w).Encode(res)
}

func (f *fakeS3) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.objects)
}

func TestFakeWorks(t *testing.T) {
	_, cfg := newFake(t)
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Put(ctx, "data/ab/x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "data/ab/x", []byte("again")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second put: %v", err)
	}
	got, err := storage.ReadAll(ctx, b, "data/ab/x")
	if err != nil || string(got) != "hello" {
		t.Fatalf("get: %q %v", got, err)
	}
}

func TestOpenRefusesStorageThatOverwrites(t *testing.T) {
	for _, lie := range []bool{false, true} {
		f, cfg := newFake(t)
		if lie {
			// Answers 412 as it should, but has replaced the object.
			f.onPut = func(f *fakeS3, w http.ResponseWriter, key string, body []byte, attempt int) bool {
				if attempt > 1 {
					f.store(key, body)
					f.fail(w, http.StatusPreconditionFailed, "PreconditionFailed")
					return true
				}
				return false
			}
		} else {
			f.ignoreIfNoneMatch = true
		}
		_, err := Open(context.Background(), cfg)
		if !errors.Is(err, ErrNoConditionalWrites) || errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("lie=%v: %v, want ErrNoConditionalWrites", lie, err)
		}
		want := "storage at s3://fake-bucket/vault does not support conditional writes (If-None-Match)"
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "refusing it") {
			t.Errorf("lie=%v: error %q, want it to say %q ... refusing it", lie, err, want)
		}
		if n := f.count(); n != 0 {
			t.Errorf("lie=%v: the probe left %d objects", lie, n)
		}
	}
}

func TestOpenRefusesStorageThatListsLate(t *testing.T) {
	f, cfg := newFake(t)
	f.hideFromList = true
	_, err := Open(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does not list an object right after writing it") {
		t.Fatalf("open: %v", err)
	}
	if n := f.count(); n != 0 {
		t.Errorf("the probe left %d objects", n)
	}
}

// TestPutWhoseAnswerWasLost: the first attempt stores the object but the
// connection drops before the answer; the retry meets 412. The put
// succeeded, and must say so, but only if the stored bytes are ours.
func TestPutWhoseAnswerWasLost(t *testing.T) {
	ctx := context.Background()
	f, b := openFake(t)
	f.mu.Lock()
	f.onPut = func(f *fakeS3, w http.ResponseWriter, key string, body []byte, attempt int) bool {
		if attempt == 1 && strings.Contains(key, "/data/") {
			if strings.HasSuffix(key, "theirs") {
				f.store(key, []byte("someone else's"))
			} else {
				f.store(key, body)
			}
			dropConnection(w)
			return true
		}
		return false
	}
	f.mu.Unlock()
	if err := b.Put(ctx, "data/aa/ours", []byte("ours")); err != nil {
		t.Errorf("put whose answer was lost: %v", err)
	}
	if err := b.Put(ctx, "data/aa/ours", []byte("ours")); !errors.Is(err, storage.ErrExists) {
		t.Errorf("a later put of the same bytes: %v, want ErrExists", err)
	}
	if err := b.Put(ctx, "data/aa/theirs", []byte("ours")); !errors.Is(err, storage.ErrExists) {
		t.Errorf("put that lost a race during a lost answer: %v, want ErrExists", err)
	}
}

// A put whose first answer was lost meets 412 on its retry; when the
// object then cannot be read back, whether it is ours is unknown: the put
// fails as unavailable (retried by its caller), never "exists", which
// callers take for stored.
func TestPutLostAnswerThenUnreadable(t *testing.T) {
	ctx := context.Background()
	f, b := openFake(t)
	f.mu.Lock()
	f.onPut = func(f *fakeS3, w http.ResponseWriter, key string, body []byte, attempt int) bool {
		if !strings.HasSuffix(key, "/keys/k1") {
			return false
		}
		switch attempt {
		case 1:
			f.store(key, body)
			dropConnection(w)
		default:
			f.fail(w, http.StatusPreconditionFailed, "PreconditionFailed")
			f.bucket = "gone-for-reads" // reads now fail: NoSuchBucket
		}
		return true
	}
	f.mu.Unlock()
	err := b.Put(ctx, "keys/k1", []byte("slot"))
	if err == nil || errors.Is(err, storage.ErrExists) || !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("put: %v; want unavailable, not exists", err)
	}
}

// A bucket gone (or a 404 without a body, all a HEAD can carry) is never
// taken for a missing object, which a collector or a check would act on:
// Stat, Delete and Get say the storage is unavailable; a key really
// missing from a present bucket stays "not found".
func TestMissingBucketIsNotMissingObject(t *testing.T) {
	ctx := context.Background()
	f, b := openFake(t)
	if err := b.Put(ctx, "points/p1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "points/absent"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stat of a missing key: %v, want not found", err)
	}
	f.mu.Lock()
	f.bucket = "gone-bucket"
	f.mu.Unlock()
	check := func(what string, err error) {
		t.Helper()
		if errors.Is(err, storage.ErrNotFound) || !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%s with the bucket gone: %v; want unavailable, not not-found", what, err)
		}
	}
	_, err := b.Stat(ctx, "points/p1")
	check("stat", err)
	check("delete", b.Delete(ctx, "points/p1"))
	_, err = b.Get(ctx, "points/p1", 0, 0)
	check("empty get", err)
}

func TestPutRetries(t *testing.T) {
	ctx := context.Background()
	f, b := openFake(t)
	f.mu.Lock()
	f.onPut = func(f *fakeS3, w http.ResponseWriter, key string, body []byte, attempt int) bool {
		switch {
		case strings.HasSuffix(key, "conflict") && attempt <= 2:
			f.fail(w, http.StatusConflict, "ConditionalRequestConflict")
		case strings.HasSuffix(key, "busy") && attempt <= 2:
			f.fail(w, http.StatusServiceUnavailable, "SlowDown")
		case strings.HasSuffix(key, "down"):
			f.fail(w, http.StatusInternalServerError, "InternalError")
		case strings.HasSuffix(key, "bad"):
			f.fail(w, http.StatusBadRequest, "InvalidRequest")
		default:
			return false
		}
		return true
	}
	f.mu.Unlock()
	for _, name := range []string{"index/conflict", "index/busy"} {
		if err := b.Put(ctx, name, []byte("x")); err != nil {
			t.Errorf("put %s: %v", name, err)
		}
	}
	t0 := time.Now()
	err := b.Put(ctx, "index/down", []byte("x"))
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "s3://fake-bucket/vault") {
		t.Errorf("put to a failing server: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("put to a failing server took %v", d)
	}
	f.mu.Lock()
	downs := f.perKey["vault/index/down"]
	f.mu.Unlock()
	if downs != putAttempts {
		t.Errorf("%d attempts on a 500, want %d", downs, putAttempts)
	}
	if err := b.Put(ctx, "index/bad", []byte("x")); err == nil || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("put refused with 400: %v", err)
	}
	f.mu.Lock()
	bads := f.perKey["vault/index/bad"]
	f.mu.Unlock()
	if bads != 1 {
		t.Errorf("a 400 was tried %d times", bads)
	}
}

func TestErrorsNameLocationNotSecret(t *testing.T) {
	ctx := context.Background()
	f, cfg := newFake(t)
	nob := cfg
	nob.Bucket = "other-bucket"
	_, err := Open(ctx, nob)
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "s3://other-bucket/vault") {
		t.Errorf("missing bucket: %v", err)
	}
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.onPut = func(f *fakeS3, w http.ResponseWriter, key string, body []byte, attempt int) bool {
		f.fail(w, http.StatusForbidden, "AccessDenied")
		return true
	}
	f.mu.Unlock()
	err = b.Put(ctx, "keys/k", []byte("x"))
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("access denied: %v", err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("open", "config", cfg, "backend", b)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("open", "config", cfg, "backend", b)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(b), fmt.Sprintf("%+v", b), fmt.Sprintf("%#v", b), logged.String()} {
		if strings.Contains(s, cfg.SecretKey) {
			t.Errorf("printed with the secret: %s", s)
		}
	}
	// Even an error text that would contain the secret loses it.
	serr := b.wrap(ctx, "get", "x", fmt.Errorf("weird server said %s", cfg.SecretKey))
	if strings.Contains(serr.Error(), cfg.SecretKey) || errors.Unwrap(serr) == nil {
		t.Errorf("scrubbed error: %v", serr)
	}
}

func TestCheckBucketAndEndpoint(t *testing.T) {
	for _, b := range []string{"abc", "my-bucket.v2", strings.Repeat("a", 63)} {
		if err := checkBucket(b); err != nil {
			t.Errorf("%q: %v", b, err)
		}
	}
	for _, b := range []string{"", "ab", "Bucket", "b_ucket", "-abc", "abc-", "a..b", "a/b", strings.Repeat("a", 64)} {
		if err := checkBucket(b); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
	for _, ep := range []string{"ftp://host:1", "http://", "http://host:1/path", "http://u:p@host:1"} {
		_, err := Open(context.Background(), Config{Endpoint: ep, Bucket: "abc"})
		if err == nil || errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("endpoint %q: %v", ep, err)
		}
	}
}

// A key that may use objects but not check the bucket (HEAD of the bucket
// answers 403): a missing object stays "not found", as the server answered,
// instead of failing every Stat or Get of a missing key as unavailable.
func TestMissingObjectWithBucketCheckDenied(t *testing.T) {
	ctx := context.Background()
	f, b := openFake(t)
	f.mu.Lock()
	f.intercept = func(w http.ResponseWriter, r *http.Request, key string) bool {
		if key == "" && r.Method == http.MethodHead {
			f.fail(w, http.StatusForbidden, "AccessDenied")
			return true
		}
		return false
	}
	f.mu.Unlock()
	if _, err := b.Stat(ctx, "points/absent"); !errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("stat of a missing key, bucket check denied: %v; want not found", err)
	}
	if _, err := b.Get(ctx, "points/absent", 0, -1); !errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("get of a missing key, bucket check denied: %v; want not found", err)
	}
	if err := b.Put(ctx, "points/p1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "points/p1"); err != nil {
		t.Errorf("stat of a present key, bucket check denied: %v", err)
	}
}
