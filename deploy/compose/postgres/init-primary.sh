#!/bin/bash
# Runs once, when the primary's data directory is initialised (the postgres
# image's /docker-entrypoint-initdb.d). Creates the role the standby streams
# WAL with and lets it connect for replication.
set -euo pipefail
: "${PATHWAY_REPLICATION_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$PATHWAY_REPLICATION_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD %L', :'pw') \gexec
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
