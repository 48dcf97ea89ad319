package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/capture/sqlite"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// SQLite databases on SSH hosts are captured and restored with the host's
// own sqlite3 command (nothing is installed there): it runs in a fresh 0700
// staging directory next to the database, reading its commands from stdin,
// so that no path is ever parsed by sqlite3's dot-command syntax.
//
// Capture: one read transaction is opened on the live database, then
// ".backup" copies every page inside it — one snapshot, however long the
// copy takes, with the app's writers going on in WAL mode (and waiting, in
// rollback-journal mode, for the length of the copy only). The copy is
// described (version, pages, per-table row counts), read over SFTP into the
// vault, and the staging directory removed.

// snapshotName is the copy's name inside the staging directory.
const snapshotName = "snapshot.db"

// sqliteScript runs sqlite3 on db (an absolute path) in directory dir with
// script on stdin, failing at the first error.
func sqliteScript(ctx context.Context, rt RemoteTarget, dir, db, script string, stdout io.Writer) error {
	// sqlite3 creates a database that does not exist: the script refuses first.
	argv := []string{"sh", "-c", `cd -- "$1" || exit 1; [ -f "$2" ] || { echo "no such database file" >&2; exit 66; }; exec sqlite3 -bail "$2"`, "sh", dir, db}
	err := rt.Run(ctx, argv, strings.NewReader(".timeout 10000\n"+script), stdout)
	if err != nil && strings.Contains(err.Error(), "sqlite3: not found") {
		return lifeboat.Errorf(lifeboat.EUnavailable, "the host has no sqlite3 command (Debian: apt-get install sqlite3); SQLite databases on SSH hosts are read with the host's own sqlite3")
	}
	return err
}

// remoteSQLiteInfo describes the database at db on the host, and returns
// its page size.
func remoteSQLiteInfo(ctx context.Context, rt RemoteTarget, dir, db string) (*lifeboat.DatabaseInfo, int, error) {
	var out bytes.Buffer
	err := sqliteScript(ctx, rt, dir, db, `SELECT json_object('version', sqlite_version(), 'pages', (SELECT page_count FROM pragma_page_count), 'pageSize', (SELECT page_size FROM pragma_page_size), 'tables', (SELECT json_group_array(name) FROM (SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)));`+"\n", &out)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite database %s: %w", db, err)
	}
	var head struct {
		Version  string   `json:"version"`
		Pages    int64    `json:"pages"`
		PageSize int64    `json:"pageSize"`
		Tables   []string `json:"tables"`
	}
	if err := json.Unmarshal(out.Bytes(), &head); err != nil {
		return nil, 0, lifeboat.Errorf(lifeboat.EUnavailable, "sqlite database %s: unexpected answer from the host's sqlite3 (version 3.38 or later is needed)", db)
	}
	info := &lifeboat.DatabaseInfo{Engine: "sqlite", ServerVersion: head.Version, Database: db, SizeBytes: head.Pages * head.PageSize, Tables: []lifeboat.TableCount{}}
	if len(head.Tables) == 0 {
		return info, int(head.PageSize), nil
	}
	var script strings.Builder
	for _, t := range head.Tables {
		script.WriteString(`SELECT count(*) FROM "` + strings.ReplaceAll(t, `"`, `""`) + "\";\n")
	}
	out.Reset()
	if err := sqliteScript(ctx, rt, dir, db, script.String(), &out); err != nil {
		return nil, 0, fmt.Errorf("sqlite database %s: counting rows: %w", db, err)
	}
	sc := bufio.NewScanner(&out)
	for _, t := range head.Tables {
		if !sc.Scan() {
			return nil, 0, lifeboat.Errorf(lifeboat.EUnavailable, "sqlite database %s: no row count for table %s", db, t)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64)
		if err != nil {
			return nil, 0, lifeboat.Errorf(lifeboat.EUnavailable, "sqlite database %s: unreadable row count for table %s", db, t)
		}
		info.Tables = append(info.Tables, lifeboat.TableCount{Name: t, Rows: n})
	}
	return info, int(head.PageSize), nil
}

