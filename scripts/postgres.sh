#!/usr/bin/env bash
# Ensure a PostgreSQL server is available, then run a command against it.
#
# Usage:
#   scripts/postgres.sh test -- CMD ARGS...
#       Exports TEST_DATABASE_URL and runs CMD. Uses, in order: an existing
#       TEST_DATABASE_URL; a server answering at 127.0.0.1:5432; a throwaway
#       cluster in a temp dir (stopped and removed on exit).
#   scripts/postgres.sh run -- CMD ARGS...
#       Exports DATABASE_URL and runs CMD. Uses an existing DATABASE_URL, else
#       a persistent local cluster of its own under ${SYNCD_DATA_DIR:-./data}/pg
#       on port 55433 (initdb the first time; stopped on exit), so dev data
#       never lands in another server.
#
# Environment:
#   SYNCD_PG_PROBE_PORT  port probed for an already-running server (test mode, default 5432)
#   SYNCD_DATA_DIR       data dir for the persistent cluster (run mode, default ./data)
set -euo pipefail

PROG=postgres.sh
PROBE_PORT="${SYNCD_PG_PROBE_PORT:-5432}"
URL_VAR=TEST_DATABASE_URL
THROWAWAY_BASE_PORT=55432
RUN_PORT=55433

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	cat >&2 <<-EOF
	usage: $0 test -- CMD [ARGS...]
	       $0 run  -- CMD [ARGS...]
	EOF
	exit 2
}

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# pg_answers PORT: true if a PostgreSQL server answers on 127.0.0.1:PORT.
pg_answers() {
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h 127.0.0.1 -p "$1" -t 3 >/dev/null 2>&1
	else
		port_open "$1"
	fi
}

is_root() { [ "$(id -u)" -eq 0 ]; }

INITDB=""
PG_CTL=""

# find_pg_bins: set INITDB/PG_CTL from PATH or /usr/lib/postgresql/*/bin.
find_pg_bins() {
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		INITDB="$(command -v initdb)"
		PG_CTL="$(command -v pg_ctl)"
		return 0
	fi
	local dir
	dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
	if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
		INITDB="$dir/initdb"
		PG_CTL="$dir/pg_ctl"
		return 0
	fi
	return 1
}

# ensure_pg_bins: find initdb/pg_ctl, installing PostgreSQL via apt when root.
ensure_pg_bins() {
	find_pg_bins && return 0
	if is_root && command -v apt-get >/dev/null 2>&1; then
		log "initdb/pg_ctl not found; installing postgresql with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		if ! apt-get install -y -q postgresql >&2; then
			apt-get update -q >&2
			apt-get install -y -q postgresql >&2
		fi
		find_pg_bins && return 0
	fi
	die "no PostgreSQL server found; install PostgreSQL (initdb/pg_ctl) or set $URL_VAR"
}

# ensure_pg_user: initdb refuses to run as root, so as root we run the server
# binaries as the postgres system user (created if absent).
ensure_pg_user() {
	is_root || return 0
	if ! id -u postgres >/dev/null 2>&1; then
		log "creating system user postgres"
		useradd --system --user-group --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin postgres
	fi
}

