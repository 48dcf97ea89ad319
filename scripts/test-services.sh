#!/usr/bin/env bash
# test-services.sh — install and start the real services the tests use, on
# 127.0.0.1 only, with throwaway data under $STATE.
#
#   scripts/test-services.sh start   install what is missing, start every service,
#                                    write $STATE/env (export LIFEBOAT_TEST_*=...)
#   scripts/test-services.sh stop    stop them (by pid) and remove $STATE
#
#   scripts/test-services.sh start && . /tmp/lifeboat-test-services/env && go test ./...
#
# Services (each is a NAME_install / NAME_start / NAME_stop triple below,
# listed in SERVICES):
#
#   pg   PostgreSQL from Debian's packages: a throwaway cluster (initdb in
#        $STATE/pg, trust auth, loopback only, fsync off) on a random port,
#        run as the postgres user when we are root (initdb refuses root).
#        LIFEBOAT_TEST_PG_DSN names a database tests may create others in.
#
#   mariadb  MariaDB from Debian's mariadb-server: a throwaway server
#        (mariadb-install-db into $STATE/mariadb) on 127.0.0.1 and a random
#        port, socket in $STATE/mariadb, run as the mysql user when we are
#        root; root logs in without a password over the socket only. The
#        user 'lifeboat'@'%' has a random password and ALL privileges WITH
#        GRANT OPTION: LIFEBOAT_TEST_MYSQL_HOST, _PORT, _USER, _PASSWORD.
#
#   s3   versitygw v1.8.0 (Apache-2.0), an S3-compatible server with a posix
#        backend (a bucket is a directory). Built once with `go install` into
#        $HOME/.cache/lifeboat-ci/versitygw-v1.8.0 (about 70 s on a cold 2-core
#        machine; concurrent builds wait on a lock), then reused. Started
#        with a versioning directory, so that tests can create buckets with
#        object lock (versioned) next to the plain test bucket.
#
#   sshd OpenSSH from Debian's openssh-server: a throwaway sshd (-D, its own
#        config with no Include, its own ed25519 host key, internal-sftp, key
#        auth only, UsePAM no) on 127.0.0.1 and a random port; config, keys and
#        log in $STATE/sshd. As root, the login user is the dedicated system
#        user lbsshtest, created once (useradd, skipped if it exists, left on
#        the machine: `userdel -r lbsshtest` removes it); otherwise sshd runs as
#        the invoking user, who is then the only login user. A client key pair
#        is generated per start: LIFEBOAT_TEST_SSH_HOST, _PORT, _USER,
#        _KEY (path of the 0600 private key), _HOSTKEY (the host's public key
#        line, "ssh-ed25519 AAAA...", for known_hosts).
#
# Every daemon's stdin, stdout and stderr are redirected (logs in $STATE/NAME/),
# so that nothing holds a CI runner's pipes open.
set -euo pipefail

STATE=${STATE:-/tmp/lifeboat-test-services}
CACHE=${LIFEBOAT_CI_CACHE:-$HOME/.cache/lifeboat-ci}
SERVICES=(pg mariadb s3 sshd)

T0=$(date +%s%N)
log() { printf '[test-services %6.1fs] %s\n' "$(( ($(date +%s%N) - T0) / 1000000 ))e-3" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port: a free port outside the usual defaults (a daemon started on it
# may still lose a race for it; callers retry).
pick_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 30000))
		port_free "$p" && { echo "$p"; return 0; }
	done
	die "no free port found"
}

# random_secret: 32 hex characters.
random_secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# wait_ready SECONDS PID LOGFILE CMD...: poll CMD every 0.1 s until it
# succeeds; fail (showing LOGFILE) if PID exits or time runs out.
wait_ready() {
	local n=$(($1 * 10)) pid=$2 logf=$3
	shift 3
	for _ in $(seq 1 "$n"); do
		"$@" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || { tail -n 20 "$logf" >&2; return 1; }
		sleep 0.1
	done
	log "timed out waiting for: $*"
	tail -n 20 "$logf" >&2
	return 1
}