// stageRemoteSQLite snapshots the database c.Path on host h into a staging
// directory there and makes it a stream component read over SFTP. The
// returned closer removes the staging directory.
func stageRemoteSQLite(ctx context.Context, h *lifeboat.Host, c *lifeboat.Component, rt RemoteTarget) (vault.Source, func(), error) {
	st, err := rt.MkdirStaging(c.Path)
	if err != nil {
		return vault.Source{}, nil, err
	}
	cleanup := func() { rt.RemoveAll(context.Background(), st) }
	fail := func(err error) (vault.Source, func(), error) {
		cleanup()
		return vault.Source{}, nil, err
	}
	// The snapshot: a read transaction pins one version of the database,
	// and every step of .backup reads inside it.
	err = sqliteScript(ctx, rt, st, c.Path, "BEGIN;\nSELECT count(*) FROM sqlite_master;\n.backup "+snapshotName+"\nCOMMIT;\n", io.Discard)
	if err != nil {
		return fail(lifeboat.Errorf(lifeboat.EUnavailable, "sqlite database %s on host %s: snapshot: %v", c.Path, h.Name, err))
	}
	snap := st + "/" + snapshotName
	info, pageSize, err := remoteSQLiteInfo(ctx, rt, st, snap)
	if err != nil {
		return fail(err)
	}
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return fail(lifeboat.Errorf(lifeboat.ECorrupt, "sqlite database %s on host %s: page size %d", c.Path, h.Name, pageSize))
	}
	info.Database = c.Path
	meta, err := json.Marshal(info)
	if err != nil {
		return fail(err)
	}
	return vault.Source{
		Name: c.Name, Kind: lifeboat.KindSQLite, Describe: "ssh://" + h.Name + "/sqlite:" + c.Path,
		Meta: func() []byte { return meta },
		Streams: []vault.Stream{{
			Name:  path.Base(c.Path),
			Mode:  0o644,
			Fixed: pageSize * sqliteChunkPages,
			Open:  func(context.Context) (io.ReadCloser, error) { return rt.Open(snap) },
		}},
	}, cleanup, nil
}

// RemoteSQLitePath returns the database path of a sqlite component
// captured on an SSH host, or ok false.
func RemoteSQLitePath(c manifest.Component) (string, bool) {
	_, p, ok := RemoteSource(c)
	if !ok || c.Kind != lifeboat.KindSQLite {
		return "", false
	}
	db, found := strings.CutPrefix(p, "/sqlite:")
	if !found || !path.IsAbs(db) || path.Clean(db) != db {
		return "", false
	}
	return db, true
}

// RestoreRemoteSQLite restores a sqlite component captured on an SSH host
// to its database there. The copy is written into a staging directory next
// to the database, its row counts checked against the point's, then put in
// place by mode: stopped (the app is not running: the copy renamed into
// place, the replaced file kept until the health check with its -wal or
// hot -journal beside it, see swapSQLite) or live (the host's sqlite3
// writes it into the running database with ".restore", under SQLite's own
// locking).
func RestoreRemoteSQLite(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, mode string, rt RemoteTarget, tag string, prog *vault.Progress) (_ *Swap, _ *vault.RestoreResult, rerr error) {
	target, ok := RemoteSQLitePath(c)
	if !ok {
		return nil, nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s, component %s: no remote database path recorded", p.ID[:8], c.Name)
	}
	if mode != "" && mode != sqlite.Stopped && mode != sqlite.Live {
		return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "sqlite restore mode %q: want stopped or live", mode)
	}
	n, err := v.Lookup(ctx, p, c.Name+"/"+path.Base(target))
	if err != nil {
		return nil, nil, err
	}
	if n.Type != tree.File {
		return nil, nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s, component %s: the database is not a file", p.ID[:8], c.Name)
	}
	st, err := rt.MkdirStaging(target)
	if err != nil {
		return nil, nil, err
	}
	done := false
	const name = "restore.db"
	defer func() {
		if done {
			return
		}
		if err := dropSQLiteStaging(ctx, rt, st, name); err != nil && rerr != nil {
			rerr = fmt.Errorf("%w (the staging %s is left: %v)", rerr, st, err)
		}
	}()
	r, err := v.OpenFile(ctx, n)
	if err != nil {
		return nil, nil, err
	}
	if err := rt.WriteFile(st, name, 0o600, r); err != nil {
		return nil, nil, err
	}
	res := &vault.RestoreResult{Files: 1, Bytes: n.Size}
	if prog != nil {
		prog.Files.Add(1)
		prog.Bytes.Add(n.Size)
	}
	if len(c.Meta) > 0 {
		var want lifeboat.DatabaseInfo
		if err := json.Unmarshal(c.Meta, &want); err != nil {
			return nil, res, lifeboat.Errorf(lifeboat.ECorrupt, "component %s: unreadable metadata", c.Name)
		}
		got, _, err := remoteSQLiteInfo(ctx, rt, st, st+"/"+name)
		if err != nil {
			return nil, res, err
		}
		if diff := CompareCounts(&want, got); diff != "" {
			return nil, res, lifeboat.Errorf(lifeboat.ECorrupt, "component %s: the restored database differs from the point: %s", c.Name, diff)
		}
	}
	sw := &Swap{Component: c.Name, Target: []string{target}, remove: func(p string) error { return rt.RemoveAll(context.Background(), p) }}
	if mode == sqlite.Live && rt.Run(ctx, []string{"test", "-f", target}, nil, io.Discard) == nil {
		if err := sqliteScript(ctx, rt, st, target, ".restore "+name+"\n", io.Discard); err != nil {
			return nil, res, lifeboat.Errorf(lifeboat.EUnavailable, "live restore into %s: %v", target, err)
		}
		return sw, res, nil
	}
	if err := rt.SetMeta(st, name, n.Mode, n.UID, n.GID, time.Unix(0, n.MTime)); err != nil {
		return nil, res, err
	}
	keepStaging, err := swapSQLite(ctx, rt, sw, st, name, target, tag)
	done = keepStaging || err == nil
	if err != nil {
		return nil, res, err
	}
	return sw, res, nil
}

