#!/usr/bin/env bash
# Builds the VCCR test guest (Debian cloud kernel + busybox initramfs + our static
# workloads) into .cache/guest/<hash>/, keyed by a hash over every input, and points
# .cache/guest/current at it. A complete image for the same inputs is reused as is.
# The same build also produces initrd-mpi.img: the same initramfs plus Open MPI from Debian
# packages and an MPI job (guest/mpi/, sourced below).
# Usage: bash guest/build.sh        (any cwd; see guest/README.md for the image layout)
set -euo pipefail

guest_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$guest_dir/.." && pwd)"
cache="$repo/.cache"
out_root="$cache/guest"
debs="$cache/debs"
meta_pkg=linux-image-cloud-amd64
workloads=(ring journal memfill)
# insmod order (dependencies first); mirrored in guest/init.
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
         failover net_failover virtio_net virtio_blk)
cflags=(-static -O2 -s -std=gnu11 -Wall -Wextra -Werror)
# shellcheck source=mpi/build-mpi.sh
. "$guest_dir/mpi/build-mpi.sh" # mpi_pkgs, mpi_* functions

t0=$(date +%s%N)
log() { echo "guest image: $*"; }
elapsed() { echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"; }

mkdir -p "$out_root" "$debs"
# One build at a time (tests may call this concurrently); the lock file outlives builds.
exec 9>"$out_root/.lock"
flock 9

# --- resolve the kernel package (meta package -> versioned image package + version) and
# the Open MPI packages' candidate versions and SHA256s ---
# The candidate meta package's Depends names the image package and pins its version
# ("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"). Everything comes from one apt-cache
# call, which matters because apt's binary cache is disabled here and every apt-cache call
# costs ~1 s.
resolve_kernel() {
    local dep show
    show=$(apt-cache show --no-all-versions "$meta_pkg" "${mpi_pkgs[@]}" 2>/dev/null || true)
    mpi_ver=() mpi_sha=()
    mpi_parse_show <<<"$show"
    mpi_resolved || return 1
    dep=$(awk -v p="$meta_pkg" '/^Package: / { on = ($2 == p) } on' <<<"$show" |
          sed -n 's/^Depends:.*\(linux-image-[^ ,]*\)\( (= \([^)]*\))\)\{0,1\}.*/\1 \3/p' | head -n1)
    kpkg=${dep%% *}
    kver_pkg=${dep#* }
    if [ -n "$kpkg" ] && [ -z "$kver_pkg" ]; then # unpinned: ask for the candidate
        kver_pkg=$(apt-cache policy "$kpkg" | awk '/Candidate:/ { print $2; exit }')
    fi
    [ -n "$kpkg" ] && [ -n "$kver_pkg" ] && [ "$kver_pkg" != "(none)" ]
}
if ! resolve_kernel; then
    log "apt lists missing or stale: running apt-get update once"
    apt-get update -qq
    resolve_kernel || { echo "cannot resolve $meta_pkg and ${mpi_pkgs[*]} via apt-cache" >&2; exit 1; }
fi
kernel_release="${kpkg#linux-image-}" # e.g. 6.1.0-56-cloud-amd64 (= uname -r, module dir)

# --- hash over all inputs ---
inputs() {
    echo "kernel-package=$kpkg"
    echo "kernel-package-version=$kver_pkg"
    echo "busybox-sha256=$(sha256sum /bin/busybox | cut -d' ' -f1)"
    echo "gcc=$(gcc --version | head -n1)"
    echo "cflags=${cflags[*]}"
    mpi_inputs
    (cd "$guest_dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
hash=$(inputs | sha256sum | cut -c1-16)
final="$out_root/$hash"

point_current() {
    ln -sfn "$hash" "$out_root/.current.tmp.$$"
    mv -T "$out_root/.current.tmp.$$" "$out_root/current"
}

complete() {
    local f
    for f in vmlinuz initrd.img initrd-mpi.img image.json; do [ -s "$1/$f" ] || return 1; done
    for f in "${workloads[@]}" rsh rshd mpi-check; do [ -x "$1/bin/vccr-$f" ] || return 1; done
}

if [ -d "$final" ] && complete "$final"; then
    [ "$(readlink "$out_root/current" 2>/dev/null || true)" = "$hash" ] || point_current
    log "cached $final"
    exit 0
fi

tmp="$out_root/.tmp-$hash-$$"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
rm -rf "$tmp" "$final"
mkdir -p "$tmp/bin" "$tmp/kernel" "$tmp/root"

# --- kernel .deb: reuse a cached download only if it matches the archive's SHA256 ---
deb_sha=$(apt-cache show "$kpkg=$kver_pkg" | awk '/^SHA256:/ { print $2; exit }')
deb=$(find "$debs" -maxdepth 1 -name "${kpkg}_*_amd64.deb" -print0 2>/dev/null |
      xargs -0 -r sha256sum | awk -v h="$deb_sha" '$1 == h { print $2; exit }')
if [ -z "$deb" ]; then
    log "downloading $kpkg $kver_pkg"
    # As root, apt-get download warns that its _apt sandbox user cannot write here: harmless.
    download() { (cd "$debs" && apt-get download -q "$kpkg=$kver_pkg" 2>"$tmp/apt.err"); }
    if ! download; then
        cat "$tmp/apt.err" >&2
        log "apt-get download failed: running apt-get update once and retrying"
        apt-get update -qq
        download || { cat "$tmp/apt.err" >&2; exit 1; }
    fi
    grep -v 'Download is performed unsandboxed' "$tmp/apt.err" >&2 || true
    deb=$(find "$debs" -maxdepth 1 -name "${kpkg}_*_amd64.deb" -print0 |
          xargs -0 -r sha256sum | awk -v h="$deb_sha" '$1 == h { print $2; exit }')
    [ -n "$deb" ] || { echo "downloaded $kpkg does not match SHA256 $deb_sha" >&2; exit 1; }
fi
dpkg-deb -x "$deb" "$tmp/kernel"
install -m 644 "$tmp/kernel/boot/vmlinuz-$kernel_release" "$tmp/vmlinuz"

# --- workloads: the same static binaries go into the initramfs and bin/ (host tests) ---
for w in "${workloads[@]}"; do
    gcc "${cflags[@]}" -o "$tmp/bin/vccr-$w" "$guest_dir/$w.c"
done

# --- initramfs ---
root="$tmp/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,lib/modules}
install -m 755 /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 755 "$guest_dir/init" "$root/init"
install -m 755 "$tmp"/bin/vccr-* "$root/bin/"
for m in "${modules[@]}"; do
    ko=$(find "$tmp/kernel/lib/modules/$kernel_release" -name "$m.ko" -print -quit)
    [ -n "$ko" ] || { echo "module $m.ko not found in $kpkg" >&2; exit 1; }
    install -m 644 "$ko" "$root/lib/modules/$m.ko"
done
# The kernel opens /dev/console for init before /init can mount devtmpfs; without the
# node, init starts with no stdin/stdout. mknod needs root: init copes without it.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || log "warning: not root, initramfs has no /dev/console"
pack() { (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip "$3" > "$2"; }
pack "$root" "$tmp/initrd.img" -9

# --- initrd-mpi.img: the same tree plus Open MPI, vccr-rsh/vccr-rshd and the MPI job ---
cp -a "$root" "$tmp/root-mpi"
mpi_stage "$tmp/mpi-stage"
mpi_build_root "$tmp/mpi-stage" "$tmp/root-mpi" "$tmp/bin"
mpi_unpacked_kib=$(du -sk "$tmp/root-mpi" | cut -f1)
pack "$tmp/root-mpi" "$tmp/initrd-mpi.img" -6 # -9: 3 s slower for 0.5 % smaller
rm -rf "$tmp/kernel" "$root" "$tmp/root-mpi" "$tmp/mpi-stage" "$tmp/apt.err"

workloads_json=$(printf '"%s",' "${workloads[@]}" idle)
modules_json=$(printf '"%s",' "${modules[@]}")
mpi_pkgs_json=$(for p in "${mpi_pkgs[@]}"; do printf '"%s": "%s",' "$p" "${mpi_ver[$p]}"; done)
cat > "$tmp/image.json" <<EOF
{
  "kernelVersion": "$kernel_release",
  "kernelPackage": "$kpkg",
  "kernelPackageVersion": "$kver_pkg",
  "hash": "$hash",
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "workloads": [${workloads_json%,}],
  "modules": [${modules_json%,}],
  "mpi": {
    "initrd": "initrd-mpi.img",
    "workloads": [${workloads_json%,}, "mpi"],
    "openmpiVersion": "${mpi_ver[openmpi-bin]}",
    "unpackedKiB": $mpi_unpacked_kib,
    "plugins": {"kept": $mpi_plugins_kept, "dropped": $mpi_plugins_dropped},
    "packages": {${mpi_pkgs_json%,}}
  }
}
EOF

mv -T "$tmp" "$final"
point_current
# Keep only the current image (old kernels/initrds are cheap to rebuild).
find "$out_root" -mindepth 1 -maxdepth 1 -type d ! -name "$hash" -exec rm -rf {} +
log "built $final ($kpkg $kver_pkg, initrd $(du -k "$final/initrd.img" | cut -f1) KiB, initrd-mpi $(du -k "$final/initrd-mpi.img" | cut -f1) KiB) in $(elapsed)"