# as_pg CMD...: run CMD as the postgres user when root, else directly.
# Runs from / so pg_ctl never trips over an unreadable working directory.
as_pg() {
	if is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# pg_own DIR: make DIR owned by the user that runs the server.
pg_own() {
	if is_root; then
		chown -R postgres: "$1"
	fi
}

# socket_opt DIR: pg_ctl -o fragment putting the unix socket in DIR, or
# disabling unix sockets if DIR is too long for a socket path.
socket_opt() {
	if [ "${#1}" -le 80 ]; then
		printf "%s" "-c unix_socket_directories='$1'"
	else
		printf "%s" "-c unix_socket_directories=''"
	fi
}

url_for_port() {
	printf 'postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable' "$1"
}

# ---------------------------------------------------------------------------

mode_test() {
	if [ -n "${TEST_DATABASE_URL:-}" ]; then
		log "using TEST_DATABASE_URL from environment"
		exec "$@"
	fi
	if pg_answers "$PROBE_PORT"; then
		export TEST_DATABASE_URL
		TEST_DATABASE_URL="$(url_for_port "$PROBE_PORT")"
		log "using existing server at 127.0.0.1:$PROBE_PORT"
		exec "$@"
	fi

	ensure_pg_bins
	ensure_pg_user

	local port=$THROWAWAY_BASE_PORT
	while port_open "$port"; do
		port=$((port + 1))
		[ "$port" -lt $((THROWAWAY_BASE_PORT + 100)) ] || die "no free port in $THROWAWAY_BASE_PORT..$port"
	done

	TMP_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/syncd-pg.XXXXXX")"
	TMP_PG_STARTED=0
	cleanup_test() {
		local rc=$?
		if [ "$TMP_PG_STARTED" = 1 ]; then
			as_pg "$PG_CTL" stop -D "$TMP_PG_DIR/data" -m immediate -s >/dev/null 2>&1 || true
		fi
		rm -rf "$TMP_PG_DIR"
		exit "$rc"
	}
	trap cleanup_test EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	mkdir -p "$TMP_PG_DIR/data" "$TMP_PG_DIR/sock"
	pg_own "$TMP_PG_DIR"

	log "starting throwaway cluster in $TMP_PG_DIR on 127.0.0.1:$port"
	if ! as_pg "$INITDB" -D "$TMP_PG_DIR/data" -A trust -U postgres --no-sync \
		-E UTF8 --locale=C >"$TMP_PG_DIR/initdb.log" 2>&1; then
		cat "$TMP_PG_DIR/initdb.log" >&2
		die "initdb failed"
	fi
	TMP_PG_STARTED=1
	if ! as_pg "$PG_CTL" start -D "$TMP_PG_DIR/data" -l "$TMP_PG_DIR/server.log" -w -t 60 -s \
		-o "-c listen_addresses=127.0.0.1 -p $port $(socket_opt "$TMP_PG_DIR/sock") -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
		>&2; then
		cat "$TMP_PG_DIR/server.log" >&2 || true
		die "pg_ctl start failed"
	fi

	export TEST_DATABASE_URL
	TEST_DATABASE_URL="$(url_for_port "$port")"
	log "using throwaway cluster at 127.0.0.1:$port"
	local status=0
	"$@" || status=$?
	exit "$status"
}

mode_run() {
	if [ -n "${DATABASE_URL:-}" ]; then
		log "using DATABASE_URL from environment"
		exec "$@"
	fi
	ensure_pg_bins
	ensure_pg_user

	local data_dir="${SYNCD_DATA_DIR:-./data}"
	mkdir -p "$data_dir"
	data_dir="$(cd "$data_dir" && pwd -P)"
	RUN_PG_DIR="$data_dir/pg"

	# As root the server runs as postgres, which must be able to reach the
	# cluster. A clone in root's home (or any 0700 directory) is out of its
	# reach: the cluster then lives under /var/lib/syncd-dev, one per data
	# dir (named by a hash of its path), so `make run` works there too.
	if is_root && ! runuser -u postgres -- test -x "$data_dir"; then
		if runuser -u postgres -- test -x "$(dirname "$data_dir")"; then
			log "granting search permission (o+x) on $data_dir so user postgres can reach $data_dir/pg"
			chmod o+x "$data_dir"
		else
			local key
			key="$(printf '%s' "$data_dir" | sha256sum | cut -c1-12)"
			RUN_PG_DIR="/var/lib/syncd-dev/$key/pg"
			mkdir -p "/var/lib/syncd-dev/$key"
			chmod 0755 /var/lib/syncd-dev "/var/lib/syncd-dev/$key"
			printf '%s\n' "$data_dir" >"/var/lib/syncd-dev/$key/data-dir"
			log "user postgres cannot reach $data_dir (a parent directory is private): the dev cluster lives in $RUN_PG_DIR"
		fi
	fi

	if [ ! -f "$RUN_PG_DIR/PG_VERSION" ]; then
		log "initializing local cluster in $RUN_PG_DIR"
		mkdir -p "$RUN_PG_DIR"
		chmod 0700 "$RUN_PG_DIR"
		pg_own "$RUN_PG_DIR"
		if ! as_pg "$INITDB" -D "$RUN_PG_DIR" -A trust -U postgres -E UTF8 --locale=C \
			>"$RUN_PG_DIR.initdb.log" 2>&1; then
			cat "$RUN_PG_DIR.initdb.log" >&2
			die "initdb failed"
		fi
		rm -f "$RUN_PG_DIR.initdb.log"
	fi

	if port_open "$RUN_PORT"; then
		die "port $RUN_PORT on 127.0.0.1 is already in use (is another 'make run' active?)"
	fi

	RUN_PG_LOG="$RUN_PG_DIR/server.log"
	RUN_PG_STARTED=0
	cleanup_run() {
		local rc=$?
		if [ "$RUN_PG_STARTED" = 1 ]; then
			log "stopping local cluster in $RUN_PG_DIR"
			as_pg "$PG_CTL" stop -D "$RUN_PG_DIR" -m fast -s >/dev/null 2>&1 || true
		fi
		exit "$rc"
	}
	trap cleanup_run EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	RUN_PG_STARTED=1
	if ! as_pg "$PG_CTL" start -D "$RUN_PG_DIR" -l "$RUN_PG_LOG" -w -t 60 -s \
		-o "-c listen_addresses=127.0.0.1 -p $RUN_PORT $(socket_opt "$RUN_PG_DIR")" >&2; then
		tail -n 50 "$RUN_PG_LOG" >&2 || true
		die "pg_ctl start failed"
	fi

	export DATABASE_URL
	DATABASE_URL="$(url_for_port "$RUN_PORT")"
	log "using local cluster in $RUN_PG_DIR at 127.0.0.1:$RUN_PORT"
	local status=0
	"$@" || status=$?
	exit "$status"
}

# ---------------------------------------------------------------------------

[ $# -ge 1 ] || usage
mode="$1"
shift
[ "${1:-}" = "--" ] && shift
[ $# -ge 1 ] || usage

case "$mode" in
test) URL_VAR=TEST_DATABASE_URL mode_test "$@" ;;
run) URL_VAR=DATABASE_URL mode_run "$@" ;;
*) usage ;;
esac
