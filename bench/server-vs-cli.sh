#!/usr/bin/env bash
# bench/server-vs-cli.sh — the same backup through the server and through
# `lifeboat vault backup`.
#
# Dataset: ../shared/bench/gen-dataset.sh gen (cached like bench/run.sh in
# $WORK/pristine). For ROUNDS rounds (default 3), on a fresh copy of the
# dataset, each path in turn (order alternating between rounds): first
# backup, then no-change re-backup. Each step is one whole process timed by
# /usr/bin/time:
#
#   server  `lifeboat backup --app bench --wait -o json` against a
#           `lifeboat serve` started for the round (fresh data directory,
#           default workers, its default local vault; the app applied with
#           `lifeboat apply -f`; server start and apply are not timed). The
#           time includes queueing and the client's polling of the job; the
#           job's own created/started/finished times are kept to split it.
#   cli     `lifeboat vault backup [--init] --vault DIR PATH` (passphrase
#           from LIFEBOAT_PASSPHRASE; key derivation included, --init on the
#           first backup creates the vault).
#
# The serve process's CPU time during each server step is read from
# /proc/PID/stat. Prints medians of wall time, CPU and peak RSS, and
# server/cli ratios.
#
#   bench/server-vs-cli.sh
#   ROUNDS=1 SIZE_MIB=256 bench/server-vs-cli.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$repo/../shared/bench}
WORK=${WORK:-/tmp/lifeboat-bench}
ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
export SIZE_MIB SEED=1

[ -x "$SHARED_BENCH/gen-dataset.sh" ] || { echo "dataset generator missing at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 2; }
mkdir -p "$WORK"
(cd "$repo" && go build -o "$WORK/lifeboat" ./cmd/lifeboat)
LB=$WORK/lifeboat
export LIFEBOAT_PASSPHRASE=bench-passphrase
sv=$WORK/svc # this script's own files
rm -rf "$sv"
mkdir -p "$sv"
results=$sv/results.tsv
jobs=$sv/jobs.tsv
: >"$results"
: >"$jobs"

pristine=$WORK/pristine
if [ ! -f "$pristine/.complete-$SIZE_MIB" ]; then
	rm -rf "$pristine"
	"$SHARED_BENCH/gen-dataset.sh" gen "$pristine" >/dev/null
	touch "$pristine/.complete-$SIZE_MIB"
fi

server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; true; }
trap cleanup EXIT

# timed PATH STEP ROUND CMD...: run CMD, append "path step round wall user sys maxrss_kib".
timed() {
	local path=$1 step=$2 round=$3; shift 3
	sync
	/usr/bin/time -f "%e %U %S %M" -o "$sv/time.out" "$@" >"$sv/$path-$step-$round.log" 2>&1 ||
		{ echo "$path $step failed:" >&2; tail -5 "$sv/$path-$step-$round.log" >&2; exit 1; }
	printf '%s\t%s\t%s\t%s\n' "$path" "$step" "$round" "$(tr ' ' '\t' <"$sv/time.out")" >>"$results"
}

# cpu_secs PID: user+system CPU seconds the process has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for round in $(seq 1 "$ROUNDS"); do
	src=$sv/src
	data=$src/data
	rm -rf "$src" "$sv/cli-vault" "$sv/server-data"
	mkdir -p "$src"
	cp -a "$pristine" "$data"; rm -f "$data"/.complete-*

	# The server for this round: fresh data directory, the app applied.
	dd=$sv/server-data
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
	printf 'hosts:\n  - name: local\n    kind: local\n    roots: [%s]\napps:\n  - name: bench\n    components:\n      - {name: data, kind: files, path: %s}\n' \
		"$src" "$data" >"$sv/app.yaml"
	"$LB" apply -f "$sv/app.yaml" >/dev/null

	paths=(server cli); [ $((round % 2)) = 0 ] && paths=(cli server)
	for step in first nochange; do
		for p in "${paths[@]}"; do
			case $p in
			server)
				c0=$(cpu_secs "$server_pid")
				timed server "$step" "$round" "$LB" backup --app bench --wait -o json
				c1=$(cpu_secs "$server_pid")
				# created -> started (queue), started -> finished (run), from the job record.
				python3 - "$sv/server-$step-$round.log" "$step" "$round" "$c0" "$c1" >>"$jobs" <<-'PY'
					import json, sys, datetime as dt
					j = json.load(open(sys.argv[1]))
					t = lambda k: dt.datetime.fromisoformat(j[k].replace("Z", "+00:00"))
					print(f"{sys.argv[2]}\t{sys.argv[3]}\t{(t('startedAt')-t('createdAt')).total_seconds():.3f}\t{(t('finishedAt')-t('startedAt')).total_seconds():.3f}\t{float(sys.argv[5])-float(sys.argv[4]):.2f}")
				PY
				;;
			cli)
				init=(); [ "$step" = first ] && init=(--init)
				timed cli "$step" "$round" "$LB" vault backup "${init[@]}" -q --vault "$sv/cli-vault" "$data"
				;;
			esac
		done
	done
	kill "$server_pid"; wait "$server_pid" || true; server_pid=
	printf 'server\tvault_bytes\t%s\t%s\t0\t0\t0\n' "$round" "$(du -sb "$dd/vaults/default" | cut -f1)" >>"$results"
	printf 'cli\tvault_bytes\t%s\t%s\t0\t0\t0\n' "$round" "$(du -sb "$sv/cli-vault" | cut -f1)" >>"$results"
done

python3 - "$results" "$jobs" <<'PY'
import sys, statistics as st, collections
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
    path, step, rnd, wall, user, sys_, rss = l.rstrip("\n").split("\t")
    d[(path, step)].append((float(wall), float(user), float(sys_), int(rss)))
jobs = collections.defaultdict(list)
for l in open(sys.argv[2]):
    step, rnd, queued, ran, cpu = l.split("\t")
    jobs[step].append((float(queued), float(ran), float(cpu)))
med = lambda p, s, i: st.median(x[i] for x in d[(p, s)])
print(f"{'step':9} {'server wall':>11} {'cli wall':>8} {'server/cli':>10} {'server job run':>14} {'job queued':>10} {'server CPU':>10} {'cli CPU':>8} {'cli RSS MiB':>11}")
for s in ("first", "nochange"):
    sw, cw = med("server", s, 0), med("cli", s, 0)
    sc = st.median(x[2] for x in jobs[s])
    cc = med("cli", s, 1) + med("cli", s, 2)
    jq = st.median(x[0] for x in jobs[s]); jr = st.median(x[1] for x in jobs[s])
    print(f"{s:9} {sw:11.2f} {cw:8.2f} {sw/cw:10.3f} {jr:14.2f} {jq:10.3f} {sc:10.2f} {cc:8.2f} {med('cli', s, 3)/1024:11.0f}")
print("server wall = the `backup --wait` client process; job run = the job's startedAt..finishedAt;")
print("server CPU = user+sys of the serve process during the step; cli CPU = user+sys of vault backup")
sv, cv = med("server", "vault_bytes", 0), med("cli", "vault_bytes", 0)
print(f"vault size: server {sv/2**20:.0f} MiB, cli {cv/2**20:.0f} MiB; medians of {len(d[('server','first')])} rounds")
PY
