#!/usr/bin/env bash
# The benchmark (`npm run bench`, `npm run bench -- --quick`): sets everything up (scripts/setup.sh), then
# measures the workflows against a hand-written QMP script (bench/direct-qmp.ts) and against dd on the same
# VMs in one run. Prints a table; writes bench/results/latest.json (+ a timestamped copy) and SVG charts.
# Options: --quick (a few minutes), --only guest,ram,disk,tiny,protect, --reps N.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

if [ "$(id -u)" -ne 0 ]; then
  echo "the benchmark needs root (like the tests: VM processes, namespaces)" >&2
  exit 2
fi

bash scripts/setup.sh

# Whatever the run leaves behind (an interrupted run, a crash) is removed at the end, as for the tests.
janitor=$(mktemp -d /tmp/vccr-janitor-XXXXXX)
export VCCR_JANITOR_DIR="$janitor"
export VCCR_LOG_LEVEL="${VCCR_LOG_LEVEL:-warn}"
sweep() { node dist/harness/sweep.js "$janitor" || true; }
trap 'sweep' EXIT

status=0
node dist/bench/run.js "$@" || status=$?
exit "$status"
