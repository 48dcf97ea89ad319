package server

import (
	"context"
	"io"

	"github.com/lifeboat-vault/lifeboat/internal/capture"
	"github.com/lifeboat-vault/lifeboat/internal/capture/postgres"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

func registerPostgres() { capture.DBDrivers[lifeboat.KindPostgres] = pgDriver{} }

type pgDriver struct{}

func pgServer(t capture.DBTarget) postgres.Server {
	return postgres.Server{Host: t.Host, Port: t.Port, User: t.User, Password: t.Password, SSLMode: t.SSLMode}
}

func (pgDriver) Ping(ctx context.Context, t capture.DBTarget) (string, error) {
	return postgres.Ping(ctx, pgServer(t))
}

func (pgDriver) Dump(ctx context.Context, t capture.DBTarget, database string, _ capture.DBDumpOptions) (io.ReadCloser, *lifeboat.DatabaseInfo, error) {
	return postgres.Dump(ctx, pgServer(t), database)
}

func (pgDriver) Globals(ctx context.Context, t capture.DBTarget) (io.ReadCloser, error) {
	return postgres.DumpGlobals(ctx, pgServer(t))
}

func (pgDriver) Restore(ctx context.Context, t capture.DBTarget, database string, r io.Reader, o capture.DBRestoreOptions) error {
	return postgres.Restore(ctx, pgServer(t), database, r, postgres.RestoreOptions{Create: o.Create, Clean: o.Clean, NoOwner: o.NoOwner})
}

func (pgDriver) Verify(ctx context.Context, t capture.DBTarget, database string, want *lifeboat.DatabaseInfo) error {
	return postgres.Verify(ctx, pgServer(t), database, want)
}

func (pgDriver) DumpName(database string) string { return database + ".pgdump" }
