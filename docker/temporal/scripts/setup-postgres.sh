#!/bin/sh
# Creates (first run) or upgrades (after the admin-tools/server tag is bumped) Temporal's PostgreSQL
# schema: the `temporal` and `temporal_visibility` databases. Run by the temporal-admin-tools service of
# docker-compose.temporal.yml, before the server starts. Every step is idempotent:
#   - create-database ignores "already exists";
#   - setup-schema -v 0.0 only creates the version tables, and skips when the schema is newer than 0.0;
#   - update-schema applies only the versioned scripts newer than the recorded version.
# Based on temporalio/samples-server compose/scripts/setup-postgres.sh.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS (the PostgreSQL host) is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required (temporal-sql-tool reads it from the environment)}"
port=${DB_PORT:-5432}
schema=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema}/postgresql/v12 # where the admin-tools image has it

sql_tool() {
  temporal-sql-tool --plugin postgres12 --endpoint "$POSTGRES_SEEDS" --port "$port" --user "$POSTGRES_USER" "$@"
}

# PostgreSQL is already healthy when compose starts this job; retry briefly anyway (e.g. a slow restart).
attempt=1
until nc -z -w 5 "$POSTGRES_SEEDS" "$port"; do
  if [ "$attempt" -ge 30 ]; then
    echo "PostgreSQL at $POSTGRES_SEEDS:$port is not reachable after $attempt attempts" >&2
    exit 1
  fi
  echo "waiting for PostgreSQL at $POSTGRES_SEEDS:$port ($attempt/30)"
  attempt=$((attempt + 1))
  sleep 2
done

for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  dir=$schema/${pair#*:}/versioned
  echo "schema: database $db from $dir"
  sql_tool --database "$db" create-database
  sql_tool --database "$db" setup-schema -v 0.0
  sql_tool --database "$db" update-schema -d "$dir"
done

echo 'schema: PostgreSQL schema is current'
