#!/usr/bin/env bash
# Runs a command with throwaway PostgreSQL clusters for the PostgreSQL
# tests, started and stopped the way .ci/run does it (scripts/postgres-env.sh):
#
#   scripts/with-postgres.sh go test ./...
#   scripts/with-postgres.sh go test ./engine/store/pgstore/...
#
# Without a command it runs `go test ./...`. Give PEMBA_TEST_POSTGRES_URI
# to use a server of your own instead (the restart and replica tests then
# need PEMBA_TEST_POSTGRES_RESTART_URI/_CMD and _REPLICA_URI as well).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/postgres-env.sh
if [ "$#" = 0 ]; then
	set -- go test ./...
fi
"$@"
