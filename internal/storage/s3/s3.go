package s3

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// ErrNoConditionalWrites is wrapped by Open's error when the storage lets a
// second put of a name replace the object. It is no ErrUnavailable: retrying
// will not help, the storage is unfit for a vault.
var ErrNoConditionalWrites = errors.New("no conditional writes")

// Config locates a bucket prefix. SecretKey is never printed: String,
// GoString and LogValue leave it out.
type Config struct {
	// Endpoint is host:port, or a URL http://host:port or https://host:port
	// whose scheme then decides TLS.
	Endpoint  string
	Bucket    string
	Prefix    string // "" or slash-separated segments, as object names
	AccessKey string
	SecretKey string
	Region    string // default us-east-1
	UseTLS    bool
}

// String describes the configuration without the secret key.
func (c Config) String() string {
	return fmt.Sprintf("s3.Config{Endpoint:%q Bucket:%q Prefix:%q AccessKey:%q SecretKey:%s Region:%q UseTLS:%v}",
		c.Endpoint, c.Bucket, c.Prefix, c.AccessKey, redacted(c.SecretKey), c.Region, c.UseTLS)
}

// GoString is String, so that %#v leaves the secret out too.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without the secret key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("endpoint", c.Endpoint), slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix), slog.String("access_key", c.AccessKey),
		slog.String("secret_key", redacted(c.SecretKey)), slog.Bool("tls", c.UseTLS))
}

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// Timeouts and retries: an unreachable endpoint must fail within seconds,
// a slow but working one must not.
const (
	dialTimeout   = 3 * time.Second
	headerTimeout = 60 * time.Second
	readRetries   = 6 // attempts per request minio-go makes for reads (about 3 s of backoff)
	putAttempts   = 4 // attempts per put, made by Put itself
	putBackoff    = 100 * time.Millisecond
	// A server that asks to slow down (429, 503, SlowDown) gets longer:
	// throttling is routine on hosted S3, and one second of it failed a
	// whole backup.
	throttledAttempts = 8 // throttleBackoff doubling up to 8 s: about 24 s in all
	throttleCap       = 8 * time.Second
	openTimeout       = 30 * time.Second
	// Objects from this size on are multipart uploads (in parts of
	// partSize), conditional at CompleteMultipartUpload; smaller ones go in
	// one conditional PutObject.
	multipartThreshold = 128 << 20
	partSize           = 64 << 20
)

// throttleBackoff is the first wait after a server asked to slow down (a
// variable for tests).
var throttleBackoff = 250 * time.Millisecond

// ioIdle bounds how long a connection may make no progress reading or
// writing: a server (or proxy) that stops reading a request body, or stops
// sending a response body, holds the connection open, and TCP alone never
// gives up on it. (A backup waited forever on a frozen server.) A variable
// for tests.
var ioIdle = 60 * time.Second

// idleConn is a connection whose reads and writes fail once they have made
// no progress for idle. A write also lifts the read deadline: net/http
// keeps a read pending on every connection (it spans the next request),
// and while a request is sent, and then answered, that read is bounded by
// the transport's response header timeout instead (the body may sit in the
// kernel's send buffer for a while on a slow uplink). Reads of an answer
// then each get idle again, so a body that stops coming fails.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
		return 0, err
	}
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Backend is a bucket prefix.
type Backend struct {
	c      *minio.Client // reads, lists and deletes; minio-go retries
	put    *minio.Client // puts; one attempt each, Put retries
	tr     *http.Transport
	bucket string
	prefix string // "" or "p/" (with the slash)
	loc    string
	secret string // only to scrub it from error texts

	multipartAt, partSize int // multipartThreshold and partSize; tests lower them
	// readOnly, if set, is why writes are refused: the probe's first put
	// was denied when the vault was opened, and a read worked. A write
	// probes again first (the refusal may have passed: a proxy, a clock
	// skew): writable.
	roMu     sync.Mutex
	readOnly error
	roSet    atomic.Bool // readOnly != nil, read without roMu
}

var _ storage.Backend = (*Backend)(nil)

