package ssh_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh"
	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh/sshtest"
)

type sshEnv struct {
	addr, user, hostKey string
	key                 []byte
}

func mustEnv(t *testing.T) sshEnv {
	c := sshtest.Config(t)
	return sshEnv{addr: c.Addr, user: c.User, hostKey: c.HostKey, key: c.PrivateKey}
}

func (e sshEnv) config() ssh.Config {
	return ssh.Config{Addr: e.addr, User: e.user, PrivateKey: e.key, HostKey: e.hostKey, Timeout: 10 * time.Second}
}

func mustDial(t *testing.T, c ssh.Config) *ssh.Client { return sshtest.Dial(t, c) }

// sharedDir makes a temp directory the SSH login user owns.
func sharedDir(t *testing.T, e sshEnv) string { return sshtest.SharedDir(t, e.user) }

func newKeyPEM(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := xssh.MarshalPrivateKey(priv, "other")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(blk)
}

func mustECDSA(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wantCode(t *testing.T, err error, code lifeboat.Code, contains ...string) {
	t.Helper()
	if lifeboat.ErrorCode(err) != code {
		t.Fatalf("error %v: code %s, want %s", err, lifeboat.ErrorCode(err), code)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
}

func TestFingerprint(t *testing.T) {
	e := mustEnv(t)
	key, fp, err := ssh.Fingerprint(context.Background(), e.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(strings.Fields(key)[:2], " "), strings.Join(strings.Fields(e.hostKey)[:2], " "); got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	pub, _, _, _, err := xssh.ParseAuthorizedKey([]byte(e.hostKey))
	if err != nil {
		t.Fatal(err)
	}
	if want := xssh.FingerprintSHA256(pub); fp != want {
		t.Errorf("fingerprint %s, want %s", fp, want)
	}
	host, port, _ := net.SplitHostPort(e.addr)
	p, _ := strconv.Atoi(port)
	kh := ssh.KnownHost{Host: host, Port: p, Key: key}
	if got, err := kh.Fingerprint(); err != nil || got != fp || kh.Addr() != e.addr {
		t.Errorf("KnownHost: %s %v %s", got, err, kh.Addr())
	}
	// The recorded key lets Dial in.
	c := e.config()
	c.HostKey = key
	mustDial(t, c)
}

func TestDialRefusesChangedHostKey(t *testing.T) {
	e := mustEnv(t)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	other, err := xssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	real, _, _, _, _ := xssh.ParseAuthorizedKey([]byte(e.hostKey))
	c := e.config()
	c.HostKey = string(xssh.MarshalAuthorizedKey(other))
	_, err = ssh.Dial(context.Background(), c)
	wantCode(t, err, lifeboat.EAuth, e.addr, xssh.FingerprintSHA256(other), xssh.FingerprintSHA256(real), "changed")

	// A recorded key of another type: the server offers none of that type.
	ek, err := xssh.NewPublicKey(&mustECDSA(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c.HostKey = string(xssh.MarshalAuthorizedKey(ek))
	_, err = ssh.Dial(context.Background(), c)
	wantCode(t, err, lifeboat.EAuth, e.addr, xssh.FingerprintSHA256(ek), xssh.FingerprintSHA256(real))

	c.HostKey = ""
	_, err = ssh.Dial(context.Background(), c)
	wantCode(t, err, lifeboat.EInvalid)
}

func TestDialRefusesWrongPrivateKey(t *testing.T) {
	e := mustEnv(t)
	pemKey := newKeyPEM(t)
	c := e.config()
	c.PrivateKey = pemKey
	_, err := ssh.Dial(context.Background(), c)
	wantCode(t, err, lifeboat.EAuth, e.addr, e.user)

	c.PrivateKey = []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n")
	_, err = ssh.Dial(context.Background(), c)
	wantCode(t, err, lifeboat.EInvalid)
	if strings.Contains(err.Error(), "not a key") {
		t.Errorf("error quotes the key: %v", err)
	}
}

func TestConfigRedactsKey(t *testing.T) {
	c := ssh.Config{Addr: "h:22", User: "u", PrivateKey: []byte("SECRETKEYMATERIAL")}
	var logged bytes.Buffer
	for _, s := range []string{c.String(), c.GoString(), c.LogValue().String()} {
		logged.WriteString(s)
	}
	if strings.Contains(logged.String(), "SECRETKEYMATERIAL") || !strings.Contains(logged.String(), "[redacted]") {
		t.Errorf("key shown: %s", logged.String())
	}
}

func TestDialUnreachable(t *testing.T) {
	e := mustEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := e.config()
	c.Addr = addr
	_, err = ssh.Dial(context.Background(), c)
	wantCode(t, err, lifeboat.EUnavailable, addr)
	_, _, err = ssh.Fingerprint(context.Background(), addr)
	wantCode(t, err, lifeboat.EUnavailable, addr)
}

func TestRunLiteral(t *testing.T) {
	e := mustEnv(t)
	cl := mustDial(t, e.config())
	dir := sharedDir(t, e)
	marker := filepath.Join(dir, "pwned")
	args := []string{"with space", `it's "quoted"`, "$(touch " + marker + ")", "`touch " + marker + "`",
		"; touch " + marker, "a\nb", "*", "", `\\n $HOME ${PATH} 'x'`, "-n", "é漢"}
	var out bytes.Buffer
	if err := cl.Run(context.Background(), append([]string{"printf", `%s\0`}, args...), nil, &out); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\x00"), "\x00")
	if !slices.Equal(got, args) {
		t.Errorf("got %q\nwant %q", got, args)
	}
	if _, err := os.Lstat(marker); err == nil {
		t.Errorf("an argument was run by the remote shell")
	}
	if err := cl.Run(context.Background(), []string{"echo", "a\x00b"}, nil, nil); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("NUL in argv: %v", err)
	}
}

func TestRunExitError(t *testing.T) {
	e := mustEnv(t)
	cl := mustDial(t, e.config())
	err := cl.Run(context.Background(), []string{"sh", "-c", "echo oops >&2; exit 3"}, nil, nil)
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Status != 3 || !strings.Contains(ee.Stderr, "oops") {
		t.Fatalf("got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = cl.Run(ctx, []string{"sleep", "30"}, nil, nil)
	if lifeboat.ErrorCode(err) != lifeboat.EInterrupted || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled Run: %v after %v", err, time.Since(start))
	}
}

// TestRunSecretOnStdin: a secret given on stdin reaches the command and
// shows in no command line (remote ps, and /proc here: sshd is local).
func TestRunSecretOnStdin(t *testing.T) {
	e := mustEnv(t)
	cl := mustDial(t, e.config())
	secret := "lb-secret-" + hex.EncodeToString(randBytes(t, 16))
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		// read is a builtin and printf too (dash): the secret stays in the shell.
		done <- cl.Run(context.Background(), []string{"sh", "-c", `read -r s; sleep 2; printf %s "$s" | sha256sum`},
			strings.NewReader(secret+"\n"), &out)
	}()
	time.Sleep(500 * time.Millisecond)
	var ps bytes.Buffer
	if err := cl.Run(context.Background(), []string{"ps", "-eo", "pid,args", "ww"}, nil, &ps); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ps.String(), "sleep 2") {
		t.Errorf("remote command not seen in ps output:\n%s", ps.String())
	}
	if strings.Contains(ps.String(), secret) {
		t.Errorf("secret in remote ps output")
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("secret in %s: %q", f, b)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if !strings.HasPrefix(out.String(), hex.EncodeToString(sum[:])) {
		t.Errorf("the command did not get the secret: %q", out.String())
	}
}

func TestOpen(t *testing.T) {
	e := mustEnv(t)
	cl := mustDial(t, e.config())
	dir := sharedDir(t, e)
	data := randBytes(t, 300<<10)
	os.WriteFile(filepath.Join(dir, "f"), data, 0o644)
	r, err := cl.Open(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	_, err = cl.Open(filepath.Join(dir, "nope"))
	wantCode(t, err, lifeboat.ENotFound)
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}
