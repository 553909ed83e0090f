#!/usr/bin/env bash
# The demo (`npm run demo`): sets everything up, then checkpoints and restarts a 4-VM token ring.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
if [ "$(id -u)" -ne 0 ]; then
  echo "the demo needs root: it creates a network namespace, a bridge and tap devices for the VMs" >&2
  exit 2
fi
bash scripts/setup.sh
export VCCR_LOG_LEVEL="${VCCR_LOG_LEVEL:-warn}"
exec node dist/scripts/demo.js "$@"
