package capture

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// DBTarget is how to reach a registered database server (the password
// unsealed for the length of one job; never logged).
type DBTarget struct {
	Server   string // its registered name, for messages
	Host     string
	Port     int
	User     string
	Password string
	SSLMode  string
	// Where the server is as registered (host:port), for messages and
	// manifests when Host/Port are a tunnel's local end.
	Registered string
	closers    *[]func()
}

// OnClose adds something to undo when the target is no longer needed (an
// SSH tunnel).
func (t *DBTarget) OnClose(f func()) {
	if t.closers == nil {
		t.closers = new([]func())
	}
	*t.closers = append(*t.closers, f)
}

// Close undoes what OnClose recorded.
func (t DBTarget) Close() {
	if t.closers == nil {
		return
	}
	for _, f := range *t.closers {
		f()
	}
	*t.closers = nil
}

// Where names a target for messages and manifests: never the password.
func (t DBTarget) Where(database string) string {
	if t.Registered != "" {
		return t.User + "@" + t.Registered + "/" + database
	}
	return t.User + "@" + t.Host + ":" + strconv.Itoa(t.Port) + "/" + database
}

// DBDumpOptions select what a dump takes.
type DBDumpOptions struct {
	// LockNonTransactional locks non-transactional (MyISAM...) tables for
	// the dump instead of reporting them (MySQL).
	LockNonTransactional bool
}

// DBRestoreOptions are the restore options that matter.
type DBRestoreOptions struct {
	Create  bool // create the database (it must not exist)
	Clean   bool // drop the objects of the dump before recreating them
	NoOwner bool // do not restore ownership and privileges
	// Starting, if set, runs once the dump is readable, right before the
	// engine's tool starts changing the database; its error stops the
	// restore there, nothing changed.
	Starting func() error
}

// DBDriver captures and restores one database engine through its own tools
// (pg_dump, mariadb-dump...), with consistent snapshots.
type DBDriver interface {
	Ping(ctx context.Context, t DBTarget) (version string, err error)
	// Dump returns the dump's stream; Close reports the tool's failure.
	Dump(ctx context.Context, t DBTarget, database string, o DBDumpOptions) (io.ReadCloser, *lifeboat.DatabaseInfo, error)
	// Globals returns the server's roles and other cluster-wide objects as
	// SQL (nil, nil where the engine has none to dump).
	Globals(ctx context.Context, t DBTarget) (io.ReadCloser, error)
	Restore(ctx context.Context, t DBTarget, database string, dump io.Reader, o DBRestoreOptions) error
	Verify(ctx context.Context, t DBTarget, database string, want *lifeboat.DatabaseInfo) error
	// DumpName is the dump's file name in the component ("shop.pgdump").
	DumpName(database string) string
}

// DBDrivers are the database engines, by component kind; the server sets
// them (one explicit registration, STYLE.md).
var DBDrivers = map[string]DBDriver{}

func dbDriver(kind string) (DBDriver, error) {
	d := DBDrivers[kind]
	if d == nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "no driver for %s databases in this build", kind)
	}
	return d, nil
}

// stageDB makes a database component a stream component: the dump is
// produced while the backup runs, straight into the vault, and its
// description (engine, versions, row counts of the dump's snapshot) goes in
// the manifest.
func stageDB(c *lifeboat.Component, t DBTarget) (vault.Source, error) {
	d, err := dbDriver(c.Kind)
	if err != nil {
		return vault.Source{}, err
	}
	var info *lifeboat.DatabaseInfo
	streams := []vault.Stream{{
		Name: d.DumpName(c.Database),
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			rc, inf, err := d.Dump(ctx, t, c.Database, DBDumpOptions{LockNonTransactional: c.LockTables})
			if err != nil {
				return nil, err
			}
			info = inf
			return rc, nil
		},
	}}
	if c.Globals {
		streams = append(streams, vault.Stream{Name: "globals.sql", Open: func(ctx context.Context) (io.ReadCloser, error) {
			rc, err := d.Globals(ctx, t)
			if err == nil && rc == nil {
				rc = io.NopCloser(strings.NewReader("-- this engine has no cluster-wide objects to dump\n"))
			}
			return rc, err
		}})
	}
	return vault.Source{
		Name: c.Name, Kind: c.Kind, Describe: c.Kind + "://" + t.Where(c.Database),
		Meta: func() []byte {
			if info == nil {
				return nil
			}
			b, _ := json.Marshal(info)
			return b
		},
		Streams: streams,
	}, nil
}

// dumpNode finds the dump file of a database component in a point.
func dumpNode(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component) (*tree.Node, error) {
	n, err := v.Lookup(ctx, p, c.Name)
	if err != nil {
		return nil, err
	}
	t, err := v.LoadTree(ctx, *n.Subtree)
	if err != nil {
		return nil, err
	}
	for _, f := range t.Nodes {
		if f.Type == tree.File && f.Name != "globals.sql" {
			return f, nil
		}
	}
	return nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s, component %s: no dump in it", p.ID[:8], c.Name)
}

// RestoreDB restores database component c of point p into database on the
// target server, streaming the dump from the vault into the engine's
// restore tool, then checks the restored database's row counts against the
// point's.
func RestoreDB(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, t DBTarget, database string, o DBRestoreOptions) (*lifeboat.DatabaseInfo, error) {
	d, err := dbDriver(c.Kind)
	if err != nil {
		return nil, err
	}
	n, err := dumpNode(ctx, v, p, c)
	if err != nil {
		return nil, err
	}
	f, err := v.OpenFile(ctx, n)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	if o.Starting != nil {
		if _, err := r.Peek(1); err != nil && err != io.EOF { // the vault answers
			return nil, err
		}
		if err := o.Starting(); err != nil {
			return nil, err
		}
	}
	if err := d.Restore(ctx, t, database, r, o); err != nil {
		return nil, fmt.Errorf("restore of %s into %s: %w", c.Name, t.Where(database), err)
	}
	var want lifeboat.DatabaseInfo
	if len(c.Meta) > 0 && json.Unmarshal(c.Meta, &want) == nil {
		if err := d.Verify(ctx, t, database, &want); err != nil {
			return &want, fmt.Errorf("restored %s into %s, but it differs from the point: %w", c.Name, t.Where(database), err)
		}
	}
	return &want, nil
}
