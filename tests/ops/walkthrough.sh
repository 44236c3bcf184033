#!/usr/bin/env bash
# The operations walkthrough, run for real: docs/operations.md, "Run two
# instances on one machine without Docker", from nothing (an empty database)
# to two `pathway serve` instances with a projector process and NATS, a
# command through one instance read back through the other, and back to
# nothing.
#
# Between the lines ">>> docs/operations.md" and "<<< docs/operations.md"
# stand exactly the commands of the doc's block (a test compares them:
# crates/pathway-cli/tests/it/walkthrough.rs). Around them only what a test
# needs: which binaries to use, a clean environment, and cleaning up after a
# failure.
#
# Run from the repository root:
#
#   PATHWAY_BIN=target/debug/pathway tests/ops/walkthrough.sh
#
# Optional: DB, WORK, NATS_PORT, PORT_A, PORT_B (defaults as in the doc;
# the test gives a unique database, a fresh directory and free ports), and
# NATS_SERVER_BIN (else nats-server 2.12 or later must be on PATH).
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, no password), curl,
# openssl and psql.
set -euo pipefail

# Doc step 0, with the caller's binaries.
if [ -n "${PATHWAY_BIN:-}" ]; then
  PATH=$(cd "$(dirname "$PATHWAY_BIN")" && pwd):$PATH
fi
if [ -n "${NATS_SERVER_BIN:-}" ]; then
  PATH=$(cd "$(dirname "$NATS_SERVER_BIN")" && pwd):$PATH
fi
export PATH
command -v pathway > /dev/null || { echo "no pathway on PATH: set PATHWAY_BIN" >&2; exit 2; }
command -v nats-server > /dev/null || { echo "no nats-server on PATH: set NATS_SERVER_BIN" >&2; exit 2; }
# From nothing: no Pathway setting of the caller's environment leaks in.
for v in $(compgen -e | grep '^PATHWAY_'); do
  [ "$v" = PATHWAY_BIN ] || unset "$v"
done

# After a failure: show the logs, stop what runs, drop the database if the
# walkthrough created it (PATHWAY_DATABASE_URL is set right after).
on_exit() {
  local status=$?
  [ "$status" -eq 0 ] && return
  echo "walkthrough failed (exit $status)" >&2
  for f in "${WORK:-/nonexistent}"/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }
  done
  local pids
  pids=$(jobs -p)
  if [ -n "$pids" ]; then
    kill $pids 2> /dev/null || true
    wait 2> /dev/null || true
  fi
  if [ -n "${PATHWAY_DATABASE_URL:-}" ]; then
    psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $DB" || true
  fi
}
trap on_exit EXIT

# >>> docs/operations.md
# 1. Names, ports and a scratch directory (the defaults, unless already set).
REPO=$PWD
DB=${DB:-pathway_local} WORK=${WORK:-/tmp/pathway-local}
NATS_PORT=${NATS_PORT:-14222} PORT_A=${PORT_A:-18081} PORT_B=${PORT_B:-18082}
mkdir -p "$WORK" && cd "$WORK"

# 2. The database (the schema is created by the first process that opens it).
psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB"
export PATHWAY_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB

# 3. Secrets, only for this shell: the token-signing secret, the master key
#    of personal data, and one NATS password per user of deploy/nats/pathway.conf.
PATHWAY_TOKEN_SECRET=$(openssl rand -hex 32)
PATHWAY_MASTER_KEY=$(pathway keys generate)
export PATHWAY_TOKEN_SECRET PATHWAY_MASTER_KEY
for u in PATHWAY DPF HRSS CIVIL_AFFAIRS EDUCATION SASAC COMMITTEE AUDIT; do
  export PATHWAY_NATS_${u}_PASSWORD="$(openssl rand -hex 16)"
done

# 4. NATS with Pathway's users; JetStream data in the scratch directory.
#    (an include is relative to the including file, so copy pathway.conf beside it)
cp "$REPO/deploy/nats/pathway.conf" .
printf 'include ./pathway.conf\nhost: 127.0.0.1\nport: %s\njetstream { store_dir: "%s/nats", sync_interval: always }\n' \
  "$NATS_PORT" "$WORK" > nats.conf
