package mysql

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Server is a MySQL or MariaDB server reached over TCP.
type Server struct {
	Host     string
	Port     int
	User     string
	Password string
	// TLS is one of the TLS modes below.
	TLS string
}

// TLS modes of a Server.
const (
	// TLSAuto: TLS with the certificate verified where the server offers
	// TLS, plain where it offers none (a server with a certificate that
	// cannot be verified is refused: choose TLSPrefer or TLSDisable).
	TLSAuto    = ""
	TLSDisable = "disable"
	TLSPrefer  = "prefer" // TLS where offered, the certificate not verified
	TLSVerify  = "verify" // TLS required and the certificate verified
)

func (s Server) addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// debianPackage provides the client tools on Debian.
const debianPackage = "mariadb-client"

// lookPath finds a client tool; tests replace it.
var lookPath = exec.LookPath

// childPath is the whole PATH a child gets (its own path is absolute).
const childPath = "/usr/local/bin:/usr/bin:/bin"

// tool returns the absolute path of the first of names found in PATH.
func tool(names ...string) (string, error) {
	for _, n := range names {
		if p, err := lookPath(n); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs, nil
			}
			return p, nil
		}
	}
	return "", lifeboat.Errorf(lifeboat.EInvalid, "mysql client tool %s not found in PATH (install the Debian package %s)",
		strings.Join(names, " or "), debianPackage)
}

// conn holds what every child needs: the tools and a private directory
// with the option file that carries the credentials. A password reaches a
// child only through that file (0600, in a 0700 directory, removed by
// close): never argv, never the environment.
type conn struct {
	s      Server
	dir    string
	cnf    string
	client string // mariadb or mysql
}

func newConn(ctx context.Context, s Server) (*conn, error) {
	if s.Host == "" || s.Port <= 0 || s.Port > 65535 {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "mysql server %q: host and port (1-65535) are required", s.addr())
	}
	client, err := tool("mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	for _, v := range []string{s.Host, s.User, s.Password} {
		if strings.ContainsRune(v, 0) {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "mysql server %s: host, user or password holds a NUL byte", s.addr())
		}
	}
	dir, err := os.MkdirTemp("", "lifeboat-mysql-") // 0700
	if err != nil {
		return nil, fmt.Errorf("mysql: private directory: %w", err)
	}
	c := &conn{s: s, dir: dir, cnf: filepath.Join(dir, "client.cnf"), client: client}
	if err := os.Chmod(dir, 0o700); err != nil {
		c.close()
		return nil, fmt.Errorf("mysql: private directory: %w", err)
	}
	tls := s.TLS
	if tls == TLSAuto {
		tls = TLSVerify
	}
	if err := c.writeOptions(tls); err != nil {
		c.close()
		return nil, err
	}
	if s.TLS == TLSAuto {
		// Verified TLS first; plain only if the server offers no TLS at all
		// (the client says so before sending any credential).
		_, err := c.query(ctx, "connect", "SELECT 1;\n")
		if err != nil && strings.Contains(err.Error(), "server does not support it") {
			os.Remove(c.cnf)
			err = c.writeOptions(TLSDisable)
		}
		if err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// writeOptions writes the option file for TLS mode tls.
func (c *conn) writeOptions(tls string) error {
	s := c.s
	var b strings.Builder
	b.WriteString("[client]\n")
	fmt.Fprintf(&b, "host=%s\n", optionValue(s.Host))
	fmt.Fprintf(&b, "port=%d\n", s.Port)
	b.WriteString("protocol=TCP\n") // "localhost" must not mean the local socket
	if s.User != "" {
		fmt.Fprintf(&b, "user=%s\n", optionValue(s.User))
	}
	fmt.Fprintf(&b, "password=%s\n", optionValue(s.Password))
	switch tls {
	case TLSVerify:
		b.WriteString("ssl\nssl-verify-server-cert\n")
	case TLSPrefer:
		b.WriteString("ssl\n")
	case TLSDisable:
		b.WriteString("skip-ssl\n")
	default:
		return lifeboat.Errorf(lifeboat.EInvalid, "mysql server %s: TLS mode %q: want disable, prefer or verify", s.addr(), tls)
	}
	b.WriteString("[mysql]\nconnect-timeout=15\n") // the client only; the dump tool does not know it
	f, err := os.OpenFile(c.cnf, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(b.String())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("mysql: option file: %w", err)
	}
	return nil
}

func (c *conn) close() { os.RemoveAll(c.dir) }

// optionValue quotes v for an option file: the reader strips one pair of
// surrounding quotes and turns \\, \n, \r, \t back into their bytes.
func optionValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(v) + `"`
}

// command builds a child: --defaults-file first (the only option file it
// reads, so neither /etc/mysql nor ~/.my.cnf can override what we pass), a
// minimal environment, killed when ctx ends.
func (c *conn) command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, append([]string{"--defaults-file=" + c.cnf}, args...)...)
	cmd.Env = childEnv(c.dir)
	cmd.Dir = c.dir
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func childEnv(home string) []string {
	return []string{"PATH=" + childPath, "HOME=" + home, "LC_ALL=C"}
}

// query runs sql through the client in batch mode (tab-separated rows, no
// header) and returns its output. sql goes through stdin.
func (c *conn) query(ctx context.Context, op, sql string) ([]byte, error) {
	cmd := c.command(ctx, c.client, "--batch", "--skip-column-names", "--default-character-set=utf8mb4")
	cmd.Stdin = strings.NewReader(sql)
	var out bytes.Buffer
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout = &out
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return nil, c.fail(ctx, op, stderr.String(), err)
	}
	return out.Bytes(), nil
}

