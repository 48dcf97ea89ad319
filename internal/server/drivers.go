package server

import (
	"context"
	"io"
	"sync"

	"github.com/lifeboat-vault/lifeboat/internal/capture"
	"github.com/lifeboat-vault/lifeboat/internal/capture/mysql"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

var driversOnce sync.Once

// registerDrivers plugs the database engines into capture: one explicit
// registration (STYLE.md), once per process.
func registerDrivers() {
	driversOnce.Do(func() {
		capture.DBDrivers[lifeboat.KindMySQL] = mysqlDriver{}
		registerPostgres()
	})
}

type mysqlDriver struct{}

func mysqlServer(t capture.DBTarget) mysql.Server {
	return mysql.Server{Host: t.Host, Port: t.Port, User: t.User, Password: t.Password, TLS: mysqlTLS(t.SSLMode)}
}

// mysqlTLS maps a server's sslMode to the client's TLS mode: require is
// verify (the MariaDB client cannot insist on TLS without verifying).
func mysqlTLS(sslMode string) string {
	if sslMode == "require" {
		return mysql.TLSVerify
	}
	return sslMode
}

func (mysqlDriver) Ping(ctx context.Context, t capture.DBTarget) (string, error) {
	return mysql.Ping(ctx, mysqlServer(t))
}

func (mysqlDriver) Dump(ctx context.Context, t capture.DBTarget, database string, o capture.DBDumpOptions) (io.ReadCloser, *lifeboat.DatabaseInfo, error) {
	return mysql.Dump(ctx, mysqlServer(t), database, mysql.DumpOptions{LockNonTransactional: o.LockNonTransactional})
}

// Globals: the server's accounts, roles and grants.
func (mysqlDriver) Globals(ctx context.Context, t capture.DBTarget) (io.ReadCloser, error) {
	return mysql.DumpGlobals(ctx, mysqlServer(t))
}

func (mysqlDriver) Restore(ctx context.Context, t capture.DBTarget, database string, r io.Reader, o capture.DBRestoreOptions) error {
	return mysql.Restore(ctx, mysqlServer(t), database, r, mysql.RestoreOptions{Create: o.Create})
}

func (mysqlDriver) Verify(ctx context.Context, t capture.DBTarget, database string, want *lifeboat.DatabaseInfo) error {
	return mysql.Verify(ctx, mysqlServer(t), database, want)
}

func (mysqlDriver) DumpName(database string) string { return database + ".sql" }
