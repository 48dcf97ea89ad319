#!/usr/bin/env bash
# bench/api.sh — API latency of `lifeboat serve` under a fixed request rate,
# on a SQLite catalog and on a PostgreSQL catalog.
#
# For ROUNDS rounds (default 3), for each catalog in turn (order alternating
# between rounds): start a fresh server (--workers 1) in a temp data
# directory, seed APPS apps (default 1000) with `lifeboat apply -f` of a
# generated YAML, then with bench/apiload, open-loop at RATE requests/s
# (default 200) for SECONDS s (default 20, after 2 s of warm-up):
#
#   list     GET /api/v1/apps?limit=100, following the cursor
#   trigger  POST /api/v1/apps/{app}/backups with a unique Idempotency-Key
#
# The triggered backups queue and the one worker runs them during the load
# (each app is one small file), as a busy server would; the server is
# stopped at the end of each round and its queue thrown away.
#
# PostgreSQL is the throwaway cluster of scripts/test-services.sh (fsync
# off: its commits are not durable, SQLite's are). Prints medians over the
# rounds of each run's p50, p99 and max latency, measured from each
# request's scheduled send time.
#
#   bench/api.sh
#   ROUNDS=1 SECONDS_=5 bench/api.sh
#   LIFEBOAT_BIN=/tmp/lifeboat-old bench/api.sh   # another build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
WORK=${WORK:-/tmp/lifeboat-bench-api}
ROUNDS=${ROUNDS:-3}
APPS=${APPS:-1000}
RATE=${RATE:-200}
SECS=${SECONDS_:-20}
SERVICES_STATE=${SERVICES_STATE:-/tmp/lb-bench-services}

rm -rf "$WORK"
mkdir -p "$WORK"
(cd "$repo" && go build -o "$WORK/lifeboat" ./cmd/lifeboat && go build -o "$WORK/apiload" ./bench/apiload)
LB=$WORK/lifeboat
# LIFEBOAT_BIN measures another build (e.g. an older commit's, side by side).
if [ -n "${LIFEBOAT_BIN:-}" ]; then LB=$LIFEBOAT_BIN; fi

# A throwaway PostgreSQL, stopped on exit along with any server left running.
STATE=$SERVICES_STATE bash "$repo/scripts/test-services.sh" start
# shellcheck disable=SC1091
. "$SERVICES_STATE/env"
server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	STATE=$SERVICES_STATE bash "$repo/scripts/test-services.sh" stop || true
}
trap cleanup EXIT

# The apps: one small file each under one host root.
root=$WORK/srv
mkdir -p "$root"
{
	printf 'hosts:\n  - name: local\n    kind: local\n    roots: [%s]\napps:\n' "$root"
	for i in $(seq 0 $((APPS - 1))); do
		name=$(printf 'app-%04d' "$i")
		mkdir -p "$root/$name"
		echo "$name" >"$root/$name/data.txt"
		printf '  - name: %s\n    environment: production\n    labels: {team: t%02d}\n    components:\n      - {name: data, kind: files, path: %s}\n' \
			"$name" $((i % 50)) "$root/$name"
	done
} >"$WORK/apps.yaml"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server DATADIR [CATALOG]: start serve, wait until ready, export
# LIFEBOAT_SERVER and LIFEBOAT_TOKEN.
start_server() {
	local dd=$1 cat=${2:-} port
	port=$(free_port)
	local args=(serve --data-dir "$dd" --listen "127.0.0.1:$port" --workers 1 --log-format json)
	[ -n "$cat" ] && args+=(--catalog "$cat")
	"$LB" "${args[@]}" >"$dd.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 1 300); do
		curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
		kill -0 "$server_pid" 2>/dev/null || { tail -20 "$dd.log" >&2; exit 1; }
		sleep 0.1
	done
	export LIFEBOAT_SERVER=http://127.0.0.1:$port
	LIFEBOAT_TOKEN=$(cat "$dd/admin.token")
	export LIFEBOAT_TOKEN
}

stop_server() {
	kill "$server_pid"
	wait "$server_pid" || true
	server_pid=
}

results=$WORK/results.tsv
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
	cats=(sqlite postgres)
	[ $((round % 2)) = 0 ] && cats=(postgres sqlite)
	for cat in "${cats[@]}"; do
		dd=$WORK/data-$cat-$round
		dsn=
		if [ "$cat" = postgres ]; then
			db=lbapi_${round}_$$
			psql "$LIFEBOAT_TEST_PG_DSN" -qAt -c "CREATE DATABASE $db" >/dev/null
			dsn=$(python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$LIFEBOAT_TEST_PG_DSN" "$db")
		fi
		start_server "$dd" "$dsn"
		"$LB" apply -f "$WORK/apps.yaml" >"$dd.apply.log"
		for mode in list trigger; do
			"$WORK/apiload" -url "$LIFEBOAT_SERVER" -mode "$mode" -rate "$RATE" -duration "${SECS}s" -apps "$APPS" -app-format 'app-%04d' \
				| tee "$dd.$mode.out" | sed 's/^/    /' | grep -v $'\t' >&2 || true
			printf '%s\t%s\t%s\n' "$cat" "$round" "$(tail -1 "$dd.$mode.out")" >>"$results"
		done
		echo "  [$cat round $round] job counts in /api/v1/status at the end: $(curl -fsS -H "Authorization: Bearer $LIFEBOAT_TOKEN" "$LIFEBOAT_SERVER/api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("jobs"))')" >&2
		stop_server
	done
done

python3 - "$results" "$RATE" "$SECS" <<'PY'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
d = collections.defaultdict(list)
for cat, rnd, mode, n, errs, rate, p50, p90, p99, mx in rows:
    d[(cat, mode)].append((float(p50), float(p99), float(mx), int(errs), int(n)))
print(f"open-loop {sys.argv[2]} req/s for {sys.argv[3]} s; latency from the scheduled send time; medians over rounds")
print(f"{'catalog':9} {'request':8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} {'rounds':>6}")
for cat in ("sqlite", "postgres"):
    for mode in ("list", "trigger"):
        v = d.get((cat, mode))
        if not v:
            continue
        print(f"{cat:9} {mode:8} {st.median(x[0] for x in v):8.2f} {st.median(x[1] for x in v):8.2f} {st.median(x[2] for x in v):8.1f} {sum(x[3] for x in v):7d} {len(v):6d}")
PY
