#!/usr/bin/env bash
# bench/pg.sh — a PostgreSQL component through the server, against plain
# `pg_dump -Fc` + `pg_restore` of the same database.
#
# Database: `pgbench -i -s SCALE` (deterministic: pgbench's own rows), plus
# pgbench_history filled with SCALE × 50,000 rows, plus a table
# `attachments` of BLOB_MIB MiB of incompressible but deterministic bytes
# (8 KiB per row, made of md5 digests). Built once as a template database
# (kept between runs: lbbench_tpl_sSCALE_bBLOB_MIB), then copied with
# CREATE DATABASE ... TEMPLATE for every round, so each round starts from a
# fresh, byte-identical database.
#
# For ROUNDS rounds (default 3), each with a fresh database, a fresh
# `lifeboat serve` data directory (its default local vault) and an app with
# one postgres component (`lifeboat apply -f`; server start and apply are not
# timed), in this order (the Lifeboat step and its reference alternate
# between rounds):
#
#   first      `lifeboat backup --app pgbench --wait -o json`  |  ref: pg_dump -Fc -f FILE
#   (the typical change: 1% new rows appended to pgbench_accounts,
#    pgbench_history and attachments; then the newest 0.1% of the accounts
#    that existed before, by aid, updated)
#   second     backup                                          |  ref: pg_dump -Fc -f FILE
#   restore    `lifeboat restore --app pgbench latest --component db
#              --to db:pg/NEW`                                 |  ref: pg_restore -d NEW2 FILE
#              (NEW2 created by createdb first, not timed)
#   (the worst case: 1% of the original accounts, picked by a hash of aid
#    across the whole table, updated)
#   third      backup                                          |  ref: pg_dump -Fc -f FILE
#
# Also, once per round, timed but not compared: `pg_dump -Fc -Z0` of the
# first state to a file (what pg_dump itself costs without compression;
# Lifeboat runs pg_dump with -Z0 and compresses in the vault).
#
# Each step is one whole process timed by /usr/bin/time, after `sync`. Bytes
# stored by a backup = growth of the vault directory (sealed, compressed);
# the job's result gives the new bytes sealed and before compression
# (bytes_new, bytes_new_raw), the new chunks and the dump stream's size. The serve
# process's CPU (its own plus its reaped children's: pg_dump, pg_restore) is
# read from /proc around each step; the reference's CPU is pg_dump's or
# pg_restore's. The PostgreSQL backends' CPU is counted on neither side.
#
# PostgreSQL: $LIFEBOAT_TEST_PG_DSN (postgres://USER[:PASSWORD]@HOST:PORT/DB)
# if set, else a throwaway cluster from scripts/test-services.sh under
# $STATE (stopped at the end). A password in the DSN goes into 0600 files
# (PGPASSFILE, and the server's passwordFile), never onto a command line.
#
#   bench/pg.sh
#   ROUNDS=1 SCALE=10 BLOB_MIB=40 bench/pg.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
WORK=${WORK:-/tmp/lifeboat-bench-pg}
STATE=${STATE:-/tmp/lb-bench-pg}
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-50}
BLOB_MIB=${BLOB_MIB:-200}
APP=pgbench

mkdir -p "$WORK"
(cd "$repo" && go build -o "$WORK/lifeboat" ./cmd/lifeboat)
LB=$WORK/lifeboat
sv=$WORK/run # this run's own files
rm -rf "$sv"
mkdir -p "$sv"
results=$sv/results.tsv # step side round wall user sys maxrss_kib
extra=$sv/extra.tsv     # key round value
: >"$results"
: >"$extra"

started_services=
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; fi
	if [ -n "$started_services" ]; then STATE=$STATE bash "$repo/scripts/test-services.sh" stop; fi
	true
}
trap cleanup EXIT

if [ -z "${LIFEBOAT_TEST_PG_DSN:-}" ]; then
	STATE=$STATE bash "$repo/scripts/test-services.sh" start
	started_services=1
	# shellcheck disable=SC1091
	. "$STATE/env"