// dropSQLiteStaging removes staging st and the restored file name in it,
// but nothing else: a log that swapSQLite moved into it and could not move
// on (or one moved by a command that outlived its cancelled session) keeps
// it there, and the error says so.
func dropSQLiteStaging(ctx context.Context, rt RemoteTarget, st, name string) error {
	var out strings.Builder
	const drop = `[ -d "$1" ] || exit 0; rm -f -- "$1/$2"; rmdir -- "$1" 2>/dev/null || { ls -A -- "$1"; exit 1; }`
	err := rt.Run(context.WithoutCancel(ctx), []string{"sh", "-c", drop, "sh", st, name}, nil, &out)
	if err != nil && out.Len() > 0 {
		return fmt.Errorf("it holds %s", strings.Join(strings.Fields(out.String()), ", "))
	}
	return err
}

// sqliteLogs name, after the database's name, the files SQLite may have
// left its last transactions in.
var sqliteLogs = []string{"-wal", "-journal"}

// swapSQLite puts the file rel of staging st in place of the database
// target (stopped mode), adding to sw where what it replaced is kept.
//
// The replaced database's log (-wal, or a hot -journal) cannot stay beside
// the restored file: SQLite would replay or roll it back into it. It may
// hold the last transactions, which no safety point has when none is
// complete (the damaged database it was written for), so it is kept beside
// the kept copy, under the name SQLite reads with it: moved into the
// staging before the swap, then beside the kept copy, or back beside
// target if the swap fails (and target is still the database it was
// beside: SQLite would replay it into any database of that name). Each move
// is a rename that never replaces anything (to a name nothing has, with
// mv -n), checked by the source being gone. What cannot be moved on stays
// in the staging, which is then kept (keepStaging) and named: in the
// error, or in sw's notes. The scripts use only what every Unix has (POSIX
// sh, ls, mv -n, rmdir): no GNU options.
func swapSQLite(ctx context.Context, rt RemoteTarget, sw *Swap, st, rel, target, tag string) (keepStaging bool, err error) {
	// move moves src to dst without replacing anything, and fails unless
	// src is gone.
	const move = `move() { ! [ -e "$2" ] && ! [ -L "$2" ] && mv -n -- "$1" "$2" 2>/dev/null; ! [ -e "$1" ] && ! [ -L "$1" ]; }
ident() { if [ -f "$1" ] && [ ! -L "$1" ]; then ls -ldin -- "$1" || exit 1; else echo -; fi; }
`
	// Out come the stagings of earlier restores holding a log they moved
	// aside and could not move on ("left PATH"; a crash between the moves
	// leaves one), the database's identity (ls -ldin: inode, mode, owner,
	// size, time; or -), then the suffix of each log moved, as it goes
	// ("log SUFFIX").
	var out strings.Builder
	const aside = move + `t=$1; st=$2; pat=$3; any=$4; shift 4
for d in "$(dirname -- "$t")"/"$pat"$any; do
	for s in "$@"; do if [ "$d" != "$st" ] && { [ -e "$d/old$s" ] || [ -L "$d/old$s" ]; }; then printf 'left %s\n' "$d"; break; fi; done
done
i=$(ident "$t") || exit 1; printf 'id %s\n' "$i"
for s in "$@"; do
	if [ -e "$t$s" ] || [ -L "$t$s" ]; then move "$t$s" "$st/old$s" || exit 1; echo "log $s"; fi
done`
	base := path.Base(st)
	// The staging's name but its random part, and a pattern for that part.
	pat := base[:strings.LastIndexByte(base, '-')+1]
	rnd := strings.Repeat("?", len(base)-len(pat))
	err = rt.Run(ctx, append([]string{"sh", "-c", aside, "sh", target, st, pat, rnd}, sqliteLogs...), nil, &out)
	id := "-"
	var logs, left []string
	parse := func(out string) {
		for line := range strings.Lines(out) {
			k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
			switch k {
			case "id":
				if v != "" {
					id = v
				}
			case "log":
				logs = append(logs, v)
			case "left":
				left = append(left, v)
			}
		}
	}
	parse(out.String())
	ctx = context.WithoutCancel(ctx) // the logs moved are in the staging only
	if err != nil {
		// Its output may be lost (a cancelled session), or it may have
		// failed after a move: what it moved is what is in the staging,
		// and target is untouched still.
		const moved = move + `t=$1; st=$2; shift 2
i=$(ident "$t") || exit 1; printf 'id %s\n' "$i"
for s in "$@"; do if [ -e "$st/old$s" ] || [ -L "$st/old$s" ]; then echo "log $s"; fi; done`
		out.Reset()
		if perr := rt.Run(ctx, append([]string{"sh", "-c", moved, "sh", target, st}, sqliteLogs...), nil, &out); perr != nil {
			return true, fmt.Errorf("moving %s's log aside before the swap: %w (and the staging %s, which may hold it, could not be looked into: kept)", target, err, st)
		}
		id, logs = "-", nil
		parse(out.String())
	}
	// fail puts the logs back beside target, only while target is the
	// database they were beside, and returns err, saying where they are
	// if they could not go back.
	fail := func(err error) (bool, error) {
		if len(logs) == 0 {
			return false, err
		}
		const back = move + `t=$1; st=$2; id=$3; shift 3; bad=0
[ "$id" != - ] && [ "$(ident "$t")" = "$id" ] || exit 1
for s in "$@"; do move "$st/old$s" "$t$s" || bad=1; done
exit $bad`
		if rt.Run(ctx, append([]string{"sh", "-c", back, "sh", target, st, id}, logs...), nil, io.Discard) == nil {
			return false, err
		}
		return true, fmt.Errorf("%w (the replaced database's log could not be put back: it is kept in %s, never removed)", err, st)
	}
	if err != nil {
		return fail(fmt.Errorf("moving %s's log aside before the swap: %w", target, err))
	}
	if err := rt.Run(ctx, []string{"rm", "-f", "--", target + "-shm"}, nil, io.Discard); err != nil {
		return fail(fmt.Errorf("removing %s-shm: %w", target, err))
	}
	kept, earlier, err := rt.SwapFile(st, rel, target, tag)
	if err != nil {
		return fail(err)
	}
	sw.keepEarlier(kept, earlier)
	for _, d := range left {
		sw.Left = append(sw.Left, d)
		sw.Notes = append(sw.Notes, fmt.Sprintf("an earlier restore moved the log of the database at %s aside and stopped: the log is kept at %s, never removed", target, d))
	}
	if len(left) > 0 {
		// That restore may be an earlier attempt of this job: the database
		// it left without its log is in this attempt's safety point without
		// it, whole only in that attempt's.
		sw.Earlier = true
		defer sw.KeepAll("it was separated from its log by an earlier restore (see the log's kept staging)")
	}
	if earlier && len(kept) > 0 {
		// An earlier attempt's kept copy goes with the log it kept beside it.
		var out strings.Builder
		const logsOf = `k=$1; shift; for s in "$@"; do if [ -e "$k$s" ] || [ -L "$k$s" ]; then echo "$s"; fi; done`
		if err := rt.Run(ctx, append([]string{"sh", "-c", logsOf, "sh", kept[0]}, sqliteLogs...), nil, &out); err != nil {
			sw.KeepOnly([]string{kept[0]}, fmt.Sprintf("its log could not be looked for: %v", err))
		}
		for _, s := range strings.Fields(out.String()) {
			sw.Old = append(sw.Old, kept[0]+s)
			sw.Prior = append(sw.Prior, kept[0]+s)
		}
	}
	if len(logs) == 0 {
		return false, nil
	}
	// The replaced database is kept last in kept, unless there was none
	// there (only an earlier attempt's copy is returned).
	if len(kept) == 0 || len(kept) == 1 && earlier {
		sw.Left = append(sw.Left, st)
		sw.Notes = append(sw.Notes, fmt.Sprintf("the log of a database no longer at %s is kept in %s, never removed", target, st))
		return true, nil
	}
	old := kept[len(kept)-1]
	for _, s := range logs {
		if err := rt.Run(ctx, []string{"sh", "-c", move + `move "$1" "$2"`, "sh", st + "/old" + s, old + s}, nil, io.Discard); err != nil {
			sw.Left = append(sw.Left, st)
			sw.Notes = append(sw.Notes, fmt.Sprintf("the replaced database's log is kept at %s/old%s, never removed (it could not go beside its kept copy %s: %v)", st, s, old, err))
			return true, nil
		}
		sw.Old = append(sw.Old, old+s)
	}
	// Empty now (rmdir removes nothing else).
	if err := rt.Run(ctx, []string{"rmdir", "--", st}, nil, io.Discard); err != nil {
		sw.Left = append(sw.Left, st)
		sw.Notes = append(sw.Notes, fmt.Sprintf("the restore's staging is left at %s: %v", st, err))
	}
	return true, nil
}