// ParseLocation splits "s3://bucket/prefix" into bucket and prefix (without
// slashes at either end; "" for the whole bucket).
func ParseLocation(loc string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(loc, "s3://")
	if !ok {
		return "", "", fmt.Errorf("location %q: not s3://bucket/prefix", loc)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.TrimSuffix(prefix, "/")
	if err := checkBucket(bucket); err != nil {
		return "", "", fmt.Errorf("location %q: %w", loc, err)
	}
	if prefix != "" {
		if err := storage.CheckName(prefix); err != nil {
			return "", "", fmt.Errorf("location %q: prefix: %w", loc, err)
		}
	}
	return bucket, prefix, nil
}

// checkBucket applies S3's bucket naming rules.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q: want 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("bucket name %q: character %q not allowed (lower-case letters, digits, '-', '.')", b, c)
		}
	}
	if first, last := b[0], b[len(b)-1]; first == '-' || first == '.' || last == '-' || last == '.' || strings.Contains(b, "..") {
		return fmt.Errorf("bucket name %q: must start and end with a letter or digit", b)
	}
	return nil
}

// Open connects, checks that the bucket exists, and probes conditional
// writes and read-after-write listing (see the package documentation).
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	prefix := strings.Trim(cfg.Prefix, "/")
	loc := "s3://" + cfg.Bucket
	if prefix != "" {
		loc += "/" + prefix
	}
	if err := checkBucket(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("open %s: %w", loc, err)
	}
	if prefix != "" {
		if err := storage.CheckName(prefix); err != nil {
			return nil, fmt.Errorf("open %s: prefix: %w", loc, err)
		}
	}
	endpoint, tls := cfg.Endpoint, cfg.UseTLS
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.User != nil {
			return nil, fmt.Errorf("open %s: endpoint %q: want host:port, http://host:port or https://host:port%s", loc, RedactEndpoint(endpoint), userinfoHint(u))
		}
		endpoint, tls = u.Host, u.Scheme == "https"
	}
	if endpoint == "" {
		return nil, fmt.Errorf("open %s: no endpoint", loc)
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: ioIdle}, nil
		},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
	}
	b := &Backend{tr: tr, bucket: cfg.Bucket, loc: loc, secret: cfg.SecretKey, multipartAt: multipartThreshold, partSize: partSize}
	if prefix != "" {
		b.prefix = prefix + "/"
	}
	var clients [2]*minio.Client
	for i, retries := range []int{readRetries, 1} {
		c, err := minio.New(endpoint, &minio.Options{
			Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
			Secure:     tls,
			Region:     region,
			Transport:  tr,
			MaxRetries: retries,
		})
		if err != nil {
			return nil, fmt.Errorf("open %s: endpoint %q: %s", loc, RedactEndpoint(endpoint), b.scrub(err.Error()))
		}
		clients[i] = c
	}
	b.c, b.put = clients[0], clients[1]

	pctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	ok, err := b.c.BucketExists(pctx, cfg.Bucket)
	if err == nil && !ok {
		err = fmt.Errorf("open %s: %w: bucket %q does not exist", loc, storage.ErrUnavailable, cfg.Bucket)
		// A HEAD answer has no body: some servers answer 404 to a key
		// they do not know. A listing says which it is.
		for oi := range b.c.ListObjects(pctx, cfg.Bucket, minio.ListObjectsOptions{Prefix: b.prefix, MaxKeys: 1}) {
			if oi.Err != nil && errorResponse(oi.Err).Code != minio.NoSuchBucket {
				err = b.wrap(pctx, "open", "", oi.Err)
			}
			break
		}
	} else if err != nil {
		err = b.wrap(pctx, "open", "", err)
	}
	if err == nil {
		err = b.probe(pctx)
		var denied *probeDenied
		if errors.As(err, &denied) {
			// A key that may read but not write (for restores, checks,
			// audits) opens the vault for reading, if the storage lists
			// and says "no such key" as S3 does (a web server refusing
			// puts does not); writes say why they fail.
			_, serr := b.Stat(pctx, "locks/probe-absent")
			if lerr := b.List(pctx, "keys/", func(storage.ObjectInfo) error { return nil }); lerr == nil && errors.Is(serr, storage.ErrNotFound) {
				b.readOnly = fmt.Errorf("%w: this access key may not write at %s (the storage answered %s): reading works; backups, collections and key changes need a key that may write", storage.ErrUnavailable, loc, denied.code)
				b.roSet.Store(true)
				err = nil
			}
		}
	}
	if err != nil {
		if ctx.Err() == nil && pctx.Err() != nil {
			// Our own time limit, not the caller's: the storage is too slow.
			return nil, fmt.Errorf("open %s: %w: no answer within %v: %w", loc, storage.ErrUnavailable, openTimeout, err)
		}
		return nil, err
	}
	return b, nil
}

