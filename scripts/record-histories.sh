#!/usr/bin/env bash
# `npm run histories:record`: re-records test/histories/ from real runs (scripts/record-histories.ts).
# Like the tests it needs root (QEMU VMs, host workers) and cleans up whatever it started.
source "$(dirname "$0")/lib.sh"
require_root "recording histories needs root, as the tests do"
bash scripts/setup.sh
start_janitor
node dist/scripts/record-histories.js
