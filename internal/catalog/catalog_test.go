package catalog_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/catalog/catalogtest"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

func TestSQLite(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) *catalog.DB {
		db, err := catalog.Open(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// TestPostgres runs the same suite on a real PostgreSQL, one fresh database
// per subtest.
func TestPostgres(t *testing.T) {
	base := testenv.Require(t, "LIFEBOAT_TEST_PG_DSN")["LIFEBOAT_TEST_PG_DSN"]
	catalogtest.Run(t, func(t *testing.T) *catalog.DB {
		return openFreshPG(t, base)
	})
}

func openFreshPG(t *testing.T, base string) *catalog.DB {
	t.Helper()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	rand.Read(b[:])
	name := "lbcat_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	u.Path = "/" + name
	db, err := catalog.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		if a, err := sql.Open("pgx", base); err == nil {
			a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			a.Close()
		}
	})
	return db
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := catalog.Open(ctx, "postgres://u:hunter2@127.0.0.1:1/db")
	if lifeboat.ErrorCode(err) != lifeboat.EInvalid || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("password in URL: %v", err)
	}
	_, err = catalog.Open(ctx, "postgres://nobody@127.0.0.1:1/db?connect_timeout=2")
	if lifeboat.ErrorCode(err) != lifeboat.EUnavailable || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable: %v", err)
	}
	// Reopening migrates nothing twice and keeps the data.
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := catalog.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(ctx, func(tx *catalog.Tx) error { return tx.PutSetting(ctx, "k", "v") })
	db.Close()
	db, err = catalog.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(ctx, func(tx *catalog.Tx) error {
		if v, err := tx.Setting(ctx, "k"); v != "v" {
			t.Errorf("setting after reopen: %q %v", v, err)
		}
		return nil
	})
}
