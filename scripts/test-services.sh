#!/usr/bin/env bash
# test-services.sh — install and start what the test suite needs, on 127.0.0.1.
#
#   scripts/test-services.sh start   install what is missing, start the services,
#                                    write $STATE/env (LIFEBOAT_TEST_* exports)
#   scripts/test-services.sh stop    stop them and remove $STATE
#
# Today: an S3-compatible server, versitygw (Apache-2.0), built with
# `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0` into
# $HOME/.cache/lifeboat-ci (about 70 s on a cold 2-core machine, then cached),
# run with its posix backend (a bucket is a directory). Later issues add
# PostgreSQL, MariaDB and OpenSSH here. Every daemon's stdio is redirected so
# that nothing holds a CI runner's pipes open.
set -euo pipefail
STATE=${STATE:-/tmp/lifeboat-test-services}
VGW_VERSION=v1.8.0
VGW_DIR=${VGW_DIR:-$HOME/.cache/lifeboat-ci/versitygw-$VGW_VERSION}
S3_ACCESS=lifeboattest
S3_SECRET=lifeboat-test-secret-$(date +%s)
S3_BUCKET=vault-test

T0=$(date +%s.%N)
log() { printf '[test-services %5.1fs] %s\n' "$(awk "BEGIN{print $(date +%s.%N)-$T0}")" "$*"; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# wait_for SECONDS LOGFILE CMD...: poll CMD every 0.1 s; on timeout show LOGFILE and fail.
wait_for() {
	local n=$(($1 * 10)) logf=$2
	shift 2
	for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "timed out waiting for: $*" >&2
	tail -n 30 "$logf" >&2
	exit 1
}

stop() {
	if [ -f "$STATE/s3/versitygw.pid" ]; then
		pid=$(cat "$STATE/s3/versitygw.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$STATE"
}

start() {
	stop
	mkdir -p "$STATE/s3"
	# Debian packages the tests need (python3 and curl are used right here).
	PKGS=(curl python3)
	MISSING=()
	for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || MISSING+=("$p"); done
	if [ ${#MISSING[@]} -gt 0 ]; then
		log "apt-get install ${MISSING[*]}"
		SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
		"${SUDO[@]}" apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q "${MISSING[@]}" >"$STATE/apt.log" 2>&1
	fi
	if [ ! -x "$VGW_DIR/versitygw" ]; then
		log "building versitygw $VGW_VERSION (first run on this machine only)"
		GOBIN="$VGW_DIR" GOFLAGS=-trimpath go install -ldflags='-s -w' \
			"github.com/versity/versitygw/cmd/versitygw@$VGW_VERSION" >"$STATE/vgw-build.log" 2>&1 ||
			{ cat "$STATE/vgw-build.log" >&2; exit 1; }
	fi
	port=$(free_port)
	mkdir -p "$STATE/s3/data/$S3_BUCKET"
	"$VGW_DIR/versitygw" --access "$S3_ACCESS" --secret "$S3_SECRET" --port "127.0.0.1:$port" --quiet \
		posix "$STATE/s3/data" </dev/null >"$STATE/s3/versitygw.log" 2>&1 &
	echo $! >"$STATE/s3/versitygw.pid"
	wait_for 20 "$STATE/s3/versitygw.log" curl -s -o /dev/null "http://127.0.0.1:$port/"
	log "versitygw up on 127.0.0.1:$port"
	cat >"$STATE/env" <<ENV
LIFEBOAT_TEST_S3_ENDPOINT=127.0.0.1:$port
LIFEBOAT_TEST_S3_ACCESS=$S3_ACCESS
LIFEBOAT_TEST_S3_SECRET=$S3_SECRET
LIFEBOAT_TEST_S3_BUCKET=$S3_BUCKET
ENV
	log "services up; variables in $STATE/env"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