fi

# The DSN's parts; a password goes to 0600 files only.
umask 077
eval "$(python3 - "$LIFEBOAT_TEST_PG_DSN" "$WORK" <<'PY'
import sys, urllib.parse as up, shlex, os
u = up.urlparse(sys.argv[1]); work = sys.argv[2]
host, port, user = u.hostname or "127.0.0.1", u.port or 5432, up.unquote(u.username or "postgres")
print(f"export PGHOST={shlex.quote(host)} PGPORT={port} PGUSER={shlex.quote(user)} PGDATABASE=postgres")
pw = up.unquote(u.password) if u.password else ""
pwfile = ""
if pw:
    pwfile = os.path.join(work, "pg.password")
    with open(pwfile, "w") as f: f.write(pw + "\n")
    esc = lambda s: s.replace("\\", "\\\\").replace(":", "\\:")
    with open(os.path.join(work, "pgpass"), "w") as f: f.write(f"*:*:*:{esc(user)}:{esc(pw)}\n")
    print(f"export PGPASSFILE={shlex.quote(os.path.join(work, 'pgpass'))}")
print(f"PWFILE={shlex.quote(pwfile)}")
PY
)"
umask 022
unset PGPASSWORD
export PGSSLMODE=${PGSSLMODE:-disable} PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
q() { "${PSQL[@]}" -At -d "${2:-postgres}" -c "$1"; }

# --- the template database (built once) ---------------------------------------
NACC=$((SCALE * 100000))
tpl=lbbench_tpl_s${SCALE}_b${BLOB_MIB}
if [ "$(q "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = '$tpl'")" != complete ]; then
	echo "building $tpl (pgbench -i -s $SCALE, history, $BLOB_MIB MiB of attachments)" >&2
	dropdb --if-exists "$tpl"
	createdb "$tpl"
	pgbench -i -q -s "$SCALE" "$tpl" >"$sv/pgbench-init.log" 2>&1 || { tail "$sv/pgbench-init.log" >&2; exit 1; }
	nblob=$((BLOB_MIB * 128)) # 8 KiB rows
	"${PSQL[@]}" -d "$tpl" <<-SQL
		INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
		SELECT 1 + i % ($SCALE * 10), 1 + i % $SCALE, 1 + (i * 7919) % $NACC, (i % 10001) - 5000,
		       timestamp '2026-01-01' + i * interval '1 second'
		FROM generate_series(1::bigint, $SCALE * 50000) AS i;
		CREATE TABLE attachments (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, name text NOT NULL, body bytea NOT NULL);
		ALTER TABLE attachments ALTER COLUMN body SET STORAGE EXTERNAL; -- random bytes: no pglz attempt
		INSERT INTO attachments
		SELECT i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute', 'upload-' || i || '.bin',
		       (SELECT decode(string_agg(md5(i || ':' || k), ''), 'hex') FROM generate_series(1, 512) AS k)
		FROM generate_series(1, $nblob) AS i;
		VACUUM (FREEZE, ANALYZE);
	SQL
	q "COMMENT ON DATABASE $tpl IS 'complete'"
fi
dbsize=$(q "SELECT pg_database_size('$tpl')")
printf 'dbsize\t0\t%s\n' "$dbsize" >>"$extra"
echo "template $tpl: $((dbsize / 1048576)) MiB (pg_database_size)" >&2

# The typical change: 1% of rows appended to each growing table, then the
# newest 0.1% of the existing accounts updated.
cat >"$sv/change.sql" <<SQL
BEGIN;
INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
SELECT aid, $SCALE, 0, '' FROM generate_series($NACC + 1, $NACC + $NACC / 100) AS aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
SELECT 1 + i % ($SCALE * 10), 1 + i % $SCALE, $NACC + 1 + i % ($NACC / 100), (i % 10001) - 5000,
       timestamp '2026-02-01' + i * interval '1 second'
