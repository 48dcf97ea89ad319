#!/usr/bin/env bash
# bench/run.sh — Lifeboat against restic on the shared deterministic dataset.
#
# For ROUNDS rounds (default 3), on the same data in the same run, for each
# tool in turn (order alternating between rounds): first backup, no-change
# re-backup, backup after the ~5% mutation, full restore into a fresh
# directory from a cold page cache (dropped first, when run as root). Each step is one whole process timed by /usr/bin/time (wall,
# user, sys, peak RSS). Vault sizes are du -sb after the last backup. Prints a
# table of medians and Lifeboat/restic ratios.
#
#   bench/run.sh                    # needs ../shared/bench (or SHARED_BENCH) and restic (apt-get install restic)
#   ROUNDS=1 SIZE_MIB=256 bench/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$repo/../shared/bench}
WORK=${WORK:-/tmp/lifeboat-bench}
ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
export SIZE_MIB SEED=1

command -v restic >/dev/null || { echo "restic missing: apt-get install -y restic" >&2; exit 2; }
[ -x "$SHARED_BENCH/gen-dataset.sh" ] || { echo "dataset generator missing at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 2; }

mkdir -p "$WORK"
(cd "$repo" && go build -o "$WORK/lifeboat" ./cmd/lifeboat)
LB=$WORK/lifeboat
export LIFEBOAT_PASSPHRASE=bench-passphrase RESTIC_PASSWORD=bench-passphrase
results=$WORK/results.tsv
: >"$results"

# timed TOOL STEP ROUND CMD...: run CMD, append "tool step round wall user sys maxrss_kib".
timed() {
	local tool=$1 step=$2 round=$3; shift 3
	sync # page cache stays warm for both tools (the dataset was just copied)
	/usr/bin/time -f "%e %U %S %M" -o "$WORK/time.out" "$@" >"$WORK/$tool-$step.log" 2>&1 ||
		{ echo "$tool $step failed:" >&2; tail -5 "$WORK/$tool-$step.log" >&2; exit 1; }
	printf '%s\t%s\t%s\t%s\n' "$tool" "$step" "$round" "$(tr ' ' '\t' <"$WORK/time.out")" >>"$results"
}

# cold: a restore starts from a cold page cache, as a disaster restore on
# another machine does; both tools then read their vault from disk and start
# from the same memory state. (Warm, the timings swung by 2x with whatever
# ran before: a tree just deleted makes the next writes slow on these VMs.)
cold() {
	sync
	if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

pristine=$WORK/pristine
if [ ! -f "$pristine/.complete-$SIZE_MIB" ]; then
	rm -rf "$pristine"
	"$SHARED_BENCH/gen-dataset.sh" gen "$pristine" >/dev/null
	touch "$pristine/.complete-$SIZE_MIB"
fi

for round in $(seq 1 "$ROUNDS"); do
	data=$WORK/data
	rm -rf "$data" "$WORK"/lb-vault "$WORK"/restic-repo "$WORK"/restore-*
	cp -a "$pristine" "$data"; rm -f "$data"/.complete-*
	tools=(lifeboat restic); [ $((round % 2)) = 0 ] && tools=(restic lifeboat)
	# Key derivation, separately: vault/repository creation.
	timed lifeboat init "$round" "$LB" vault init --vault "$WORK/lb-vault"
	timed restic init "$round" restic init --repo "$WORK/restic-repo"
	step() { # step NAME
		for t in "${tools[@]}"; do
			case $t in
			lifeboat) timed lifeboat "$1" "$round" "$LB" vault backup -q --vault "$WORK/lb-vault" "$data" ;;
			restic) timed restic "$1" "$round" restic backup -q --repo "$WORK/restic-repo" "$data" ;;
			esac
		done
	}
	step first
	step nochange
	"$SHARED_BENCH/gen-dataset.sh" mutate "$data" >/dev/null
	step change5
	for t in "${tools[@]}"; do
		cold
		case $t in
		lifeboat) timed lifeboat restore "$round" "$LB" vault restore -q --vault "$WORK/lb-vault" latest --to "$WORK/restore-lb-$round" ;;
		restic) timed restic restore "$round" restic restore --repo "$WORK/restic-repo" latest --target "$WORK/restore-restic-$round" ;;
		esac
	done
	# Open cost alone (key derivation plus index load): listing points.
	timed lifeboat open "$round" "$LB" vault points --vault "$WORK/lb-vault"
	timed restic open "$round" restic snapshots --repo "$WORK/restic-repo"
	printf 'lifeboat\tvault_bytes\t%s\t%s\t0\t0\t0\n' "$round" "$(du -sb "$WORK/lb-vault" | cut -f1)" >>"$results"
	printf 'restic\tvault_bytes\t%s\t%s\t0\t0\t0\n' "$round" "$(du -sb "$WORK/restic-repo" | cut -f1)" >>"$results"
	rm -rf "$WORK"/restore-*
done

python3 - "$results" <<'PY'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
d = collections.defaultdict(list)
for tool, step, rnd, wall, user, sys_, rss in rows:
    d[(tool, step)].append((float(wall), float(user), float(sys_), int(rss)))
def med(tool, step, i):
    v = d.get((tool, step))
    return st.median(x[i] for x in v) if v else float("nan")
print(f"{'step':10} {'lifeboat wall':>13} {'restic wall':>11} {'ratio':>6} {'lb user+sys':>11} {'restic u+s':>10} {'lb RSS MiB':>10} {'restic RSS':>10}")
for step in ["init", "first", "nochange", "change5", "restore", "open"]:
    lw, rw = med("lifeboat", step, 0), med("restic", step, 0)
    lc = med("lifeboat", step, 1) + med("lifeboat", step, 2)
    rc = med("restic", step, 1) + med("restic", step, 2)
    print(f"{step:10} {lw:13.2f} {rw:11.2f} {rw/lw if lw else 0:6.2f} {lc:11.2f} {rc:10.2f} {med('lifeboat', step, 3)/1024:10.0f} {med('restic', step, 3)/1024:10.0f}")
lv, rv = med("lifeboat", "vault_bytes", 0), med("restic", "vault_bytes", 0)
print(f"vault size: lifeboat {lv/2**20:.0f} MiB, restic {rv/2**20:.0f} MiB, ratio {lv/rv:.3f}")
print("ratio = restic wall / lifeboat wall (higher is better for lifeboat); medians of", len(d[("lifeboat","first")]), "rounds")
PY
