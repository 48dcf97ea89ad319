package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// DefaultTimeout bounds connecting and the SSH handshake when Config.Timeout
// is zero and ctx has no earlier deadline.
const DefaultTimeout = 15 * time.Second

// KnownHost is a host key Lifeboat recorded for a host (`lifeboat host add`).
type KnownHost struct {
	Host string
	Port int
	Key  string // authorized_keys format: "ssh-ed25519 AAAA..."
}

// Addr is Host:Port.
func (k KnownHost) Addr() string { return net.JoinHostPort(k.Host, strconv.Itoa(k.Port)) }

// Fingerprint is the SHA256 fingerprint of Key ("SHA256:...").
func (k KnownHost) Fingerprint() (string, error) {
	pub, err := parseHostKey(k.Key)
	if err != nil {
		return "", err
	}
	return ssh.FingerprintSHA256(pub), nil
}

// Config says how to reach one host. PrivateKey is a secret: String,
// GoString and LogValue leave it out.
type Config struct {
	Addr       string // host:port; port 22 when missing
	User       string
	PrivateKey []byte        // PEM (OpenSSH or PKCS#8), unencrypted
	HostKey    string        // the recorded key, authorized_keys format: any other key is refused
	Timeout    time.Duration // connect + handshake; DefaultTimeout when 0
	// SFTPScan makes Scan walk the tree over SFTP even where find -printf
	// works (tests; accounts restricted to SFTP).
	SFTPScan bool
}

// String describes the configuration without the private key.
func (c Config) String() string {
	return fmt.Sprintf("ssh.Config{Addr:%q User:%q PrivateKey:%s HostKey:%q Timeout:%v SFTPScan:%v}",
		c.Addr, c.User, redacted(c.PrivateKey), c.HostKey, c.Timeout, c.SFTPScan)
}

// GoString is String, so that %#v leaves the key out too.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without the private key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", c.Addr), slog.String("user", c.User),
		slog.String("private_key", redacted(c.PrivateKey)), slog.String("host_key", c.HostKey))
}

func redacted(b []byte) string {
	if len(b) == 0 {
		return `""`
	}
	return "[redacted]"
}

// Client is a connection to one host. Its methods may be called
// concurrently; each Run is one SSH session, and all SFTP calls share one
// SFTP channel opened on first use.
type Client struct {
	addr     string
	user     string
	conn     *ssh.Client
	sftpScan bool

	mu       sync.Mutex
	sc       *sftp.Client
	hasFind  *bool               // find -printf probe result, once known
	stagings map[string]*staging // made by MkdirStaging, not yet swapped
}

// withPort adds ":22" to an address without a port.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return net.JoinHostPort(strings.Trim(addr, "[]"), "22")
	}
	return addr
}

// parseHostKey parses an authorized_keys line (a known_hosts line's key part).
func parseHostKey(line string) (ssh.PublicKey, error) {
	if strings.TrimSpace(line) == "" {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "no host key recorded: run `lifeboat host add` first")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "recorded host key %.40q: %w", line, err)
	}
	return pub, nil
}

// hostKeyAlgorithms restricts the handshake to the recorded key's type, so
// that a server with several host keys shows the one we know (x/crypto
// prefers ECDSA to Ed25519 otherwise).
func hostKeyAlgorithms(pub ssh.PublicKey) []string {
	if pub.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{pub.Type()}
}

// dialTCP connects to addr, naming it in EUnavailable errors.
func dialTCP(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, lifeboat.Errorf(lifeboat.EInterrupted, "ssh %s: %w", addr, context.Cause(ctx))
		}
		return nil, lifeboat.Errorf(lifeboat.EUnavailable, "ssh %s: cannot connect: %w", addr, err)
	}
	return conn, nil
}

