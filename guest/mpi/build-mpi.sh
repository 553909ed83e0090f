# Sourced by guest/build.sh (bash, set -euo pipefail): the Open MPI part of the test guest.
# Open MPI and its runtime libraries come from Debian packages that are downloaded with
# `apt-get download` and unpacked with `dpkg-deb -x` into a staging root: nothing is installed
# on the host. The MPI program is compiled with the host's gcc against the staged headers
# (mpi.h from libopenmpi-dev; mpicc is only a wrapper around `gcc -I... -lmpi`).
# Layout and contract: guest/README.md ("MPI image").

# The packages whose files can end up in initrd-mpi.img (their versions are part of the image
# hash). Only what the dynamic loader needs for mpirun/orted/vccr-mpi-check and the plugins
# we keep is copied; the rest of these packages is dropped.
mpi_pkgs=(openmpi-bin libopenmpi3 openmpi-common libopenmpi-dev libc6 libgcc-s1
          libevent-core-2.1-7 libevent-pthreads-2.1-7 libhwloc15 libpmix2 libmunge2 libudev1 zlib1g)
mpi_cflags=(-O2 -s -std=gnu11 -Wall -Wextra -Werror -pthread)
# Frameworks we never load: OpenSHMEM and MPI-IO. Plugins whose libraries are not among the
# packages above (InfiniBand verbs, UCX, libfabric, PSM, netlink) are dropped automatically.
mpi_plugin_deny='^mca_(atomic|memheap|scoll|spml|sshmem|io|fcoll|fs|fbtl|sharedfp)_'
mpi_multiarch=x86_64-linux-gnu

declare -A mpi_ver=() mpi_sha=()

