#!/usr/bin/env bash
# `npm run histories:record`: re-records test/histories/ from real runs (scripts/record-histories.ts).
# Like the tests it needs root (QEMU VMs, host workers) and cleans up whatever it started.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
if [ "$(id -u)" -ne 0 ]; then
  echo "recording histories needs root, as the tests do" >&2
  exit 2
fi
bash scripts/setup.sh
janitor=$(mktemp -d /tmp/vccr-janitor-XXXXXX)
export VCCR_JANITOR_DIR="$janitor"
export VCCR_LOG_LEVEL="${VCCR_LOG_LEVEL:-warn}"
trap 'node dist/harness/sweep.js "$janitor"' EXIT
node dist/scripts/record-histories.js
