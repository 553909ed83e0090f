#!/usr/bin/env bash
# The demo (`npm run demo`): sets everything up, then checkpoints and restarts a 4-VM token ring.
source "$(dirname "$0")/lib.sh"
require_root "the demo needs root: it creates a network namespace, a bridge and tap devices for the VMs"
bash scripts/setup.sh
exec node dist/scripts/demo.js "$@"