# Reads `apt-cache show --no-all-versions <pkgs>` output on stdin; fills mpi_ver/mpi_sha
# (the first stanza of a package wins).
mpi_parse_show() {
    local pkg ver sha
    while read -r pkg ver sha; do
        [ -n "${mpi_ver[$pkg]:-}" ] || { mpi_ver[$pkg]=$ver; mpi_sha[$pkg]=$sha; }
    done < <(awk '/^Package: / { p = $2 } /^Version: / { v = $2 } /^SHA256: / { s = $2 }
                  /^$/ { if (p != "") print p, v, s; p = v = s = "" }
                  END { if (p != "") print p, v, s }')
}

# True if every MPI package has a candidate version and checksum.
mpi_resolved() {
    local p
    for p in "${mpi_pkgs[@]}"; do
        [ -n "${mpi_ver[$p]:-}" ] && [ -n "${mpi_sha[$p]:-}" ] || return 1
    done
}

# Hash inputs (guest/build.sh adds these lines to its own).
mpi_inputs() {
    local p
    for p in "${mpi_pkgs[@]}"; do echo "mpi-package=$p=${mpi_ver[$p]} sha256=${mpi_sha[$p]}"; done
    echo "mpi-cflags=${mpi_cflags[*]}"
}

# The cached .deb of package $1 whose SHA256 matches the archive's, if any.
mpi_cached_deb() {
    find "$debs" -maxdepth 1 -name "$1_*.deb" -print0 2>/dev/null |
        xargs -0 -r sha256sum | awk -v h="${mpi_sha[$1]}" '$1 == h { print $2; exit }'
}

# Downloads the missing .debs (one apt-get call) and unpacks all of them into $1.
mpi_stage() {
    local stage=$1 p missing=() deb
    for p in "${mpi_pkgs[@]}"; do
        [ -n "$(mpi_cached_deb "$p")" ] || missing+=("$p=${mpi_ver[$p]}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "downloading ${#missing[@]} Open MPI packages"
        # As root, apt-get download warns that its _apt sandbox user cannot write here: harmless.
        local err="$tmp/mpi-apt.err"
        if ! (cd "$debs" && apt-get download -q "${missing[@]}" 2>"$err"); then
            cat "$err" >&2
            log "apt-get download failed: running apt-get update once and retrying"
            apt-get update -qq
            (cd "$debs" && apt-get download -q "${missing[@]}" 2>"$err") || { cat "$err" >&2; return 1; }
        fi
        grep -v 'Download is performed unsandboxed' "$err" >&2 || true
        rm -f "$err"
    fi
    mkdir -p "$stage"
    for p in "${mpi_pkgs[@]}"; do
        deb=$(mpi_cached_deb "$p")
        [ -n "$deb" ] || { echo "downloaded $p does not match SHA256 ${mpi_sha[$p]}" >&2; return 1; }
        dpkg-deb -x "$deb" "$stage"
    done
}

# NEEDED entries of an ELF file, one per line.
mpi_needed() {
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
}

# Where the guest's loader finds library $1 (a soname) inside the stage, as a path
# relative to the root: the default directories of Debian's ld.so (no ld.so.cache in the
# guest), then Open MPI's RUNPATH. Empty if not there.
mpi_find_lib() {
    local d
    for d in lib/$mpi_multiarch usr/lib/$mpi_multiarch lib usr/lib usr/lib/$mpi_multiarch/openmpi/lib; do
        if [ -e "$mpi_stage_dir/$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    return 1
}

# Copies ELF file $1 (relative to the stage) into the root and, recursively, every library
# it needs; a library already copied is skipped. Fails if a library is missing.
declare -A mpi_copied=()
mpi_copy_closure() {
    local rel=$1 lib found
    [ -z "${mpi_copied[$rel]:-}" ] || return 0
    mpi_copied[$rel]=1
    mkdir -p "$mpi_root/$(dirname "$rel")"
    cp -L "$mpi_stage_dir/$rel" "$mpi_root/$rel"
    for lib in $(mpi_needed "$mpi_stage_dir/$rel"); do
        found=$(mpi_find_lib "$lib") || { echo "$rel needs $lib, which is in none of: ${mpi_pkgs[*]}" >&2; return 1; }
        mpi_copy_closure "$found"
    done
}

# True if every library that plugin $1 needs (recursively) is available in the stage and
# is not one we exclude on purpose (liboshmem: OpenSHMEM).
mpi_loadable() {
    local lib found
    for lib in $(mpi_needed "$mpi_stage_dir/$1"); do
        case "$lib" in liboshmem.so.*) return 1 ;; esac
        found=$(mpi_find_lib "$lib") || return 1
        [ -n "${mpi_copied[$found]:-}" ] || mpi_loadable "$found" || return 1
    done
}

# Builds the MPI additions into root folder $2 from the stage $1; static helpers go to $3
# (the image's bin/). Needs $guest_dir, $tmp, log().
mpi_build_root() {
    mpi_stage_dir=$1 mpi_root=$2
    local bin_out=$3 ml=usr/lib/$mpi_multiarch f rel name kept=0 dropped=0
    local plugdir=$ml/openmpi/lib/openmpi3 pmixplug=$ml/pmix2/lib/pmix

    # Our programs: the launcher pair (static, like the other workloads) and the MPI job
    # (dynamic, against the staged Open MPI: the same libmpi.so.40 it runs with).
    gcc "${cflags[@]}" -o "$bin_out/vccr-rshd" "$guest_dir/mpi/rshd.c"
    gcc "${cflags[@]}" -o "$bin_out/vccr-rsh" "$guest_dir/mpi/rsh.c"
    gcc "${mpi_cflags[@]}" -I"$mpi_stage_dir/$ml/openmpi/include" -o "$bin_out/vccr-mpi-check" \
        "$guest_dir/mpi/vccr-mpi-check.c" -L"$mpi_stage_dir/$ml/openmpi/lib" \
        -Wl,-rpath-link,"$mpi_stage_dir/$ml" -Wl,-rpath-link,"$mpi_stage_dir/lib/$mpi_multiarch" -lmpi
    install -m 755 "$bin_out/vccr-rshd" "$bin_out/vccr-rsh" "$mpi_root/bin/"
    install -m 755 "$guest_dir/mpi/vccr-mpi.sh" "$mpi_root/bin/vccr-mpi"
    # vccr-mpi-check is resolved like a staged file: copy it in, then its closure.
    install -D -m 755 "$bin_out/vccr-mpi-check" "$mpi_stage_dir/bin/vccr-mpi-check"

    # The glibc loader at the path every x86_64 binary names (PT_INTERP).
    mpi_copy_closure "lib/$mpi_multiarch/ld-linux-x86-64.so.2"
    mkdir -p "$mpi_root/lib64"
    ln -sfn "../lib/$mpi_multiarch/ld-linux-x86-64.so.2" "$mpi_root/lib64/ld-linux-x86-64.so.2"
    # libgcc_s: glibc dlopens it for pthread_cancel/exit unwinding.
    mpi_copy_closure "lib/$mpi_multiarch/libgcc_s.so.1"
    for f in bin/vccr-mpi-check usr/bin/orterun usr/bin/orted usr/bin/ompi_info; do mpi_copy_closure "$f"; done
    ln -s orterun "$mpi_root/usr/bin/mpirun"
    ln -s orterun "$mpi_root/usr/bin/mpiexec"

    # Plugins (dlopen'ed, so not in any NEEDED list): every one that can load here.
    for f in "$mpi_stage_dir/$plugdir"/*.so "$mpi_stage_dir/$pmixplug"/*.so; do
        rel=${f#"$mpi_stage_dir"/}
        name=$(basename "$f")
        if [[ ! "$name" =~ $mpi_plugin_deny ]] && mpi_loadable "$rel"; then
            mpi_copy_closure "$rel"
            kept=$((kept + 1))
        else
            dropped=$((dropped + 1))
        fi
    done

    # Data: help texts (error messages are unreadable without them) and default configs.
    mkdir -p "$mpi_root/usr/share/openmpi" "$mpi_root/etc/openmpi" "$mpi_root/$ml/pmix2/share/pmix"
    cp "$mpi_stage_dir"/usr/share/openmpi/help-*.txt "$mpi_root/usr/share/openmpi/"
    cp -r "$mpi_stage_dir/usr/share/openmpi/amca-param-sets" "$mpi_root/usr/share/openmpi/"
    cp "$mpi_stage_dir"/etc/openmpi/openmpi-{mca-params.conf,default-hostfile} "$mpi_root/etc/openmpi/"
    # No ssh in the guest: any mpirun started in it launches orted through vccr-rsh.
    printf '\n# VCCR test guest: start orted on other VMs via vccr-rshd (guest/README.md)\nplm_rsh_agent = /bin/vccr-rsh\n' \
        >> "$mpi_root/etc/openmpi/openmpi-mca-params.conf"
    cp "$mpi_stage_dir/$ml/pmix2/share/pmix-mca-params.conf" "$mpi_root/$ml/pmix2/share/"
    cp "$mpi_stage_dir/$ml"/pmix2/share/pmix/help-*.txt "$mpi_root/$ml/pmix2/share/pmix/"

    # A minimal user database for getpwuid() and name resolution from files only.
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$mpi_root/etc/passwd"
    printf 'root:x:0:\n' > "$mpi_root/etc/group"
    printf 'passwd: files\ngroup: files\nhosts: files\n' > "$mpi_root/etc/nsswitch.conf"
    mkdir -p "$mpi_root/root"

    mpi_plugins_kept=$kept mpi_plugins_dropped=$dropped
}
