#!/usr/bin/env bash
# Swift toolchain root for building and testing helper-swift on Linux.
#
# Example:
#   scripts/swift-toolchain.sh setup      # idempotent; a warm machine returns in well under a second
#   scripts/swift-toolchain.sh build      # -> $COREML_SWIFT_OUT/coreml-helper{,-faults}
#   scripts/swift-toolchain.sh test       # swift test inside the root
#   $(scripts/swift-toolchain.sh launcher) ~/.cache/coreml-bridge/swift-out/coreml-helper --socket /tmp/s
#   (the launcher output is meant to be word-split: loader path, --library-path, dirs)
#
# Why a root: the hosts run Debian 12, which has no Swift package; Debian 13 (trixie) has
# `swiftlang`, which needs glibc 2.38. We debootstrap a trixie root outside the repository,
# build inside it with chroot, and run the resulting binaries on the host through the root's
# own dynamic loader (see docs/swift-helper.md).
#
# Environment:
#   COREML_SWIFT_ROOT   root directory   (default ~/.cache/coreml-bridge/swift-root)
#   COREML_SWIFT_OUT    output directory (default ~/.cache/coreml-bridge/swift-out)
#   COREML_SWIFT_MIRROR Debian mirror    (default http://deb.debian.org/debian)
#   COREML_SWIFT_JOBS   build jobs       (default 2)
#
# Subcommands:
#   setup               debootstrap + apt install (skipped when the ready marker matches)
#   build [OUTDIR]      release build, plus a release build with -D COREML_DIAG_FAULTS
#                       (both with -warnings-as-errors, as is test);
#                       copies coreml-helper and coreml-helper-faults to OUTDIR or COREML_SWIFT_OUT
#   test [ARGS...]      swift test (debug, with -D COREML_DIAG_FAULTS) inside the root
#   swift ARGS...       any swift command in the package copy inside the root (development),
#                       e.g. `swift build --target HelperCore`
#   launcher            prints the loader prefix that runs root-built binaries on the host
#   paths               prints ROOT, OUT and the binary paths (key=value)
#
# Concurrency: every subcommand that touches the root takes an exclusive flock on
# ROOT.lock, so parallel invocations serialise instead of corrupting each other.
# Mounts (proc, /dev) exist only while setup/build/test run and are undone by a trap.
set -euo pipefail