nats-server -c nats.conf > nats.log 2>&1 &
NATS_PID=$!
timeout 30 sh -c 'until grep -q "Server is ready" nats.log; do sleep 0.2; done'
grep "Listening for client connections on 127.0.0.1:$NATS_PORT" nats.log
echo "check: nats-server $NATS_PID listening on $NATS_PORT"

# 5. One projector process keeps the read models current.
pathway projections run --follow > projections.log 2>&1 &
PROJECTIONS_PID=$!

# 6. Two API instances without in-process projectors. With a NATS URL each
#    also takes part in the relay election (one leads), as in the workflows'.
export PATHWAY_NATS_URL=nats://127.0.0.1:$NATS_PORT PATHWAY_NATS_USER=pathway
export PATHWAY_NATS_PASSWORD=$PATHWAY_NATS_PATHWAY_PASSWORD
export PATHWAY_STREAM_MAX_BYTES=268435456   # 256 MiB per stream: seven fit a small disk
export PATHWAY_POLICY_FILE=$REPO/deploy/policy/authorization.toml
pathway serve --listen 127.0.0.1:$PORT_A --no-projectors > serve-a.log 2>&1 &
SERVE_A_PID=$!
pathway serve --listen 127.0.0.1:$PORT_B --no-projectors > serve-b.log 2>&1 &
SERVE_B_PID=$!
for port in $PORT_A $PORT_B; do
  timeout 60 sh -c "until curl -sf 127.0.0.1:$port/readyz > /dev/null; do sleep 0.5; done"
  echo "check: instance on port $port ready"
done

# 7. A token for the civil-affairs office, and one command through instance A.
TOKEN=$(pathway serve token issue --department civil_affairs --ttl 1h)
HOUSEHOLD=hh-230102-walkthrough-$(date +%s)
cat > command.json << EOF
{"command_id": "$(cat /proc/sys/kernel/random/uuid)", "department": "civil_affairs",
 "region": "230102", "actor": "ca-officer-9", "at": "2023-01-05T10:00:00+08:00",
 "command": {"aggregate": "household", "type": "assert_low_income_status",
  "household_ref": "$HOUSEHOLD", "members": ["$(cat /proc/sys/kernel/random/uuid)"],
  "status": "dibao", "effective_on": "2023-01-01", "asserted_by": "230102-civil-affairs"}}
EOF
curl -sf 127.0.0.1:$PORT_A/v1/commands -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' --data @command.json
echo
echo "check: command accepted by instance A"

# 8. Read it back through instance B, from the read model the projector keeps.
timeout 30 sh -c "until curl -sf 127.0.0.1:$PORT_B/v1/models/civil_affairs/households \
  -H 'authorization: Bearer $TOKEN' -H 'x-pathway-purpose: walkthrough' | grep -q $HOUSEHOLD
  do sleep 0.5; done"
echo "check: $HOUSEHOLD read back through instance B"

# 9. The relay published it: the civil-affairs office reads its NATS stream.
timeout 30 pathway subscribe --department civil_affairs --from-start --limit 1 \
  --nats-user civil_affairs --nats-password "$PATHWAY_NATS_CIVIL_AFFAIRS_PASSWORD" > received.json
grep -q "$HOUSEHOLD" received.json
echo "check: $HOUSEHOLD received from NATS"
curl -sf 127.0.0.1:$PORT_A/metrics 127.0.0.1:$PORT_B/metrics | grep -c '^pathway_relay_leader 1$' | grep -x 1
echo "check: exactly one relay leader"

# 10. Both instances still ready.
curl -sf 127.0.0.1:$PORT_A/readyz
echo
curl -sf 127.0.0.1:$PORT_B/readyz
echo
echo "check: both instances ready"

# 11. Stop everything (SIGTERM: each process drains and exits 0), then drop
#     the database and the scratch directory.
kill $SERVE_A_PID $SERVE_B_PID $PROJECTIONS_PID $NATS_PID
wait $SERVE_A_PID
wait $SERVE_B_PID
wait $PROJECTIONS_PID
wait $NATS_PID
cd "$REPO"
psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE $DB"
rm -rf "$WORK"
echo "check: stopped cleanly"
# <<< docs/operations.md