FROM generate_series(1::bigint, $SCALE * 500) AS i;
INSERT INTO attachments
SELECT i, timestamptz '2026-02-01 00:00:00+00' + i * interval '1 minute', 'upload-' || i || '.bin',
       (SELECT decode(string_agg(md5(i || ':' || k), ''), 'hex') FROM generate_series(1, 512) AS k)
FROM generate_series($((BLOB_MIB * 128 + 1)), $((BLOB_MIB * 128 + BLOB_MIB * 128 / 100))) AS i;
UPDATE pgbench_accounts SET abalance = abalance + 100 WHERE aid > $NACC - $NACC / 1000 AND aid <= $NACC;
COMMIT;
SQL
# The worst case: 1% of the original accounts, spread by a hash of aid.
cat >"$sv/worst.sql" <<SQL
UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE aid <= $NACC AND abs(hashint4(aid)) % 100 = 0;
SQL

# --- helpers --------------------------------------------------------------------

# timed STEP SIDE ROUND CMD...: run CMD, append "step side round wall user sys maxrss_kib".
timed() {
	local step=$1 side=$2 round=$3; shift 3
	sync
	/usr/bin/time -f "%e %U %S %M" -o "$sv/time.out" "$@" >"$sv/$side-$step-$round.log" 2>&1 ||
		{ echo "$side $step (round $round) failed:" >&2; tail -20 "$sv/$side-$step-$round.log" >&2; exit 1; }
	printf '%s\t%s\t%s\t%s\n' "$step" "$side" "$round" "$(tr ' ' '\t' <"$sv/time.out")" >>"$results"
}
# cpu_secs PID: user+system CPU seconds of the process and its reaped children.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15 + $16 + $17) / hz}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
vault_bytes() { du -sb "$dd/vaults/default" | cut -f1; }
rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$extra"; }

# lb_backup STEP ROUND: the Lifeboat backup, its vault growth, CPU and point figures.
lb_backup() {
	local step=$1 round=$2 v0 v1 c0 c1
	v0=$(vault_bytes)
	c0=$(cpu_secs "$server_pid")
	timed "$step" lifeboat "$round" "$LB" backup --app "$APP" --wait -o json
	c1=$(cpu_secs "$server_pid")
	v1=$(vault_bytes)
	rec "$step.stored" "$round" $((v1 - v0))
	rec "$step.cpu" "$round" "$(echo "$c1 - $c0" | bc -l)"
	python3 - "$sv/lifeboat-$step-$round.log" "$step" "$round" >>"$extra" <<-'PY'
		import json, sys, datetime as dt
		j = json.load(open(sys.argv[1]))
		assert j["state"] == "succeeded", j
		t = lambda k: dt.datetime.fromisoformat(j[k].replace("Z", "+00:00"))
		st = j["result"]["stats"]
		s, r = sys.argv[2], sys.argv[3]
		print(f"{s}.jobrun\t{r}\t{(t('finishedAt') - t('startedAt')).total_seconds():.3f}")
		for k in ("bytes", "bytes_new", "bytes_new_raw", "blobs_new"):
		    print(f"{s}.{k}\t{r}\t{st[k]}")
	PY
}

# ref_dump STEP ROUND DB
ref_dump() {
	local step=$1 round=$2 db=$3
	rm -f "$sv/ref.dump"
	timed "$step" reference "$round" pg_dump -Fc -f "$sv/ref.dump" "$db"
	rec "$step.refsize" "$round" "$(stat -c %s "$sv/ref.dump")"
}

# --- rounds -----------------------------------------------------------------------

