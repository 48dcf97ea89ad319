package postgres

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// maxDifferences is how many differences a Verify error lists.
const maxDifferences = 5

// Verify compares the row counts of database's user tables, taken in one
// snapshot, with want (the counts recorded with the point). A table of want
// that is missing, a table that want does not have, or a different count
// is a difference; the error (ECorrupt) names how many and lists the first.
func Verify(ctx context.Context, s Server, database string, want *lifeboat.DatabaseInfo) error {
	if want == nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "%s database %s: verify: no row counts to compare with", s.where(), database)
	}
	conn, err := connect(ctx, s, database)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SET row_security = off"); err != nil {
		return s.queryError(ctx, "verify", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return s.queryError(ctx, "verify: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	tables, err := listTables(ctx, tx)
	if err != nil {
		return s.queryError(ctx, "verify: list tables", err)
	}
	got := make(map[string]int64, len(tables))
	for _, t := range tables {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return s.queryError(ctx, "verify: count rows of "+t, err)
		}
		got[t] = n
	}
	diffs := compareCounts(got, want.Tables)
	if len(diffs) == 0 {
		return nil
	}
	shown := diffs
	if len(shown) > maxDifferences {
		shown = shown[:maxDifferences]
	}
	more := ""
	if len(diffs) > len(shown) {
		more = fmt.Sprintf("; and %d more", len(diffs)-len(shown))
	}
	return lifeboat.Errorf(lifeboat.ECorrupt, "%s database %s does not match the point: %d difference(s): %s%s",
		s.where(), database, len(diffs), strings.Join(shown, "; "), more)
}

// compareCounts lists the differences between got and want, in want's
// order, then the tables want does not have.
func compareCounts(got map[string]int64, want []lifeboat.TableCount) []string {
	var diffs []string
	seen := make(map[string]bool, len(want))
	for _, w := range want {
		seen[w.Name] = true
		n, ok := got[w.Name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("table %s is missing (want %d rows)", w.Name, w.Rows))
		case n != w.Rows:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, want %d", w.Name, n, w.Rows))
		}
	}
	var extra []string
	for name, n := range got {
		if !seen[name] {
			extra = append(extra, fmt.Sprintf("table %s (%d rows) is not in the point", name, n))
		}
	}
	sort.Strings(extra)
	return append(diffs, extra...)
}
