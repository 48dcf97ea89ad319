// Package sqlite captures and restores live SQLite databases.
//
// Capture uses SQLite's online backup API in one step: a read transaction
// copies every page into a new file. In WAL mode readers never block
// writers, so the app keeps writing; in rollback-journal mode writers wait
// (busy timeout) for the length of the copy only. The copy is the database
// as of one instant; its row counts, taken from the copy, describe exactly
// that instant.
//
// Restore has two modes. Stopped (the app is not running): the database is
// written to a temporary file next to the target, fsynced, the old -wal and
// -shm files removed, then renamed into place. Live (the app runs): the
// restored copy is written into the live database through the backup API,
// under SQLite's own locking — never a rename under a process that holds
// the old file open.
//
// sqlite imports lifeboat only (and the pure-Go driver modernc.org/sqlite).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	sqlite3 "modernc.org/sqlite"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

type backuper interface {
	NewBackup(dstURI string) (*sqlite3.Backup, error)
	NewRestore(srcURI string) (*sqlite3.Backup, error)
}

func open(path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if readOnly {
		q.Set("mode", "ro")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// Snapshot copies the live database at src into dst (which must not exist)
// and describes the copy.
func Snapshot(ctx context.Context, src, dst string) (*lifeboat.DatabaseInfo, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "sqlite database %s: %v", src, unwrap(err))
	}
	if !st.Mode().IsRegular() {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "sqlite database %s is not a regular file", src)
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("snapshot target %s exists", dst)
	}
	db, err := open(src, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := checkHeader(src); err != nil {
		return nil, err
	}
	err = rawConn(ctx, db, func(b backuper) error {
		bk, err := b.NewBackup("file:" + dst)
		if err != nil {
			return err
		}
		if _, err := bk.Step(-1); err != nil {
			bk.Finish()
			return err
		}
		return bk.Finish()
	})
	if err != nil {
		os.Remove(dst)
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "sqlite database %s: backup: %v", src, err)
	}
	info, err := Describe(ctx, dst)
	if err != nil {
		os.Remove(dst)
		return nil, err
	}
	info.Database = src
	return info, nil
}

// rawConn runs fn with the driver connection of one pooled connection.
func rawConn(ctx context.Context, db *sql.DB, fn func(b backuper) error) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		b, ok := dc.(backuper)
		if !ok {
			return fmt.Errorf("sqlite driver without the backup API (%T)", dc)
		}
		return fn(b)
	})
}

// Check reports whether the file at path looks like a SQLite database.
func Check(path string) error { return checkHeader(path) }

// checkHeader refuses a file that is not a SQLite database (a clear error
// instead of a backup of garbage).
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := make([]byte, 16)
	n, _ := f.Read(h)
	if n == 0 {
		return nil // an empty file is an empty database
	}
	if n < 16 || string(h) != "SQLite format 3\x00" {
		return lifeboat.Errorf(lifeboat.ECorrupt, "%s is not a SQLite database (bad header)", path)
	}
	return nil
}

// Describe returns the version, size and row counts of the database at path.
func Describe(ctx context.Context, path string) (*lifeboat.DatabaseInfo, error) {
	db, err := open(path, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	info := &lifeboat.DatabaseInfo{Engine: "sqlite", Database: path, Tables: []lifeboat.TableCount{}}
	if err := db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&info.ServerVersion); err != nil {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "sqlite database %s: %v", path, err)
	}
	var pages, size int64
	if err := db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "sqlite database %s: %v", path, err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		return nil, err
	}
	info.SizeBytes = pages * size
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "sqlite database %s: %v", path, err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		var c int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`).Scan(&c); err != nil {
			return nil, lifeboat.Errorf(lifeboat.ECorrupt, "sqlite database %s, table %s: %v", path, n, err)
		}
		info.Tables = append(info.Tables, lifeboat.TableCount{Name: n, Rows: c})
	}
	return info, nil
}

// PageSize returns the page size of the database at path (4096 if it
// cannot be read: the SQLite default).
func PageSize(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 4096
	}
	defer f.Close()
	h := make([]byte, 18)
	if n, _ := f.Read(h); n < 18 {
		return 4096
	}
	ps := int(h[16])<<8 | int(h[17])
	if ps == 1 {
		return 65536
	}
	if ps < 512 || ps&(ps-1) != 0 {
		return 4096
	}
	return ps
}

// Modes of Restore.
const (
	Stopped = "stopped" // the app is not running: rename into place
	Live    = "live"    // the app runs: through the backup API
)

// Restore puts the database file restored at from (a copy made by
// Snapshot, restored from the vault) at target, by mode. from is consumed.
func Restore(ctx context.Context, from, target, mode string) error {
	if err := checkHeader(from); err != nil {
		return err
	}
	switch mode {
	case "", Stopped:
		return restoreStopped(from, target)
	case Live:
		if _, err := os.Stat(target); err != nil {
			return restoreStopped(from, target) // nothing live there
		}
		db, err := open(target, false)
		if err != nil {
			return err
		}
		defer db.Close()
		err = rawConn(ctx, db, func(b backuper) error {
			bk, err := b.NewRestore("file:" + from + "?mode=ro")
			if err != nil {
				return err
			}
			if _, err := bk.Step(-1); err != nil {
				bk.Finish()
				return err
			}
			return bk.Finish()
		})
		if err != nil {
			return lifeboat.Errorf(lifeboat.EUnavailable, "live restore into %s: %v", target, err)
		}
		os.Remove(from)
		return nil
	}
	return lifeboat.Errorf(lifeboat.EInvalid, "sqlite restore mode %q: want stopped or live", mode)
}

func restoreStopped(from, target string) error {
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+filepath.Base(target)+".lifeboat-restore")
	os.Remove(tmp)
	if err := copyFile(from, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	// The old journal files belong to the old database: a -wal replayed onto
	// the restored file would corrupt it.
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return err
	}
	os.Remove(from)
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// copyFile copies src to a new file dst (its mode) and fsyncs it; a rename
// of src would do on one file system, but src may be anywhere.
func copyFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		f, err := os.Open(dst)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
