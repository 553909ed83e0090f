#!/usr/bin/env bash
# The benchmark (`npm run bench`, `npm run bench -- --quick`): sets everything up (scripts/setup.sh), then
# measures the workflows against a hand-written QMP script (bench/direct-qmp.ts) and against dd on the same
# VMs in one run. Prints a table; writes bench/results/latest.json (+ a timestamped copy) and SVG charts.
# Options: --quick (a few minutes), --only guest,ram,disk,tiny,protect, --reps N.
source "$(dirname "$0")/lib.sh"
require_root "the benchmark needs root (like the tests: VM processes, namespaces)"
bash scripts/setup.sh
# Whatever the run leaves behind (an interrupted run, a crash) is removed at the end, as for the tests.
start_janitor

status=0
node dist/bench/run.js "$@" || status=$?
exit "$status"
