package catalog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/lifeboat-vault/lifeboat/internal/catalog/migrations"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Errors of the contract.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrLeaseLost = errors.New("job lease lost")
)

// DB is an open catalog.
type DB struct {
	db      *sql.DB
	dialect string
	where   string // for messages: a file path or host/database, never a password
	// Now is the server's clock.
	Now func() time.Time
}

// Open opens (creating and migrating) the catalog named by dsn: a
// postgres:// or postgresql:// URL, or a SQLite file path (optionally
// sqlite:// or file:). A PostgreSQL password comes from the URL's
// environment (PGPASSWORD, PGPASSFILE), never the command line.
func Open(ctx context.Context, dsn string) (*DB, error) {
	d := &DB{Now: time.Now}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		d.dialect = Postgres
		u, perr := url.Parse(dsn)
		if perr != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "catalog: invalid PostgreSQL URL")
		}
		if _, ok := u.User.Password(); ok {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "catalog: put the PostgreSQL password in PGPASSWORD or a 0600 PGPASSFILE, not in the URL")
		}
		d.where = "postgres://" + u.Host + u.Path
		d.db, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		d.db.SetMaxOpenConns(16)
	default:
		d.dialect = SQLite
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "file:")
		if path == "" {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "catalog: empty path")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, lifeboat.Errorf(lifeboat.EUnavailable, "catalog %s: %v", path, err)
		}
		d.where = path
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		d.db, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, err
		}
		// One connection: SQLite has one writer, and a single connection
		// makes "database is locked" impossible inside this process.
		d.db.SetMaxOpenConns(1)
	}
	if err := d.db.PingContext(ctx); err != nil {
		d.db.Close()
		return nil, lifeboat.Errorf(lifeboat.EUnavailable, "catalog %s: %v", d.where, redactDSN(err, dsn))
	}
	if err := d.migrate(ctx); err != nil {
		d.db.Close()
		return nil, err
	}
	if err := d.chainUnchained(ctx); err != nil {
		d.db.Close()
		return nil, err
	}
	return d, nil
}

func redactDSN(err error, dsn string) string {
	return strings.ReplaceAll(err.Error(), dsn, "<dsn>")
}

func (d *DB) migrate(ctx context.Context) error {
	dialect := goose.DialectSQLite3
	if d.dialect == Postgres {
		dialect = goose.DialectPostgres
	}
	p, err := goose.NewProvider(dialect, d.db, migrations.FS)
	if err != nil {
		return fmt.Errorf("catalog migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return lifeboat.Errorf(lifeboat.EUnavailable, "catalog %s: migrate: %v", d.where, err)
	}
	return nil
}

// Dialect returns SQLite or Postgres.
func (d *DB) Dialect() string { return d.dialect }

// Where names the catalog for messages (never a password).
func (d *DB) Where() string { return d.where }

// Close closes the catalog.
func (d *DB) Close() error { return d.db.Close() }

// Ping checks the catalog answers.
func (d *DB) Ping(ctx context.Context) error { return d.db.PingContext(ctx) }

// Tx is a catalog transaction.
type Tx struct {
	tx  *sql.Tx
	d   *DB
	now time.Time
}

// Now is the time of the transaction (the server's clock, read once).
func (t *Tx) Now() time.Time { return t.now }

// Update runs fn in a read-write transaction and commits if it returns nil.
func (d *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return d.unavailable(err)
	}
	t := &Tx{tx: tx, d: d, now: d.Now()}
	if err := fn(t); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return d.unavailable(err)
	}
	return nil
}

// View runs fn in a transaction that is rolled back.
func (d *DB) View(ctx context.Context, fn func(*Tx) error) error {
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: d.dialect == Postgres})
	if err != nil {
		return d.unavailable(err)
	}
	defer tx.Rollback()
	return fn(&Tx{tx: tx, d: d, now: d.Now()})
}

func (d *DB) unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return lifeboat.Errorf(lifeboat.EUnavailable, "catalog %s: %v", d.where, err)
}

// rebind turns ? placeholders into $1, $2... for PostgreSQL.
func (d *DB) rebind(q string) string {
	if d.dialect != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r, err := t.tx.ExecContext(ctx, t.d.rebind(q), args...)
	if err != nil {
		return nil, t.wrap(err)
	}
	return r, nil
}

func (t *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	r, err := t.tx.QueryContext(ctx, t.d.rebind(q), args...)
	if err != nil {
		return nil, t.wrap(err)
	}
	return r, nil
}

func (t *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.d.rebind(q), args...)
}

func (t *Tx) wrap(err error) error {
	if isUnique(err) {
		return ErrExists
	}
	return t.d.unavailable(err)
}

func isUnique(err error) bool {
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}

func rowErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// ns converts a time to the stored form.
func ns(t time.Time) int64 { return t.UnixNano() }

func nsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func fromNS(v int64) time.Time { return time.Unix(0, v).UTC() }

func fromNullNS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromNS(v.Int64)
	return &t
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// NewID returns a random 16-byte hex id prefixed so that ids sort by time.
func NewID(now time.Time) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%013x", now.UnixMilli()) + hex.EncodeToString(b[:])
}

// Page asks for one page of a list: up to Limit items after the cursor.
type Page struct {
	After string
	Limit int
}

func (p Page) limit() int {
	if p.Limit <= 0 || p.Limit > 1000 {
		return 100
	}
	return p.Limit
}

// nullStr stores "" as NULL.
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}