// handshake runs the SSH handshake on conn within timeout and ctx.
func handshake(ctx context.Context, conn net.Conn, addr string, cfg *ssh.ClientConfig, timeout time.Duration) (*ssh.Client, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		conn.Close()
		return nil, err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !stop() {
		c.Close()
		return nil, lifeboat.Errorf(lifeboat.EInterrupted, "ssh %s: %w", addr, context.Cause(ctx))
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

var errProbeDone = errors.New("host key read")

// Fingerprint connects to addr, reads the host key the server offers
// without trusting it and without authenticating, and returns it in
// authorized_keys format with its SHA256 fingerprint, for `lifeboat host
// add` to show and record.
func Fingerprint(ctx context.Context, addr string) (key, fingerprint string, err error) {
	addr = withPort(addr)
	conn, err := dialTCP(ctx, addr, DefaultTimeout)
	if err != nil {
		return "", "", err
	}
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: "lifeboat-host-key-probe",
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			got = k
			return errProbeDone // stop before authenticating
		},
	}
	c, err := handshake(ctx, conn, addr, cfg, DefaultTimeout)
	if c != nil {
		c.Close()
	}
	if got == nil {
		if lifeboat.ErrorCode(err) == lifeboat.EInterrupted {
			return "", "", err
		}
		return "", "", lifeboat.Errorf(lifeboat.EUnavailable, "ssh %s: no host key received: %w", addr, err)
	}
	return authorizedKey(got), ssh.FingerprintSHA256(got), nil
}

func authorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Dial connects and authenticates with c.PrivateKey, accepting only the
// host key c.HostKey. Errors: an unknown or changed host key, or a refused
// private key -> lifeboat.EAuth; an unreachable host -> lifeboat.EUnavailable
// naming the address; a bad Config -> lifeboat.EInvalid.
func Dial(ctx context.Context, c Config) (*Client, error) {
	addr := withPort(c.Addr)
	want, err := parseHostKey(c.HostKey)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(c.PrivateKey)
	if err != nil {
		// Never wrap the parser's error text: it could quote key material.
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "ssh %s: private key for %s is not a valid unencrypted PEM key", addr, c.User)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var hostErr error
	cfg := &ssh.ClientConfig{
		User: c.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, got ssh.PublicKey) error {
			if bytes.Equal(got.Marshal(), want.Marshal()) {
				return nil
			}
			hostErr = lifeboat.Errorf(lifeboat.EAuth,
				"ssh %s: host key changed: recorded %s, offered %s %s; if the change is expected, record the new key with `lifeboat host add`",
				addr, ssh.FingerprintSHA256(want), got.Type(), ssh.FingerprintSHA256(got))
			return hostErr
		},
		HostKeyAlgorithms: hostKeyAlgorithms(want),
		Timeout:           timeout,
	}
	conn, err := dialTCP(ctx, addr, timeout)
	if err != nil {
		return nil, err
	}
	sc, err := handshake(ctx, conn, addr, cfg, timeout)
	switch {
	case err == nil:
	case hostErr != nil:
		return nil, hostErr
	case lifeboat.ErrorCode(err) == lifeboat.EInterrupted:
		return nil, err
	case strings.Contains(err.Error(), "no common algorithm for host key"):
		// The server no longer offers a key of the recorded type: a changed key.
		offered := "none"
		if k, fp, ferr := Fingerprint(ctx, addr); ferr == nil {
			offered = strings.Fields(k)[0] + " " + fp
		}
		return nil, lifeboat.Errorf(lifeboat.EAuth,
			"ssh %s: host key changed: recorded %s %s, offered %s; if the change is expected, record the new key with `lifeboat host add`",
			addr, want.Type(), ssh.FingerprintSHA256(want), offered)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return nil, lifeboat.Errorf(lifeboat.EAuth, "ssh %s: user %s: private key %s refused", addr, c.User, ssh.FingerprintSHA256(signer.PublicKey()))
	default:
		return nil, lifeboat.Errorf(lifeboat.EUnavailable, "ssh %s: handshake: %w", addr, err)
	}
	return &Client{addr: addr, user: c.User, conn: sc, sftpScan: c.SFTPScan, stagings: map[string]*staging{}}, nil
}

// Addr is the host:port the client is connected to.
func (c *Client) Addr() string { return c.addr }

// Close closes the SFTP channel and the connection. Remote commands still
// running are not stopped by it (OpenSSH keeps non-pty commands alive); Run
// signals its command when its ctx ends.
func (c *Client) Close() error {
	c.mu.Lock()
	sc := c.sc
	c.sc = nil
	c.mu.Unlock()
	if sc != nil {
		sc.Close()
	}
	return c.conn.Close()
}

// sftp returns the client's SFTP channel, opening it on first use.
func (c *Client) sftp() (*sftp.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sc != nil {
		return c.sc, nil
	}
	sc, err := sftp.NewClient(c.conn)
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EUnavailable, "sftp %s: %w", c.addr, err)
	}
	c.sc = sc
	return sc, nil
}