// queryForce runs sql like query but goes on past a failing statement
// (--force), and fails only if one failed with an error that allowed does
// not accept (or the client's messages pass 1 MiB, or it failed without
// saying which statement): the output is then that of the statements that
// ran, and failed the error lines of the others. Other lines on stderr
// (warnings) are not failures.
func (c *conn) queryForce(ctx context.Context, op, sql string, allowed func(num int) bool) (out []byte, failed []string, err error) {
	cmd := c.command(ctx, c.client, "--batch", "--skip-column-names", "--default-character-set=utf8mb4", "--force")
	cmd.Stdin = strings.NewReader(sql)
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 1 << 20}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	err = cmd.Run()
	// With --force the client exits 0 after failed statements: its
	// error lines say.
	failed, ok := errorLines(stderr.String(), allowed)
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil || len(stderr.b) >= stderr.max:
	case err == nil && ok:
		return stdout.Bytes(), failed, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1 && ok && len(failed) > 0:
		// Status 1, not a signal or a crash: it went through the script.
		return stdout.Bytes(), failed, nil
	}
	if err == nil {
		err = errors.New("statements failed")
	}
	return nil, nil, c.fail(ctx, op, stderr.String(), err)
}

// errorLines returns the client's error lines ("ERROR 1141 (42000) at line
// 4: ...") in stderr, and whether allowed accepts every one of them.
func errorLines(stderr string, allowed func(num int) bool) (lines []string, ok bool) {
	ok = true
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "ERROR ") {
			continue
		}
		lines = append(lines, line)
		m := errNumber.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			ok = false
			continue
		}
		if num, _ := strconv.Atoi(m[1] + m[2]); !allowed(num) {
			ok = false
		}
	}
	return lines, ok
}

// rows splits batch output into rows of fields.
func rows(out []byte) [][]string {
	var rs [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			rs = append(rs, strings.Split(line, "\t"))
		}
	}
	return rs
}

// errNumber finds the server or client error number in a tool's message:
// "ERROR 1045 (28000): ...", "Got error: 2002: ...", "Error 1412: ...",
// "...: msg (1146)".
var errNumber = regexp.MustCompile(`(?:ERROR |Error |Got error: )(\d{4})\b|\((\d{4})\)\s*$`)

// Error numbers, grouped by what they mean for the caller.
var (
	authErrors        = map[int]bool{1045: true, 1698: true, 1251: true, 1862: true}
	forbiddenErrors   = map[int]bool{1044: true, 1142: true, 1143: true, 1227: true, 1370: true}
	unavailableErrors = map[int]bool{2002: true, 2003: true, 2005: true, 2006: true, 2013: true, 2026: true, 2055: true, 1040: true, 1129: true}
	notFoundErrors    = map[int]bool{1049: true}
	existsErrors      = map[int]bool{1007: true}
)

// fail turns a child's failure into a *lifeboat.Error naming the server.
func (c *conn) fail(ctx context.Context, op, stderr string, err error) error {
	if ctx.Err() != nil {
		return &lifeboat.Error{Code: lifeboat.EInterrupted, Message: fmt.Sprintf("mysql %s on %s: %v", op, c.s.addr(), context.Cause(ctx)), Err: ctx.Err()}
	}
	msg := c.redact(lastLines(stderr, 3))
	if msg == "" {
		msg = err.Error()
	}
	num := 0
	for _, line := range strings.Split(stderr, "\n") {
		if m := errNumber.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			num, _ = strconv.Atoi(m[1] + m[2])
			break
		}
	}
	code := lifeboat.EInternal
	switch {
	case authErrors[num]:
		code = lifeboat.EAuth
	case forbiddenErrors[num]:
		code = lifeboat.EForbidden
	case unavailableErrors[num]:
		code = lifeboat.EUnavailable
	case notFoundErrors[num]:
		code = lifeboat.ENotFound
	case existsErrors[num]:
		code = lifeboat.EExists
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		code = lifeboat.EInternal // could not run at all
	}
	return &lifeboat.Error{Code: code, Message: fmt.Sprintf("mysql %s on %s: %s", op, c.s.addr(), msg), Err: err}
}

// redact removes the password from text a tool printed, in case a tool
// ever echoes it.
func (c *conn) redact(s string) string {
	if c.s.Password != "" {
		s = strings.ReplaceAll(s, c.s.Password, "[redacted]")
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// tailBuffer keeps the last max bytes written to it (a child's stderr).
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// quoteIdent quotes a MySQL identifier with backticks (valid in every
// sql_mode).
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// hexLiteral is s as a binary string literal, for comparing names without
// quoting or escaping rules: CAST(col AS BINARY) = X'...'.
func hexLiteral(s string) string { return fmt.Sprintf("X'%x'", s) }

// unhex decodes a HEX() field.
func unhex(s string) (string, error) {
	b, err := hex.DecodeString(s)
	return string(b), err
}

// toolVersion returns the first line of `path --version`.
func toolVersion(ctx context.Context, home, path string) string {
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = childEnv(home)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// Ping connects to s and returns the server's version, e.g.
// "10.11.14-MariaDB".
func Ping(ctx context.Context, s Server) (string, error) {
	c, err := newConn(ctx, s)
	if err != nil {
		return "", err
	}
	defer c.close()
	out, err := c.query(ctx, "ping", "SELECT VERSION();\n")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

var _ io.Writer = (*tailBuffer)(nil)