ROOT=${COREML_SWIFT_ROOT:-$HOME/.cache/coreml-bridge/swift-root}
OUT=${COREML_SWIFT_OUT:-$HOME/.cache/coreml-bridge/swift-out}
MIRROR=${COREML_SWIFT_MIRROR:-http://deb.debian.org/debian}
JOBS=${COREML_SWIFT_JOBS:-2}
SUITE=trixie
PACKAGES=(swiftlang libc6-dev libstdc++-14-dev)
MARKER="$ROOT/.coreml-bridge-ready"
LOCKFILE="$ROOT.lock"
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PKG_SRC=${COREML_SWIFT_PKG:-$SCRIPT_DIR/../helper-swift}
LOADER="$ROOT/lib64/ld-linux-x86-64.so.2"
LIBPATH="$ROOT/lib/x86_64-linux-gnu:$ROOT/usr/lib/x86_64-linux-gnu"
# Swift 6 language mode comes from Package.swift; build and test also turn every warning into
# an error, so the package stays warning-free (the macOS CI passes the same flag).
STRICT="-Xswiftc -warnings-as-errors"

log() { printf '[swift-toolchain] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Expected marker content: one line per requested package, "name version".
marker_expected() {
    local p
    for p in "${PACKAGES[@]}"; do
        chroot "$ROOT" dpkg-query -W -f='${Package} ${Version}\n' "$p" 2>/dev/null || return 1
    done
}

# Fast warm check: marker present, lists every package, and the tools it promises exist.
root_ready() {
    # usr/bin/swift is an absolute symlink (/usr/libexec/swift/bin/swift): test it inside ROOT.
    [[ -f "$MARKER" && -x "$ROOT/usr/libexec/swift/bin/swift" && -x "$LOADER" ]] || return 1
    local p
    for p in "${PACKAGES[@]}"; do
        grep -q "^$p " "$MARKER" || return 1
    done
}

MOUNTED=()
mount_root() {
    mkdir -p "$ROOT/proc" "$ROOT/dev"
    if ! mountpoint -q "$ROOT/proc"; then
        mount -t proc proc "$ROOT/proc"
        MOUNTED+=("$ROOT/proc")
    fi
    if ! mountpoint -q "$ROOT/dev"; then
        mount --bind /dev "$ROOT/dev"
        MOUNTED+=("$ROOT/dev")
    fi
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
}

unmount_root() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
    MOUNTED=()
}
trap unmount_root EXIT
trap 'exit 130' INT TERM

take_lock() {
    mkdir -p "$(dirname "$ROOT")"
    exec 9>"$LOCKFILE"
    if ! flock -n 9; then
        log "waiting for another swift-toolchain.sh on $LOCKFILE"
        flock 9
    fi
}

do_setup() {
    if root_ready; then
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "setup needs root (debootstrap, chroot, mount)"
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap on the host"
        apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
    fi
    if [[ ! -x "$ROOT/usr/bin/apt-get" || ! -f "$ROOT/.coreml-bridge-debootstrap-done" ]]; then
        log "debootstrap $SUITE into $ROOT (about a minute)"
        local m
        for m in "$ROOT/proc" "$ROOT/dev"; do
            if mountpoint -q "$m"; then umount "$m" || umount -l "$m"; fi
        done
        rm -rf --one-file-system "$ROOT"
        debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >&2
        touch "$ROOT/.coreml-bridge-debootstrap-done"
    fi
    mount_root
    log "apt-get install ${PACKAGES[*]} in the root (a few minutes, ~3 GB)"
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
        || die "apt-get update in the root failed (Debian mirror $MIRROR unreachable?)"
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2 \
        || die "apt-get install ${PACKAGES[*]} failed in the $SUITE root"
    chroot "$ROOT" apt-get clean >&2 || true
    local tmp="$MARKER.tmp.$$"
    marker_expected >"$tmp" || die "packages missing after install"
    mv -f "$tmp" "$MARKER"
    log "root ready: $(tr '\n' ' ' <"$MARKER")"
    unmount_root
}

# Copy the package into the root. The build directories stay in the root between runs
# (one copy per checkout path), so incremental builds stay incremental.
sync_source() {
    [[ -f "$PKG_SRC/Package.swift" ]] || die "no Package.swift in $PKG_SRC"
    local src key
    src=$(cd "$PKG_SRC" && pwd)
    key=$(printf '%s' "$src" | sha256sum | cut -c1-12)
    DEST_REL="/src/helper-swift-$key"
    local dest="$ROOT$DEST_REL"
    mkdir -p "$dest"
    find "$dest" -mindepth 1 -maxdepth 1 ! -name '.build*' -exec rm -rf {} +
    tar -C "$src" --exclude='./.build*' -cf - . | tar -C "$dest" -xf -
    # The Swift tests read ipc-schema's golden vectors (COREML_GOLDEN_DIR inside the root).
    local golden="$src/../ipc-schema/golden"
    rm -rf "$dest.golden"
    if [[ -d "$golden" ]]; then
        mkdir -p "$dest.golden"
        cp -a "$golden/." "$dest.golden/"
    fi
}

in_root() {
    chroot "$ROOT" env HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
        COREML_GOLDEN_DIR="$DEST_REL.golden" \
        bash -c "cd '$DEST_REL' && $1"
}

do_build() {
    local outdir=${1:-$OUT}
    do_setup
    sync_source
    mount_root
    local common="swift build -c release --static-swift-stdlib -j $JOBS --product coreml-helper $STRICT"
    log "release build"
    in_root "$common --build-path .build" >&2
    log "release build with -D COREML_DIAG_FAULTS"
    in_root "$common --build-path .build-faults -Xswiftc -DCOREML_DIAG_FAULTS" >&2
    mkdir -p "$outdir"
    install -m 0755 "$ROOT$DEST_REL/.build/release/coreml-helper" "$outdir/coreml-helper.tmp.$$"
    mv -f "$outdir/coreml-helper.tmp.$$" "$outdir/coreml-helper"
    install -m 0755 "$ROOT$DEST_REL/.build-faults/release/coreml-helper" \
        "$outdir/coreml-helper-faults.tmp.$$"
    mv -f "$outdir/coreml-helper-faults.tmp.$$" "$outdir/coreml-helper-faults"
    unmount_root
    printf '%s\n%s\n' "$outdir/coreml-helper" "$outdir/coreml-helper-faults"
}

do_test() {
    do_setup
    sync_source
    mount_root
    local args=""
    [[ $# -gt 0 ]] && printf -v args ' %q' "$@"
    log "swift test (debug, -D COREML_DIAG_FAULTS)"
    in_root "swift test -j $JOBS --build-path .build-test $STRICT -Xswiftc -DCOREML_DIAG_FAULTS$args"
}

do_swift() {
    do_setup
    sync_source
    mount_root
    local args=""
    [[ $# -gt 0 ]] && printf -v args ' %q' "$@"
    in_root "swift$args"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
setup)
    if root_ready; then exit 0; fi
    take_lock
    do_setup
    ;;
build)
    take_lock
    do_build "$@"
    ;;
test)
    take_lock
    do_test "$@"
    ;;
swift)
    take_lock
    do_swift "$@"
    ;;
launcher)
    [[ -x "$LOADER" ]] || die "no loader at $LOADER; run: $0 setup"
    printf '%s --library-path %s\n' "$LOADER" "$LIBPATH"
    ;;
paths)
    printf 'root=%s\nout=%s\nhelper=%s\nhelper_faults=%s\nlauncher=%s --library-path %s\n' \
        "$ROOT" "$OUT" "$OUT/coreml-helper" "$OUT/coreml-helper-faults" "$LOADER" "$LIBPATH"
    ;;
*)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help ]] || exit 2
    ;;
esac