for round in $(seq 1 "$ROUNDS"); do
	db=lbbench_r$round
	for d in "$db" "${db}_lb" "${db}_ref"; do dropdb --if-exists "$d"; done
	createdb -T "$tpl" "$db"

	dd=$sv/server-data
	rm -rf "$dd"
	port=$(free_port)
	"$LB" serve --data-dir "$dd" --listen "127.0.0.1:$port" --log-format json >"$sv/serve-$round.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 1 300); do
		curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
		kill -0 "$server_pid" 2>/dev/null || { tail -20 "$sv/serve-$round.log" >&2; exit 1; }
		sleep 0.1
	done
	export LIFEBOAT_SERVER=http://127.0.0.1:$port
	LIFEBOAT_TOKEN=$(cat "$dd/admin.token")
	export LIFEBOAT_TOKEN
	# The database server through `lifeboat host add` (the CLI's own
	# registration path), then the app through `lifeboat apply -f`.
	pwarg=(); [ -n "$PWFILE" ] && pwarg=(--password-file "$PWFILE")
	"$LB" host add pg --kind postgres --address "$PGHOST:$PGPORT" --user "$PGUSER" --sslmode disable "${pwarg[@]}" \
		>"$sv/host-add-$round.log" 2>&1 || { cat "$sv/host-add-$round.log" >&2; exit 1; }
	printf 'apps:\n  - name: %s\n    components:\n      - {name: db, kind: postgres, server: pg, database: %s}\n' "$APP" "$db" >"$sv/app.yaml"
	"$LB" apply -f "$sv/app.yaml" >"$sv/apply-$round.log" 2>&1 || { cat "$sv/apply-$round.log" >&2; exit 1; }

	odd=$((round % 2))
	# first backup and its reference
	if [ $odd = 1 ]; then lb_backup first "$round"; ref_dump first "$round" "$db"
	else ref_dump first "$round" "$db"; lb_backup first "$round"; fi

	rm -f "$sv/ref.dump"
	timed first dumpZ0 "$round" pg_dump -Fc -Z0 -f "$sv/ref.dump" "$db"
	rec first.z0size "$round" "$(stat -c %s "$sv/ref.dump")"
	rm -f "$sv/ref.dump"

	timed change sql "$round" "${PSQL[@]}" -d "$db" -f "$sv/change.sql"
	if [ $odd = 1 ]; then lb_backup second "$round"; ref_dump second "$round" "$db"
	else ref_dump second "$round" "$db"; lb_backup second "$round"; fi
	cp "$sv/ref.dump" "$sv/ref-second.dump"

	# restore of the second state into new databases
	lb_restore() {
		local c0 c1
		c0=$(cpu_secs "$server_pid")
		timed restore lifeboat "$round" "$LB" restore --app "$APP" latest --component db --to "db:pg/${db}_lb" -o json
		c1=$(cpu_secs "$server_pid")
		rec restore.cpu "$round" "$(echo "$c1 - $c0" | bc -l)"
	}
	ref_restore() {
		createdb "${db}_ref"
		timed restore reference "$round" pg_restore -d "${db}_ref" "$sv/ref-second.dump"
	}
	if [ $odd = 1 ]; then lb_restore; ref_restore; else ref_restore; lb_restore; fi
	# Both copies must hold what the source holds.
	for d in "${db}_lb" "${db}_ref"; do
		got=$(q "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_history) || ' ' || (SELECT count(*) || ':' || sum(length(body)) FROM attachments) || ' ' || (SELECT sum(abalance) FROM pgbench_accounts)" "$d")
		want=$(q "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_history) || ' ' || (SELECT count(*) || ':' || sum(length(body)) FROM attachments) || ' ' || (SELECT sum(abalance) FROM pgbench_accounts)" "$db")
		[ "$got" = "$want" ] || { echo "restored $d differs from $db: $got != $want" >&2; exit 1; }
	done
	rec restore.dbsize "$round" "$(q "SELECT pg_database_size('${db}_lb')")"
	dropdb "${db}_lb"; dropdb "${db}_ref"; rm -f "$sv/ref-second.dump"

	timed worst sql "$round" "${PSQL[@]}" -d "$db" -f "$sv/worst.sql"
	if [ $odd = 1 ]; then lb_backup third "$round"; ref_dump third "$round" "$db"
	else ref_dump third "$round" "$db"; lb_backup third "$round"; fi
	rec vault.total "$round" "$(vault_bytes)"

	kill "$server_pid"; wait "$server_pid" || true; server_pid=
	dropdb "$db"
	rm -f "$sv/ref.dump"
	echo "round $round done" >&2
