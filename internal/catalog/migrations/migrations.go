// Package migrations embeds the catalog's schema migrations (goose SQL
// files). One set serves SQLite and PostgreSQL: the files use portable types.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
