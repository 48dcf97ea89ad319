package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Server is a PostgreSQL server and the role to act as.
type Server struct {
	Host     string // host name or IP; a path starting with / is a unix socket directory
	Port     int    // default 5432
	User     string
	Password string // may be empty (trust, peer); reaches children only through a PGPASSFILE
	SSLMode  string // disable, allow, prefer, require, verify-ca, verify-full; default "prefer"
}

// connectTimeout bounds every connection attempt, ours and the children's.
const connectTimeout = 15 * time.Second

var sslModes = map[string]bool{
	"disable": true, "allow": true, "prefer": true, "require": true, "verify-ca": true, "verify-full": true,
}

func (s Server) port() int {
	if s.Port == 0 {
		return 5432
	}
	return s.Port
}

func (s Server) sslMode() string {
	if s.SSLMode == "" {
		return "prefer"
	}
	return s.SSLMode
}

// addr names the server in messages: host:port, [v6]:port, or the socket
// directory and port.
func (s Server) addr() string {
	if strings.HasPrefix(s.Host, "/") {
		return s.Host + ":" + strconv.Itoa(s.port())
	}
	return net.JoinHostPort(s.Host, strconv.Itoa(s.port()))
}

// where names the server and role: "postgres 127.0.0.1:5432 user app".
func (s Server) where() string {
	return "postgres " + s.addr() + " user " + s.User
}

// check validates what would otherwise reach a connection string or a
// password file.
func (s Server) check() error {
	if s.Host == "" || s.port() < 1 || s.port() > 65535 {
		return lifeboat.Errorf(lifeboat.EInvalid, "postgres server %q: host and port (1-65535) are required", s.addr())
	}
	if s.User == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "postgres server %s: user is required", s.addr())
	}
	if !sslModes[s.sslMode()] {
		return lifeboat.Errorf(lifeboat.EInvalid, "postgres server %s: sslmode %q is not one of disable, allow, prefer, require, verify-ca, verify-full", s.addr(), s.SSLMode)
	}
	for _, v := range []string{s.Host, s.User} {
		if strings.ContainsAny(v, "\x00\n\r") {
			return lifeboat.Errorf(lifeboat.EInvalid, "postgres server %s: host or user holds a control character", s.addr())
		}
	}
	// A password file holds one entry per line: a newline cannot be written.
	if strings.ContainsAny(s.Password, "\x00\n\r") {
		return lifeboat.Errorf(lifeboat.EInvalid, "%s: the password holds a NUL or newline, which PostgreSQL's tools cannot read from a password file", s.where())
	}
	return nil
}

// quote quotes a value for a keyword/value connection string.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// conninfo is the connection string of database without the password
// (children read theirs from PGPASSFILE; sslmode and the timeout come from
// their environment).
func (s Server) conninfo(database string) string {
	c := fmt.Sprintf("host=%s port=%d user=%s application_name=lifeboat", quote(s.Host), s.port(), quote(s.User))
	if database != "" {
		c += " dbname=" + quote(database)
	}
	return c
}

// redact removes the password from text that came from a server or a tool.
func (s Server) redact(text string) string {
	if s.Password == "" {
		return text
	}
	return strings.ReplaceAll(text, s.Password, "[redacted]")
}

// connect opens a pgx connection to database. Every failure is a
// *lifeboat.Error naming the server (never the password).
func connect(ctx context.Context, s Server, database string) (*pgx.Conn, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if database == "" {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s: no database named", s.where())
	}
	cfg, err := pgx.ParseConfig(s.conninfo(database) + " sslmode=" + s.sslMode() +
		" connect_timeout=" + strconv.Itoa(int(connectTimeout/time.Second)))
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s: %s", s.where(), s.redact(err.Error()))
	}
	// Exactly the password we were given: never one from the process's
	// PGPASSWORD or PGPASSFILE.
	cfg.Password = s.Password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, s.connectError(ctx, database, err)
	}
	return conn, nil
}