done

python3 - "$results" "$extra" <<'PY'
import sys, statistics as st, collections
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
    step, side, rnd, wall, user, sys_, rss = l.rstrip("\n").split("\t")
    d[(step, side)].append((float(wall), float(user) + float(sys_)))
x = collections.defaultdict(list)
for l in open(sys.argv[2]):
    k, rnd, v = l.rstrip("\n").split("\t")
    x[k].append(float(v))
m = lambda k: st.median(x[k])
w = lambda s, side: st.median(v[0] for v in d[(s, side)])
c = lambda s, side: st.median(v[1] for v in d[(s, side)])
MiB = 2**20
n = len(d[("first", "lifeboat")])
print(f"database: {m('dbsize')/MiB:.0f} MiB (pg_database_size); medians of {n} rounds")
print(f"{'step':16} {'Lifeboat wall':>13} {'job run':>8} {'ref wall':>8} {'ref/Lifeboat':>12} {'Lifeboat CPU':>12} {'ref CPU':>8} {'stored MiB':>10} {'new raw MiB':>12} {'ref file MiB':>12}")
names = {"first": "first backup", "second": "typical change", "third": "worst case", "restore": "restore"}
for s in ("first", "second", "restore", "third"):
    lw, rw = w(s, "lifeboat"), w(s, "reference")
    jr = f"{m(s + '.jobrun'):8.2f}" if s + ".jobrun" in x else f"{'':8}"
    st_ = f"{m(s + '.stored')/MiB:10.1f}" if s + ".stored" in x else f"{'':10}"
    bn = f"{m(s + '.bytes_new_raw')/MiB:12.1f}" if s + ".bytes_new_raw" in x else f"{'':12}"
    rf = f"{m(s + '.refsize')/MiB:12.1f}" if s + ".refsize" in x else f"{'':12}"
    print(f"{names[s]:16} {lw:13.2f} {jr} {rw:8.2f} {rw/lw:12.2f} {m(s + '.cpu'):12.2f} {c(s, 'reference'):8.2f} {st_} {bn} {rf}")
print(f"dump stream (pg_dump -Fc -Z0) per point: first {m('first.bytes')/MiB:.0f} MiB, second {m('second.bytes')/MiB:.0f} MiB; "
      f"new chunks: first {m('first.blobs_new'):.0f}, second {m('second.blobs_new'):.0f}, worst case {m('third.blobs_new'):.0f}")
f, s2, s3 = m("first.stored"), m("second.stored"), m("third.stored")
print(f"pg_dump -Fc -Z0 of the first state: {w('first','dumpZ0'):.2f} s wall, {c('first','dumpZ0'):.2f} s CPU, {m('first.z0size')/MiB:.0f} MiB")
print(f"stored by the second backup / first: {100*s2/f:.1f}% (goal < 10%); worst case / first: {100*s3/f:.1f}%")
print(f"second backup wall / reference dump wall: {w('second','lifeboat')/w('second','reference'):.2f} (goal < 1)")
print(f"change SQL {w('change','sql'):.2f} s, worst-case SQL {w('worst','sql'):.2f} s; vault after 3 backups {m('vault.total')/MiB:.0f} MiB")
for k in sorted(x):
    print(f"  {k}: " + ", ".join(f"{v:.3f}" if v < 1e5 else f"{v/MiB:.1f}Mi" for v in x[k]))
for k in sorted(d):
    print(f"  {k[0]}.{k[1]} wall: " + ", ".join(f"{v[0]:.2f}" for v in d[k]))
PY
