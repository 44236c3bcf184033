#!/bin/bash
# The standby: on first start, clone the primary with pg_basebackup (which
# also writes standby.signal and primary_conninfo, -R) through a physical
# replication slot, then run as a hot standby streaming WAL.
set -euo pipefail
: "${PRIMARY_HOST:?}" "${PGPASSWORD:?}"
export PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h "$PRIMARY_HOST" -U replicator; do sleep 1; done
  pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" \
    --wal-method=stream --write-recovery-conf \
    --create-slot --slot=standby_1 --checkpoint=fast --progress
  chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on