// probeDenied: the probe's first put was refused (403).
type probeDenied struct {
	code deniedError
	err  error
}

func (e *probeDenied) Error() string { return e.err.Error() }
func (e *probeDenied) Unwrap() error { return e.err }

// writable returns nil if writes may go ahead: always, unless the probe's
// first put was denied; then it probes again, and clears the refusal if
// the storage now takes writes.
func (b *Backend) writable(ctx context.Context) error {
	if !b.roSet.Load() {
		return nil
	}
	b.roMu.Lock()
	defer b.roMu.Unlock()
	if b.readOnly == nil {
		return nil
	}
	err := b.probe(ctx)
	var denied *probeDenied
	switch {
	case err == nil:
		b.readOnly = nil
		b.roSet.Store(false)
		return nil
	case errors.As(err, &denied):
		return b.readOnly
	}
	return err
}

// probe checks that a second put of a name is refused and that a new object
// is listed at once.
func (b *Backend) probe(ctx context.Context) error {
	var r [8]byte
	rand.Read(r[:])
	name := "locks/probe-" + hex.EncodeToString(r[:])
	if err := b.putChecked(ctx, name, []byte("probe")); err != nil {
		err = fmt.Errorf("open %s: probe: %w", b.loc, err)
		if de := deniedError(""); errors.As(err, &de) {
			return &probeDenied{code: de, err: err}
		}
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		b.c.RemoveObject(dctx, b.bucket, b.key(name), minio.RemoveObjectOptions{})
	}()
	err := b.putChecked(ctx, name, []byte("overwrite"))
	switch {
	case err == nil:
		got, rerr := storage.ReadAll(ctx, b, name)
		if errors.Is(rerr, storage.ErrUnavailable) {
			return fmt.Errorf("open %s: probe: %w", b.loc, rerr) // passing trouble: say so, not "no S3"
		}
		if rerr != nil || (string(got) != "overwrite" && string(got) != "probe") {
			// It answers "ok" to everything: a web server, not S3.
			return fmt.Errorf("open %s: %w: the endpoint does not answer as S3 storage does (an object it took reads back as something else): is it an S3 endpoint?", b.loc, storage.ErrUnavailable)
		}
		return fmt.Errorf("storage at %s does not support conditional writes (If-None-Match): a second put of %s replaced it; refusing it: %w", b.loc, name, ErrNoConditionalWrites)
	case !errors.Is(err, storage.ErrExists):
		return fmt.Errorf("open %s: probe: %w", b.loc, err)
	}
	seen := false
	err = b.List(ctx, name, func(oi storage.ObjectInfo) error {
		seen = seen || oi.Name == name
		return nil
	})
	if err != nil {
		return fmt.Errorf("open %s: probe: %w", b.loc, err)
	}
	if !seen {
		return fmt.Errorf("storage at %s does not list an object right after writing it; refusing it", b.loc)
	}
	got, err := storage.ReadAll(ctx, b, name)
	if err != nil {
		return fmt.Errorf("open %s: probe: %w", b.loc, err)
	}
	if string(got) != "probe" {
		return fmt.Errorf("storage at %s does not support conditional writes (If-None-Match): it refused a second put of %s but replaced the object; refusing it: %w", b.loc, name, ErrNoConditionalWrites)
	}
	return nil
}

// Location implements storage.Backend.
func (b *Backend) Location() string { return b.loc }

