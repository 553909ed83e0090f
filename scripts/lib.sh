# Sourced by the entry scripts (test.sh, bench.sh, demo.sh, record-histories.sh): run from the repository,
# as root, and sweep at exit whatever a run leaves behind (the harness janitor: processes, namespaces,
# mounts and files registered under $VCCR_JANITOR_DIR).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export VCCR_LOG_LEVEL="${VCCR_LOG_LEVEL:-warn}"

# require_root REASON: exits 2 with REASON unless running as root.
require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$1" >&2
    exit 2
  fi
}

# start_janitor: a fresh janitor folder for this run, swept at exit (sweep may also be called earlier).
start_janitor() {
  janitor=$(mktemp -d /tmp/vccr-janitor-XXXXXX)
  export VCCR_JANITOR_DIR="$janitor"
  trap 'sweep || true' EXIT
}
sweep() { node dist/harness/sweep.js "$janitor"; }