// connectError classifies a connection failure.
func (s Server) connectError(ctx context.Context, database string, err error) error {
	if ctx.Err() != nil {
		return &lifeboat.Error{Code: lifeboat.EInterrupted, Message: fmt.Sprintf("%s: %v", s.where(), context.Cause(ctx)), Err: ctx.Err()}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "28P01":
			return &lifeboat.Error{Code: lifeboat.EAuth, Message: s.where() + ": password authentication failed", Err: err}
		case strings.HasPrefix(pe.Code, "28"): // pg_hba.conf refusal, role cannot log in...
			return &lifeboat.Error{Code: lifeboat.EAuth, Message: s.where() + ": " + s.redact(pe.Message), Err: err}
		case pe.Code == "3D000":
			return &lifeboat.Error{Code: lifeboat.ENotFound, Message: fmt.Sprintf("%s: database %q does not exist", s.where(), database), Err: err}
		case pe.Code == "42501":
			return &lifeboat.Error{Code: lifeboat.EForbidden, Message: s.where() + ": " + s.redact(pe.Message), Err: err}
		}
		return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: s.where() + ": " + s.redact(pe.Message), Err: err}
	}
	msg := err.Error()
	var ce *pgconn.ConnectError
	var oe *net.OpError
	switch {
	case errors.As(err, &oe): // "connect: connection refused", "lookup db: no such host"
		msg = strings.TrimPrefix(oe.Err.Error(), "connect: ")
	case errors.As(err, &ce) && ce.Unwrap() != nil:
		msg = ce.Unwrap().Error()
	}
	return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: fmt.Sprintf("%s: cannot connect: %s", s.where(), s.redact(msg)), Err: err}
}

// queryError wraps a failed statement of op.
func (s Server) queryError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return &lifeboat.Error{Code: lifeboat.EInterrupted, Message: fmt.Sprintf("%s: %s: %v", s.where(), op, context.Cause(ctx)), Err: ctx.Err()}
	}
	code := lifeboat.EInternal
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		code = lifeboat.EForbidden
	}
	return &lifeboat.Error{Code: code, Message: fmt.Sprintf("%s: %s: %s", s.where(), op, s.redact(err.Error())), Err: err}
}

// connectAdmin connects to a database that exists on every cluster:
// postgres, else template1.
func connectAdmin(ctx context.Context, s Server) (*pgx.Conn, error) {
	conn, err := connect(ctx, s, "postgres")
	if lifeboat.ErrorCode(err) == lifeboat.ENotFound {
		conn, err = connect(ctx, s, "template1")
	}
	return conn, err
}

// serverVersion returns the server's version as "15.20" (or "9.6.24") and
// as a number (150020).
func serverVersion(ctx context.Context, conn *pgx.Conn) (string, int, error) {
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return "", 0, err
	}
	return versionString(num), num, nil
}

func versionString(num int) string {
	if num >= 100000 {
		return fmt.Sprintf("%d.%d", num/10000, num%10000)
	}
	return fmt.Sprintf("%d.%d.%d", num/10000, num/100%100, num%100)
}

// major is the major version of a version number: 1500 for 15.x, 906 for
// 9.6.x.
func major(num int) int {
	if num >= 100000 {
		return num / 10000 * 100
	}
	return num / 100
}

// majorString is the major version as PostgreSQL names its packages: "15", "9.6".
func majorString(num int) string {
	if num >= 100000 {
		return strconv.Itoa(num / 10000)
	}
	return fmt.Sprintf("%d.%d", num/10000, num/100%100)
}

// Ping connects and returns the server's version (e.g. "15.20").
func Ping(ctx context.Context, s Server) (string, error) {
	conn, err := connectAdmin(ctx, s)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	v, _, err := serverVersion(ctx, conn)
	if err != nil {
		return "", s.queryError(ctx, "server version", err)
	}
	return v, nil
}
