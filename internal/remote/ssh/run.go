package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// ExitError is a remote command that ran and exited non-zero (or was killed
// by a signal: Status is then -1 and Signal names it).
type ExitError struct {
	Addr   string
	Name   string // argv[0]
	Status int
	Signal string
	Stderr string // the last few kB of its standard error
}

func (e *ExitError) Error() string {
	how := fmt.Sprintf("exit status %d", e.Status)
	if e.Signal != "" {
		how = "killed by signal " + e.Signal
	}
	msg := fmt.Sprintf("ssh %s: %s: %s", e.Addr, e.Name, how)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// Quote renders argv as one command line for a POSIX shell: every argument
// single-quoted, a quote inside written as '\”. The remote login shell
// therefore sees only literal words; nothing is expanded. An argument
// holding a NUL byte cannot be passed and is refused.
func Quote(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "remote command: empty argv")
	}
	var b strings.Builder
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return "", lifeboat.Errorf(lifeboat.EInvalid, "remote command %q: argument %d holds a NUL byte", argv[0], i)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// Run runs argv on the host (quoted by Quote, so no argument is ever
// interpreted by the remote shell), with stdin as its standard input (nil:
// empty) and its standard output copied to stdout (nil: discarded). Secrets
// go through stdin only, never argv: a command line is visible to every
// user of the remote host in ps and /proc/PID/cmdline.
//
// A non-zero exit is an *ExitError holding the tail of standard error.
// When ctx ends, the remote command gets SIGTERM and the session is closed
// (OpenSSH ignores signals to root's sessions: a command run as root may
// outlive a cancelled Run).
func (c *Client) Run(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
	cmd, err := Quote(argv)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return lifeboat.Errorf(lifeboat.EInterrupted, "ssh %s: %s: %w", c.addr, argv[0], context.Cause(ctx))
	}
	sess, err := c.conn.NewSession()
	if err != nil {
		return lifeboat.Errorf(lifeboat.EUnavailable, "ssh %s: new session for %s: %w", c.addr, argv[0], err)
	}
	defer sess.Close()
	stderr := &tailBuffer{max: 4096}
	sess.Stdin = stdin
	sess.Stdout = stdout
	sess.Stderr = stderr
	stop := context.AfterFunc(ctx, func() {
		sess.Signal(ssh.SIGTERM)
		sess.Close()
	})
	defer stop()
	err = sess.Run(cmd)
	if ctx.Err() != nil {
		return lifeboat.Errorf(lifeboat.EInterrupted, "ssh %s: %s: %w", c.addr, argv[0], context.Cause(ctx))
	}
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return &ExitError{Addr: c.addr, Name: argv[0], Status: ee.ExitStatus(), Signal: ee.Signal(), Stderr: stderr.String()}
	default:
		return fmt.Errorf("ssh %s: run %s: %w", c.addr, argv[0], err)
	}
}
