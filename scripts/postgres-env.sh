# shellcheck shell=bash
# Sourced (not run) by .ci/run and scripts/with-postgres.sh: unless
# PEMBA_TEST_POSTGRES_URI already names a server, it starts the throwaway
# PostgreSQL 15 clusters that the PostgreSQL tests use, on Unix sockets in
# a temp dir (no TCP ports, so they cannot clash with another server),
# exports the PEMBA_TEST_POSTGRES_* variables that name them, and stops
# them when the sourcing shell exits (trap EXIT):
#
#   - a primary (port 5433) with fsync off: every pgstore test makes its
#     own randomly named database on it;
#   - a hot standby streaming from it (5434), for the read-replica test;
#   - a third cluster (5435) that only the database-restart test uses (it
#     restarts it under load; pg_ctl restart reuses the start options).
#
# Where the PostgreSQL 15 binaries are missing it installs Debian's
# postgresql-15 (as root). Run as root, the clusters run as the postgres
# user.
#
# The failover tests start clusters of their own (initdb, pg_basebackup,
# pg_ctl from PEMBA_TEST_POSTGRES_BIN, default the directory below), so
# the binaries are installed even when PEMBA_TEST_POSTGRES_URI is given.
pgbin=${PEMBA_TEST_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$pgbin/initdb" ] && [ -z "${PEMBA_TEST_POSTGRES_BIN:-}" ]; then
	echo "== install postgresql-15"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi
if [ -z "${PEMBA_TEST_POSTGRES_URI:-}" ]; then
	unset PEMBA_TEST_POSTGRES_REPLICA_URI # it must stream from the server started here
	echo "== postgresql"
	pgdir=$(mktemp -d /tmp/pemba-ci-pg.XXXXXX)
	as_pg=()
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$pgdir"
		as_pg=(runuser -u postgres --)
	fi
	stop_pg() {
		"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/restart" -m immediate stop >/dev/null 2>&1 || true
		"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/replica" -m immediate stop >/dev/null 2>&1 || true
		"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
		rm -rf "$pgdir"
	}
	trap stop_pg EXIT
	cd "$pgdir" # the postgres user may not be allowed into the clone
	"${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$pgdir/initdb.log" 2>&1 ||
		{ cat "$pgdir/initdb.log"; exit 1; }
	# A throwaway cluster: durability settings off for speed.
	"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
		-o "-c listen_addresses='' -k $pgdir -p 5433 -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null || { cat "$pgdir/server.log"; exit 1; }
	export PEMBA_TEST_POSTGRES_URI="postgres://postgres@/postgres?host=$pgdir&port=5433&sslmode=disable"
	# A hot standby streaming from it, for the read-replica test.
	"${as_pg[@]}" "$pgbin/pg_basebackup" -h "$pgdir" -p 5433 -U postgres -D "$pgdir/replica" -R -X stream -c fast
	"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/replica" -l "$pgdir/replica.log" -w -t 60 \
		-o "-c listen_addresses='' -k $pgdir -p 5434 -c max_connections=200 -c fsync=off -c full_page_writes=off" \
		start >/dev/null || { cat "$pgdir/replica.log"; exit 1; }
	export PEMBA_TEST_POSTGRES_REPLICA_URI="postgres://postgres@/postgres?host=$pgdir&port=5434&sslmode=disable"
	# A third cluster that only the database-restart test uses (it
	# restarts it under load); pg_ctl restart reuses the start options.
	"${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/restart" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$pgdir/initdb-restart.log" 2>&1 ||
		{ cat "$pgdir/initdb-restart.log"; exit 1; }
	"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/restart" -l "$pgdir/restart.log" -w -t 60 \
		-o "-c listen_addresses='' -k $pgdir -p 5435 -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null || { cat "$pgdir/restart.log"; exit 1; }
	export PEMBA_TEST_POSTGRES_RESTART_URI="postgres://postgres@/postgres?host=$pgdir&port=5435&sslmode=disable"
	export PEMBA_TEST_POSTGRES_RESTART_CMD="cd $pgdir && ${as_pg[*]} $pgbin/pg_ctl -D $pgdir/restart -l $pgdir/restart.log -m fast -w -t 60 restart"
	"$pgbin/postgres" --version
	cd - >/dev/null
fi