// String returns Location: printing a Backend shows no credentials.
func (b *Backend) String() string { return b.loc }

// GoString is String.
func (b *Backend) GoString() string { return b.loc }

// Close implements storage.Backend.
func (b *Backend) Close() error {
	b.tr.CloseIdleConnections()
	return nil
}

func (b *Backend) key(name string) string { return b.prefix + name }

// check validates the context and name of an operation.
func (b *Backend) check(ctx context.Context, op, name string) error {
	if err := storage.CheckName(name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	return nil
}

func (b *Backend) scrub(s string) string {
	if b.secret != "" {
		s = strings.ReplaceAll(s, b.secret, "[redacted]")
	}
	return s
}

// scrubbed is an error whose text had the secret key removed.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

func errorResponse(err error) minio.ErrorResponse {
	var er minio.ErrorResponse
	errors.As(err, &er)
	return er
}

// wrap translates a minio-go error into the storage sentinels, naming the
// operation, the object and the location.
//
// A cancelled or expired ctx is the caller's doing; any other timeout (the
// transport's, a connection's: since Go 1.23 they too match
// context.DeadlineExceeded) is the storage not answering.
func (b *Backend) wrap(ctx context.Context, op, name string, err error) error {
	what := op
	if name != "" {
		what += " " + name
	}
	er := errorResponse(err)
	var out error
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		out = fmt.Errorf("%s at %s: %w", what, b.loc, err)
	case er.Code == minio.NoSuchKey:
		out = fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	case er.Code == minio.PreconditionFailed || er.StatusCode == http.StatusPreconditionFailed:
		out = fmt.Errorf("%s: %w", what, storage.ErrExists)
	case er.Code == minio.NoSuchBucket:
		out = fmt.Errorf("%s at %s: %w: bucket %q does not exist", what, b.loc, storage.ErrUnavailable, b.bucket)
	case er.Code == minio.AccessDenied || er.Code == "InvalidAccessKeyId" || er.Code == "SignatureDoesNotMatch" ||
		er.Code == "AllAccessDisabled" || er.StatusCode == http.StatusForbidden:
		out = fmt.Errorf("%s at %s: %w: %w (check the access key and secret)", what, b.loc, storage.ErrUnavailable, deniedError(cmp.Or(er.Code, "AccessDenied")))
	case er.StatusCode == http.StatusNotFound && name != "":
		out = fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	case er.StatusCode >= 500 || er.StatusCode == http.StatusTooManyRequests || er.StatusCode == http.StatusRequestTimeout || unreachable(err):
		out = fmt.Errorf("%s at %s: %w: %w", what, b.loc, storage.ErrUnavailable, err)
	default:
		out = fmt.Errorf("%s at %s: %w", what, b.loc, err)
	}
	if b.secret != "" && strings.Contains(out.Error(), b.secret) {
		out = &scrubbed{msg: b.scrub(out.Error()), err: out}
	}
	return out
}

// deniedError is the code of a request the storage refused (403).
type deniedError string

func (e deniedError) Error() string { return string(e) }

// unreachable reports network-level failures: refused, reset, timed out,
// no such host, a connection cut short.
func unreachable(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// retryablePut reports whether a failed put attempt may be repeated, and
// whether the attempt may have stored the object before failing.
func retryablePut(ctx context.Context, err error) (retry, ambiguous bool) {
	if ctx.Err() != nil {
		return false, false
	}
	er := errorResponse(err)
	switch {
	case er.StatusCode == http.StatusConflict:
		// ConditionalRequestConflict: a concurrent conditional write of
		// the same key was in progress; ours did not happen. Retrying gets
		// 412 if that one won.
		return true, false
	case er.StatusCode == http.StatusTooManyRequests || er.StatusCode == http.StatusServiceUnavailable || er.Code == "SlowDown":
		return true, false
	case er.StatusCode >= 500 || er.StatusCode == http.StatusRequestTimeout:
		return true, true
	case er.StatusCode == 0 && unreachable(err):
		return true, true
	}
	return false, false
}

// throttled reports whether the server asked to slow down.
func throttled(err error) bool {
	er := errorResponse(err)
	return er.StatusCode == http.StatusTooManyRequests || er.StatusCode == http.StatusServiceUnavailable || er.Code == "SlowDown"
}

// Put implements storage.Backend with a conditional create
// (If-None-Match: *).
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := b.check(ctx, "put", name); err != nil {
		return err
	}
	if err := b.writable(ctx); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return b.putChecked(ctx, name, data)
}

