#!/usr/bin/env bash
# The test command (`npm test`): sets everything up (scripts/setup.sh), then runs every test against the
# real Temporal dev server and real QEMU VMs, one file at a time, and finally checks nothing was left
# behind. Options: --faults (only the fault-injection suite, 5 runs per fault case; its ordering-chaos case
# then makes 20 runs, VCCR_CHAOS_RUNS), --runs N (runs per fault case; default 3 in the whole suite, which
# keeps it well inside CI's time, 5 with --faults: RELIABILITY.md's figures come from that), or test file
# names (e.g. test/qmp.test.ts) to run only those.
source "$(dirname "$0")/lib.sh"
require_root "the tests need root: they create network namespaces, bridges and tap devices"

only_faults=0
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --faults) only_faults=1; export VCCR_CHAOS_RUNS="${VCCR_CHAOS_RUNS:-20}" ;;
    --runs) export VCCR_FAULT_RUNS="$2"; shift ;;
    --runs=*) export VCCR_FAULT_RUNS="${1#--runs=}" ;;
    test/*.ts) f="${1#test/}"; files+=("dist/test/${f%.ts}.js") ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$only_faults" -eq 1 ]; then export VCCR_FAULT_RUNS="${VCCR_FAULT_RUNS:-5}"
elif [ ${#files[@]} -eq 0 ]; then export VCCR_FAULT_RUNS="${VCCR_FAULT_RUNS:-3}"; fi

bash scripts/setup.sh

if [ ${#files[@]} -eq 0 ]; then
  if [ "$only_faults" -eq 1 ]; then
    mapfile -t files < <(ls dist/test/faults/*.test.js 2>/dev/null)
  else
    mapfile -t files < <(ls dist/test/*.test.js dist/test/faults/*.test.js 2>/dev/null)
  fi
fi

start_janitor
# Each fault-suite run appends its outcome here; the summary is printed at the end.
export VCCR_FAULT_REPORT="$repo/.cache/fault-report-$(date +%Y%m%d-%H%M%S).jsonl"

started=$(date +%s)
status=0
node --test --test-concurrency=1 --test-timeout=900000 "${files[@]}" || status=$?
echo "# test wall time: $(( $(date +%s) - started ))s for ${#files[@]} files"
if [ -f "$VCCR_FAULT_REPORT" ]; then
  echo "# fault suite ($VCCR_FAULT_REPORT):"
  node dist/scripts/fault-report.js "$VCCR_FAULT_REPORT" | sed 's/^/# /'
fi
trap - EXIT
sweep || status=1
exit "$status"
