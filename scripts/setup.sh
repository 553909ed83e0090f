#!/usr/bin/env bash
# Idempotent setup: installs what VCCR needs from the registries this machine reaches, skips what is
# already there, and says what it did. Run by `npm run demo` and `npm test`; safe to run any time.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache="$repo/.cache"
mkdir -p "$cache"
t_all=$(date +%s.%N)

say() { printf '[setup] %s\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -------------------------------------------------------------------------------
# qemu-system-x86/qemu-utils: the hypervisor and qemu-img; busybox-static + cpio + gcc: the test guest;
# iproute2: bridges, taps and namespaces for the guest network; python3-yaml: the compose file test;
# chromium: the headless browser of the Web UI test (test/webui.test.ts), Debian's own build;
# strace: the race tests watch the controller's fsync/unlink order with it.
apt_packages=(qemu-system-x86 qemu-utils busybox-static cpio iproute2 gcc libc6-dev python3-yaml openssl util-linux chromium strace)
t=$(date +%s.%N)
missing=()
for p in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "apt: done in $(elapsed "$t")"
else
  say "apt: all ${#apt_packages[@]} packages present"
fi

# --- Temporal CLI (dev server + `temporal workflow start`) -----------------------------------------
bash "$repo/scripts/install-temporal-cli.sh"

# --- npm packages ----------------------------------------------------------------------------------
t=$(date +%s.%N)
lock_hash=$(sha256sum "$repo/package-lock.json" | cut -c1-64)
if [ -f "$repo/node_modules/.vccr-lock-hash" ] && [ "$(cat "$repo/node_modules/.vccr-lock-hash")" = "$lock_hash" ]; then
  say "npm: node_modules matches package-lock.json"
else
  say "npm: npm ci"
  (cd "$repo" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$repo/node_modules/.vccr-lock-hash"
  say "npm: done in $(elapsed "$t")"
fi

# --- TypeScript build ------------------------------------------------------------------------------
# Skipped when no source, config or dependency changed since the last build.
t=$(date +%s.%N)
src_hash=$(cd "$repo" && { find activities workflows workers client common harness test bench scripts -name '*.ts' -type f 2>/dev/null | sort | xargs cat; cat tsconfig.json package-lock.json; } | sha256sum | cut -c1-64)
if [ -f "$repo/dist/.build-hash" ] && [ "$(cat "$repo/dist/.build-hash")" = "$src_hash" ]; then
  say "build: dist/ is up to date"
else
  (cd "$repo" && npm run --silent build)
  echo "$src_hash" > "$repo/dist/.build-hash"
  say "build: tsc + workflow bundle in $(elapsed "$t")"
fi

# --- Test guest image ------------------------------------------------------------------------------
bash "$repo/guest/build.sh"

say "setup complete in $(elapsed "$t_all")"
