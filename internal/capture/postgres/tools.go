package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// BinDir, when set, is the only directory the client tools (pg_dump,
// pg_restore, pg_dumpall) are looked up in. When empty they are looked up
// in Debian's versioned directories (/usr/lib/postgresql/N/bin, newest
// first: /usr/bin/pg_dump is only pg_wrapper) and then in PATH. Tests point
// it elsewhere; set it before any capture runs.
var BinDir string

// libDirs is the glob of Debian's versioned tool directories.
const libDirs = "/usr/lib/postgresql/*/bin"

// childPath is the whole PATH a child gets (its own path is absolute).
const childPath = "/usr/local/bin:/usr/bin:/bin"

// tool returns the absolute path of a client tool. serverNum, when known,
// names the package to install in the error.
func tool(name string, serverNum int) (string, error) {
	var dirs []string
	if BinDir != "" {
		dirs = []string{BinDir}
	} else {
		found, _ := filepath.Glob(libDirs)
		sort.Slice(found, func(i, j int) bool { return versionLess(found[j], found[i]) })
		dirs = found
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if BinDir == "" {
		if p, err := exec.LookPath(name); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs, nil
			}
		}
	}
	where := "PATH or " + libDirs
	if BinDir != "" {
		where = BinDir
	}
	pkg := "postgresql-client"
	if serverNum > 0 {
		pkg += "-" + majorString(serverNum)
	}
	return "", lifeboat.Errorf(lifeboat.EInvalid, "%s not found in %s: install it (apt-get install %s)", name, where, pkg)
}

// versionLess orders /usr/lib/postgresql/9.6/bin before .../15/bin.
func versionLess(a, b string) bool {
	va, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(a)), 64)
	vb, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(b)), 64)
	return va < vb
}

var toolVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?(?:\.(\d+))?`)

// toolVersion runs `path --version` and returns "15.20" and 150020.
func toolVersion(ctx context.Context, path string) (string, int, error) {
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = []string{"PATH=" + childPath, "LC_ALL=C"}
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	name := filepath.Base(path)
	if err != nil {
		return "", 0, lifeboat.Errorf(lifeboat.EInvalid, "%s --version: %v", path, err)
	}
	m := toolVersionRE.FindSubmatch(out)
	if m == nil {
		return "", 0, lifeboat.Errorf(lifeboat.EInvalid, "%s --version: unexpected output %q", name, firstLine(string(out)))
	}
	a, _ := strconv.Atoi(string(m[1]))
	b, _ := strconv.Atoi(string(m[2]))
	c, _ := strconv.Atoi(string(m[3]))
	if a >= 10 {
		return fmt.Sprintf("%d.%d", a, b), a*10000 + b, nil
	}
	return fmt.Sprintf("%d.%d.%d", a, b, c), a*10000 + b*100 + c, nil
}

// checkedTool finds a tool and checks that it can talk to a server of
// version serverNum: pg_dump and pg_dumpall refuse servers of a newer major
// version, so that is refused here first, with the package to install.
func checkedTool(ctx context.Context, name string, serverNum int) (string, string, error) {
	path, err := tool(name, serverNum)
	if err != nil {
		return "", "", err
	}
	v, num, err := toolVersion(ctx, path)
	if err != nil {
		return "", "", err
	}
	if major(num) < major(serverNum) {
		return "", "", lifeboat.Errorf(lifeboat.EInvalid, "%s %s is older than the server (%s): install postgresql-client-%s",
			name, v, versionString(serverNum), majorString(serverNum))
	}
	return path, v, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// creds is a private directory holding the password file children read.
// The password reaches a child through that file only (0600, in a 0700
// directory, removed by close): never argv, never the environment.
type creds struct {
	dir     string
	passfil string
}

func newCreds(s Server) (*creds, error) {
	dir, err := os.MkdirTemp("", "lifeboat-pg-") // 0700
	if err != nil {
		return nil, fmt.Errorf("postgres: private directory: %w", err)
	}
	c := &creds{dir: dir, passfil: filepath.Join(dir, "pgpass")}
	if err := os.Chmod(dir, 0o700); err != nil {
		c.close()
		return nil, fmt.Errorf("postgres: private directory: %w", err)
	}
	// One entry matching every host, port, database and user: the child
	// connects only where its connection string says.
	var line string
	if s.Password != "" {
		line = "*:*:*:*:" + strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s.Password) + "\n"
	}
	f, err := os.OpenFile(c.passfil, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("postgres: password file: %w", err)
	}
	return c, nil
}

func (c *creds) close() { os.RemoveAll(c.dir) }

// command builds a child: a minimal environment (so PGPASSWORD, PGSERVICE
// and friends of this process never reach it), run in the private
// directory, killed when ctx ends.
func (c *creds) command(ctx context.Context, s Server, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{
		"PATH=" + childPath,
		"PGPASSFILE=" + c.passfil,
		"PGSSLMODE=" + s.sslMode(),
		"PGCONNECT_TIMEOUT=" + strconv.Itoa(int(connectTimeout/time.Second)),
		"LC_ALL=C",
	}
	cmd.Dir = c.dir
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// tail keeps the last bytes written to it (a child's stderr).
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lastLines returns the last n non-empty lines of s, joined by "; ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// childError turns a child's failure into a *lifeboat.Error naming what ran
// where, with the last lines of its stderr (the password redacted).
func childError(ctx context.Context, s Server, what string, stderr string, err error) error {
	if ctx.Err() != nil {
		return &lifeboat.Error{Code: lifeboat.EInterrupted, Message: fmt.Sprintf("%s: %v", what, context.Cause(ctx)), Err: ctx.Err()}
	}
	msg := s.redact(lastLines(stderr, 4))
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if msg == "" {
			msg = ee.String()
		} else {
			msg = ee.String() + ": " + msg
		}
	} else if msg == "" {
		msg = s.redact(err.Error())
	}
	low := strings.ToLower(stderr)
	code := lifeboat.EInternal
	switch {
	case strings.Contains(low, "password authentication failed"), strings.Contains(low, "no password supplied"),
		strings.Contains(low, "no pg_hba.conf entry"):
		code = lifeboat.EAuth
	case strings.Contains(low, "connection refused"), strings.Contains(low, "could not connect"),
		strings.Contains(low, "could not translate host name"), strings.Contains(low, "timeout expired"):
		code = lifeboat.EUnavailable
	case strings.Contains(low, "already exists"):
		code = lifeboat.EExists
	case strings.Contains(low, "permission denied"):
		code = lifeboat.EForbidden
	case strings.Contains(low, "does not appear to be a valid archive"), strings.Contains(low, "did not find magic string"),
		strings.Contains(low, "unexpected end of file"):
		code = lifeboat.ECorrupt
	}
	return &lifeboat.Error{Code: code, Message: what + ": " + msg, Err: err}
}