// putChecked is Put after its checks, and the probe's put.
func (b *Backend) putChecked(ctx context.Context, name string, data []byte) error {
	ambiguous := false // an earlier attempt may have stored data
	for attempt := 1; ; attempt++ {
		err := b.putOnce(ctx, name, data)
		if err == nil {
			return nil
		}
		er := errorResponse(err)
		if er.Code == minio.PreconditionFailed || er.StatusCode == http.StatusPreconditionFailed {
			if ambiguous {
				same, herr := b.holds(ctx, name, data)
				if same {
					return nil // our earlier attempt stored it; its answer was lost
				}
				if herr != nil {
					// Ours or another's: unknown. "Exists" would pass for
					// stored; unavailable is retried by the caller.
					if !errors.Is(herr, storage.ErrUnavailable) {
						herr = fmt.Errorf("%w: %w", storage.ErrUnavailable, herr)
					}
					return fmt.Errorf("put %s: it exists, and whether an earlier attempt of this put stored it is unknown: reading it back: %w", name, herr)
				}
			}
			return fmt.Errorf("put %s: %w", name, storage.ErrExists)
		}
		retry, amb := retryablePut(ctx, err)
		ambiguous = ambiguous || amb
		attempts, wait := putAttempts, putBackoff<<(attempt-1)
		if throttled(err) {
			attempts, wait = throttledAttempts, min(throttleBackoff<<(attempt-1), throttleCap)
		}
		if !retry || attempt >= attempts {
			return b.wrap(ctx, "put", name, err)
		}
		select {
		case <-ctx.Done():
			return b.wrap(ctx, "put", name, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (b *Backend) putOnce(ctx context.Context, name string, data []byte) error {
	if len(data) >= b.multipartAt {
		return b.putMultipart(ctx, b.key(name), data)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
	opts.SetMatchETagExcept("*") // If-None-Match: *
	_, err := b.put.PutObject(ctx, b.bucket, b.key(name), bytes.NewReader(data), int64(len(data)), opts)
	return err
}

// putMultipart uploads data in parts and completes the upload only if key
// does not exist (If-None-Match: * on CompleteMultipartUpload). Whatever
// fails, the upload is aborted, so that no parts are left behind; minio-go's
// own multipart PutObject would leave them.
func (b *Backend) putMultipart(ctx context.Context, key string, data []byte) (err error) {
	core := minio.Core{Client: b.c} // parts are idempotent: minio-go may retry them
	id, err := core.NewMultipartUpload(ctx, b.bucket, key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			core.AbortMultipartUpload(actx, b.bucket, key, id)
		}
	}()
	var parts []minio.CompletePart
	for n, off := 1, 0; off < len(data); n, off = n+1, off+b.partSize {
		chunk := data[off:min(off+b.partSize, len(data))]
		p, err := core.PutObjectPart(ctx, b.bucket, key, id, n, bytes.NewReader(chunk), int64(len(chunk)), minio.PutObjectPartOptions{})
		if err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag})
	}
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	_, err = minio.Core{Client: b.put}.CompleteMultipartUpload(ctx, b.bucket, key, id, parts, opts)
	return err
}

// holds reports whether name exists with exactly data; an error when it
// could not be read back.
func (b *Backend) holds(ctx context.Context, name string, data []byte) (bool, error) {
	got, err := storage.ReadAll(ctx, b, name)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil && bytes.Equal(got, data), err
}

// RedactEndpoint is an endpoint URL fit for messages: user information
// (which may hold a password) is replaced by "[redacted]". It works on
// strings that do not parse as URLs too.
func RedactEndpoint(s string) string {
	i := strings.Index(s, "://")
	start := 0
	if i >= 0 {
		start = i + 3
	}
	end := len(s)
	if j := strings.IndexAny(s[start:], "/?#"); j >= 0 {
		end = start + j
	}
	if at := strings.LastIndex(s[start:end], "@"); at >= 0 {
		return s[:start] + "[redacted]" + s[start+at:]
	}
	return s
}

// userinfoHint explains why an endpoint with user information is refused.
func userinfoHint(u *url.URL) string {
	if u != nil && u.User != nil {
		return " (no credentials in the endpoint: they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a 0600 file)"
	}
	return ""
}

// Get implements storage.Backend with a ranged GET.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := b.check(ctx, "get", name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	empty := io.NopCloser(bytes.NewReader(nil))
	if length == 0 {
		if _, err := b.Stat(ctx, name); err != nil {
			return nil, err
		}
		return empty, nil
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		opts.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		opts.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	rc, _, _, err := minio.Core{Client: b.c}.GetObject(ctx, b.bucket, b.key(name), opts)
	if err != nil {
		if errorResponse(err).StatusCode == http.StatusRequestedRangeNotSatisfiable {
			// The range starts at or past the end: nothing to read, if
			// the object exists.
			if _, serr := b.Stat(ctx, name); serr != nil {
				return nil, serr
			}
			return empty, nil
		}
		return nil, b.confirmMissing(ctx, "get", name, b.wrap(ctx, "get", name, err))
	}
	return &reader{ctx: ctx, rc: rc, b: b, name: name}, nil
}

// confirmMissing turns an ErrNotFound into ErrUnavailable unless the bucket
// is there: a HEAD answered 404 without a body (all a missing bucket gives
// some servers) or a proxy's 404 page reads as "no such key" to the client,
// and callers take a missing object for one deleted (a collector, a check).
func (b *Backend) confirmMissing(ctx context.Context, op, name string, err error) error {
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	ok, berr := b.c.BucketExists(ctx, b.bucket)
	switch {
	case berr != nil && errorResponse(berr).StatusCode == http.StatusForbidden:
		return err // a key that may use objects but not check the bucket: as answered
	case berr != nil:
		return b.wrap(ctx, op, name, berr)
	case !ok:
		return fmt.Errorf("%s %s at %s: %w: bucket %q does not exist", op, name, b.loc, storage.ErrUnavailable, b.bucket)
	}
	return err
}

// reader translates the errors of a GET body.
type reader struct {
	ctx  context.Context
	rc   io.ReadCloser
	b    *Backend
	name string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.wrap(r.ctx, "get", r.name, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.rc.Close() }

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := b.check(ctx, "stat", name); err != nil {
		return storage.ObjectInfo{}, err
	}
	oi, err := b.c.StatObject(ctx, b.bucket, b.key(name), minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, b.confirmMissing(ctx, "stat", name, b.wrap(ctx, "stat", name, err))
	}
	return storage.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List implements storage.Backend. Keys under the prefix that are no valid
// object names (folder markers, foreign objects) are skipped.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when fn fails
	for oi := range b.c.ListObjects(lctx, b.bucket, minio.ListObjectsOptions{Prefix: b.key(prefix), Recursive: true}) {
		if oi.Err != nil {
			return b.wrap(ctx, "list", prefix, oi.Err)
		}
		name, ok := strings.CutPrefix(oi.Key, b.prefix)
		if !ok || storage.CheckName(name) != nil {
			continue
		}
		if err := fn(storage.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// Delete implements storage.Backend. S3 deletes of missing keys succeed, so
// Delete stats first to report ErrNotFound as the contract asks.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := b.check(ctx, "delete", name); err != nil {
		return err
	}
	if err := b.writable(ctx); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if _, err := b.c.StatObject(ctx, b.bucket, b.key(name), minio.StatObjectOptions{}); err != nil {
		return b.confirmMissing(ctx, "delete", name, b.wrap(ctx, "delete", name, err))
	}
	if err := b.c.RemoveObject(ctx, b.bucket, b.key(name), minio.RemoveObjectOptions{}); err != nil {
		return b.wrap(ctx, "delete", name, err)
	}
	return nil
}
