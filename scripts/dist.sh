#!/usr/bin/env bash
# `npm run dist`: the release tarball release/vccr-<version>-linux-x64.tar.gz, installable on a Debian 12
# x86_64 host with Node.js 20 and QEMU and nothing else (see deploy/INSTALL.md, shipped in it):
#   bin/      vccr, vccr-controller-worker, vccr-host-worker
#   dist/     the compiled product (client, workers, activities, workflows, common, node; no tests, harness,
#             benchmarks or source maps) and the prebuilt workflow bundle
#   node_modules/  production dependencies only (npm ci --omit=dev), with only this platform's native
#             Temporal core
#   systemd/  vccr-controller.service, vccr-host@.service      etc/  vccr.env, host.env (templates)
#   INSTALL.md, package.json, package-lock.json
# Options: --no-build (package dist/ as it is), --out DIR (default release/).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

build=1
out="$repo/release"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

version=$(node -p "require('./package.json').version")
name="vccr-$version"
tarball="$out/$name-linux-x64.tar.gz"
started=$(date +%s)
[ "$build" -eq 1 ] && npm run --silent build

stage=$(mktemp -d /tmp/vccr-dist-XXXXXX)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/dist"
for part in activities client common node workers workflows; do cp -r "dist/$part" "$root/dist/"; done
cp dist/workflow-bundle.js "$root/dist/"
find "$root/dist" -name '*.map' -delete
cp -r bin "$root/bin"
cp -r deploy/systemd "$root/systemd"
cp -r deploy/etc "$root/etc"
cp deploy/INSTALL.md package.json package-lock.json "$root/"

# Production dependencies from the lock file (npm's cache makes this offline after `npm ci`).
(cd "$root" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
# The Temporal core ships prebuilt for five platforms plus its Rust sources: keep this platform's library.
bridge="$root/node_modules/@temporalio/core-bridge"
find "$bridge/releases" -mindepth 1 -maxdepth 1 ! -name x86_64-unknown-linux-gnu -exec rm -rf {} +
rm -rf "$bridge/sdk-core" "$bridge/src" "$bridge/bridge-macros"

# Nothing shipped may load test or benchmark code.
if grep -rlE "require\(\"\.\./(\.\./)*(harness|test|bench|scripts)/" "$root/dist" >/dev/null; then
  echo "dist: shipped code requires harness/test/bench/scripts:" >&2
  grep -rlE "require\(\"\.\./(\.\./)*(harness|test|bench|scripts)/" "$root/dist" >&2
  exit 1
fi

mkdir -p "$out"
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -czf "$tarball" -C "$stage" "$name"
size=$(stat -c %s "$tarball")
unpacked=$(du -sb "$root" | cut -f1)
echo "release: $tarball"
echo "  $(( size / 1024 / 1024 )) MiB compressed, $(( unpacked / 1024 / 1024 )) MiB unpacked, sha256 $(sha256sum "$tarball" | cut -c1-16)…"
echo "  $(du -sb "$root/node_modules" | awk '{printf "%d", $1/1048576}') MiB node_modules, $(du -sb "$root/dist" | awk '{printf "%.1f", $1/1048576}') MiB dist, built in $(( $(date +%s) - started ))s"