# stop_pid FILE: stop the process whose pid FILE holds: TERM, then KILL after 10 s.
stop_pid() {
	local f=$1 pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

# apt_need PKG...: install the Debian packages that are missing.
apt_need() {
	local missing=() p sudo=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || sudo=(sudo)
	log "apt-get install ${missing[*]}"
	"${sudo[@]}" apt-get update -q >"$STATE/apt.log" 2>&1
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >>"$STATE/apt.log" 2>&1 ||
		{ tail -n 20 "$STATE/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
}

# --- pg: PostgreSQL -------------------------------------------------------------

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
PG_AS=()
[ "$(id -u)" = 0 ] && PG_AS=(runuser -u postgres --)

pg_install() {
	[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] && command -v psql >/dev/null && return 0
	apt_need postgresql postgresql-client
	[ -x "$(pg_bin)/initdb" ] || die "postgresql installed but initdb not found under /usr/lib/postgresql"
}

pg_start() {
	local d=$STATE/pg port bin
	bin=$(pg_bin)
	mkdir -p "$d"
	[ "$(id -u)" = 0 ] && chown postgres:postgres "$d"
	"${PG_AS[@]}" "$bin/initdb" -D "$d/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$d/initdb.log" 2>&1 ||
		{ tail -n 20 "$d/initdb.log" >&2; die "initdb failed"; }
	for attempt in 1 2 3; do
		port=$(pick_port)
		if "${PG_AS[@]}" "$bin/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 -o \
			"-p $port -k $d -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
			start </dev/null >/dev/null 2>&1; then
			break
		fi
		[ "$attempt" = 3 ] && { tail -n 20 "$d/server.log" >&2; die "postgresql did not start"; }
		log "postgresql did not start on port $port; trying another"
	done
	psql -h 127.0.0.1 -p "$port" -U postgres -qAt -v ON_ERROR_STOP=1 \
		-c "CREATE ROLE lifeboat LOGIN SUPERUSER" -c "CREATE DATABASE lifeboattest OWNER lifeboat" >/dev/null
	log "pg: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $d/data"
	cat >>"$STATE/env" <<-ENV
		export LIFEBOAT_TEST_PG_DSN='postgres://lifeboat@127.0.0.1:$port/lifeboattest?sslmode=disable'
	ENV
}

pg_stop() {
	local bin
	bin=$(pg_bin)
	[ -f "$STATE/pg/data/postmaster.pid" ] && [ -n "$bin" ] &&
		"${PG_AS[@]}" "$bin/pg_ctl" -D "$STATE/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
}

# --- mariadb: MariaDB -----------------------------------------------------------

MY_AS=()
[ "$(id -u)" = 0 ] && MY_AS=(runuser -u mysql --)

mariadb_install() {
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_need mariadb-server
	command -v mariadb >/dev/null && command -v mariadb-dump >/dev/null || apt_need mariadb-client
	command -v mariadb-install-db >/dev/null || die "mariadb-server installed but mariadb-install-db not found"
}

mariadb_start() {
	local d=$STATE/mariadb port pid password mariadbd
	mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
	mkdir -p "$d"
	[ "$(id -u)" = 0 ] && chown mysql:mysql "$d"
	# --no-defaults everywhere: nothing from /etc/mysql (system socket, port...) leaks in.
	# "normal" root authentication: root without a password; below, every
	# root account but root@localhost (which only the socket reaches) goes.
	"${MY_AS[@]}" mariadb-install-db --no-defaults --datadir="$d/data" --auth-root-authentication-method=normal \
		--skip-test-db --skip-name-resolve </dev/null >"$d/install.log" 2>&1 ||
		{ tail -n 20 "$d/install.log" >&2; die "mariadb-install-db failed"; }
	for attempt in 1 2 3; do
		port=$(pick_port)
		"${MY_AS[@]}" "$mariadbd" --no-defaults --datadir="$d/data" --socket="$d/mysql.sock" \
			--pid-file="$d/mariadbd.pid" --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
			--innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=0 --max-connections=300 \
			--log-error="$d/error.log" </dev/null >/dev/null 2>&1 &
		pid=$!
		echo "$pid" >"$d/pid" # runuser's pid when root; mariadbd.pid holds the server's own
		if wait_ready 30 "$pid" "$d/error.log" mariadb-admin --no-defaults --socket="$d/mysql.sock" -u root ping; then
			break
		fi
		mariadb_stop
		[ "$attempt" = 3 ] && die "mariadb did not start (its log is above)"
		log "mariadb did not start on port $port; trying another"
	done
	password=$(random_secret)
	# The password goes through stdin, not argv (readable in /proc).
	mariadb --no-defaults --socket="$d/mysql.sock" -u root --batch >/dev/null <<-SQL
		DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';
		FLUSH PRIVILEGES;
		CREATE USER 'lifeboat'@'%' IDENTIFIED BY '$password';
		GRANT ALL PRIVILEGES ON *.* TO 'lifeboat'@'%' WITH GRANT OPTION;
	SQL
	log "mariadb: MariaDB $(mariadb --no-defaults --socket="$d/mysql.sock" -u root -N -B -e 'SELECT VERSION()') on 127.0.0.1:$port, data in $d/data"
	cat >>"$STATE/env" <<-ENV
		export LIFEBOAT_TEST_MYSQL_HOST=127.0.0.1
		export LIFEBOAT_TEST_MYSQL_PORT=$port
		export LIFEBOAT_TEST_MYSQL_USER=lifeboat
		export LIFEBOAT_TEST_MYSQL_PASSWORD=$password
	ENV
}

mariadb_stop() {
	stop_pid "$STATE/mariadb/mariadbd.pid"
	stop_pid "$STATE/mariadb/pid"
}

# --- s3: versitygw ------------------------------------------------------------

VGW_VERSION=v1.8.0
VGW_DIR=${VGW_DIR:-$CACHE/versitygw-$VGW_VERSION}
VGW=$VGW_DIR/versitygw
S3_BUCKET=vault-test
S3_ACCESS=lifeboattest

s3_install() {
	[ -x "$VGW" ] && return 0
	mkdir -p "$CACHE"
	# One build at a time per machine: a second caller waits, then finds
	# the binary.
	exec 9>"$CACHE/versitygw.lock"
	flock 9
	if [ ! -x "$VGW" ]; then
		command -v go >/dev/null || die "go is needed to build versitygw"
		log "building versitygw $VGW_VERSION into $VGW_DIR (first run on this machine only, ~70 s)"
		GOBIN="$VGW_DIR" GOFLAGS=-trimpath go install -ldflags='-s -w' \
			"github.com/versity/versitygw/cmd/versitygw@$VGW_VERSION" >"$STATE/s3-build.log" 2>&1 ||
			{ tail -n 30 "$STATE/s3-build.log" >&2; die "building versitygw failed"; }
	fi
	flock -u 9
	exec 9>&-
}

s3_start() {
	local d=$STATE/s3 secret port pid
	mkdir -p "$d/data/$S3_BUCKET" "$d/versions" # a bucket is a directory of the posix backend
	secret=$(random_secret)
	for attempt in 1 2 3; do
		port=$(pick_port)
		# Credentials through the environment, not argv (readable in /proc).
		ROOT_ACCESS_KEY_ID=$S3_ACCESS ROOT_SECRET_ACCESS_KEY=$secret \
			"$VGW" --port "127.0.0.1:$port" --quiet posix --versioning-dir "$d/versions" "$d/data" </dev/null >"$d/versitygw.log" 2>&1 &
		pid=$!
		echo "$pid" >"$d/pid"
		if wait_ready 20 "$pid" "$d/versitygw.log" curl -s -o /dev/null "http://127.0.0.1:$port/"; then
			break
		fi
		stop_pid "$d/pid"
		[ "$attempt" = 3 ] && die "versitygw did not start (its log is above)"
		log "versitygw did not start on port $port; trying another"
	done
	log "s3: versitygw $VGW_VERSION on 127.0.0.1:$port, bucket $S3_BUCKET, data in $d/data"
	cat >>"$STATE/env" <<-ENV
		export LIFEBOAT_TEST_S3_ENDPOINT=127.0.0.1:$port
		export LIFEBOAT_TEST_S3_ACCESS=$S3_ACCESS
		export LIFEBOAT_TEST_S3_SECRET=$secret
		export LIFEBOAT_TEST_S3_BUCKET=$S3_BUCKET
	ENV
}

s3_stop() { stop_pid "$STATE/s3/pid"; }

# --- sshd: OpenSSH ---------------------------------------------------------------

SSHD=/usr/sbin/sshd # absolute: sshd re-execs itself and refuses a relative path
SSH_TEST_USER=lbsshtest

sshd_install() {
	# sqlite3: the SSH host's own tool, which sqlite components on SSH hosts use.
	command -v sqlite3 >/dev/null || apt_need sqlite3
	[ -x "$SSHD" ] && command -v ssh-keygen >/dev/null && return 0
	apt_need openssh-server # starts nothing (policy-rc.d), listens nowhere
	[ -x "$SSHD" ] || die "openssh-server installed but $SSHD not found"
}

sshd_start() {
	local d=$STATE/sshd port pid user
	if [ "$(id -u)" = 0 ]; then
		# A dedicated user, not root: root reads everything (hiding permission
		# bugs), runs root's ~/.bashrc on every exec and may not signal a
		# session. Created once and kept; -p '*': a locked account ('!') may not
		# log in even with a key under UsePAM no.
		user=$SSH_TEST_USER
		id -u "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash -p '*' "$user" ||
			die "useradd $user failed"
		mkdir -p -m 0755 /run/sshd # privilege separation dir; apt does not create it
	else
		user=$(id -un) # sshd runs as us, and only we can log in
	fi
	mkdir -p "$d"
	chmod 0711 "$d" # the login user reads authorized_keys_USER in here
	ssh-keygen -q -t ed25519 -N '' -C lifeboat-test-host -f "$d/hostkey" </dev/null # 0600, or sshd ignores it
	ssh-keygen -q -t ed25519 -N '' -C lifeboat-test-client -f "$d/clientkey" </dev/null
	install -m 0644 "$d/clientkey.pub" "$d/authorized_keys_$user"
	for attempt in 1 2 3; do
		port=$(pick_port)
		cat >"$d/sshd_config" <<-CONF
			ListenAddress 127.0.0.1:$port
			HostKey $d/hostkey
			PidFile $d/sshd.pid
			AuthorizedKeysFile $d/authorized_keys_%u
			AllowUsers $user
			PubkeyAuthentication yes
			PasswordAuthentication no
			KbdInteractiveAuthentication no
			PermitRootLogin no
			UsePAM no
			StrictModes no
			X11Forwarding no
			Subsystem sftp internal-sftp
			MaxStartups 200
			MaxSessions 100
			LogLevel INFO
		CONF
		"$SSHD" -t -f "$d/sshd_config" >"$d/sshd.log" 2>&1 || { cat "$d/sshd.log" >&2; die "sshd -t: bad config"; }
		# -D: no fork, so $! is sshd itself; -e: log to stderr (no syslog here).
		"$SSHD" -D -e -f "$d/sshd_config" </dev/null >"$d/sshd.log" 2>&1 &
		pid=$!
		echo "$pid" >"$d/pid"
		if wait_ready 10 "$pid" "$d/sshd.log" grep -q '^Server listening on' "$d/sshd.log"; then
			break
		fi
		stop_pid "$d/pid"
		[ "$attempt" = 3 ] && die "sshd did not start (its log is above)"
		log "sshd did not start on port $port; trying another"
	done
	log "sshd: $("$SSHD" -V 2>&1 | cut -d, -f1) on 127.0.0.1:$port, login user $user, keys in $d"
	cat >>"$STATE/env" <<-ENV
		export LIFEBOAT_TEST_SSH_HOST=127.0.0.1
		export LIFEBOAT_TEST_SSH_PORT=$port
		export LIFEBOAT_TEST_SSH_USER=$user
		export LIFEBOAT_TEST_SSH_KEY=$d/clientkey
		export LIFEBOAT_TEST_SSH_HOSTKEY='$(cut -d' ' -f1,2 "$d/hostkey.pub")'
	ENV
}

# sshd_stop stops the listener. Sessions still open keep their own sshd
# processes until their clients disconnect (tests close clients first).
sshd_stop() { stop_pid "$STATE/sshd/pid"; }

# --- main ---------------------------------------------------------------------

stop() {
	local s
	for s in "${SERVICES[@]}"; do "${s}_stop"; done
	rm -rf "$STATE"
}

start() {
	local s
	stop
	mkdir -p "$STATE"
	apt_need curl
	for s in "${SERVICES[@]}"; do "${s}_install"; done
	umask 077 # $STATE/env holds the services' throwaway secrets
	: >"$STATE/env"
	# If a service fails to start, stop the ones already running.
	trap 'stop' EXIT
	for s in "${SERVICES[@]}"; do "${s}_start"; done
	trap - EXIT
	log "services up: ${SERVICES[*]}; variables in $STATE/env"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
