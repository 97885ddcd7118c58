# shellcheck shell=bash
# tools/lib.sh: what tools/test, tools/demo and tools/fuzz share: finding the
# repository, installing Debian packages that are missing, and configuring a
# meson build directory outside the source tree.  Sourced, never run.

# The repository root, from this file's own path, so every tool works from
# any current directory.
LC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

# What building and testing needs on Debian 12.  libjansson-dev is for the
# daemon's configuration and control protocol (coming next); installing it now
# keeps one list for every tool; libedit-dev is the line editor of `lanchat chat`.
# iproute2 and nftables build the multi-host test networks (tools/netlab).
LC_BUILD_PKGS=(build-essential pkg-config meson ninja-build libuv1-dev
  libmsgpack-dev libsodium-dev libsqlite3-dev libcmocka-dev libjansson-dev
  libedit-dev clang-format iproute2 nftables)

# Build directories live outside the tree (the top level holds only what the
# layout allows).  One base per user; each tool uses its own subdirectory.
LC_BUILD_BASE=${LANCHAT_BUILD_DIR:-${TMPDIR:-/tmp}/lanchat-build-$(id -u)}

lc_log() { printf '==> %s\n' "$*" >&2; }
lc_warn() { printf 'warning: %s\n' "$*" >&2; }
lc_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Runs a command as root: directly when we are root, through sudo otherwise.
lc_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    lc_die "need root to run '$*' and sudo is not installed; run it as root"
  fi
}

# Prints the packages (of those given) that are not installed, one a line.
lc_missing_pkgs() {
  local p status
  for p in "$@"; do
    # Status abbreviation: desired, current, error ("ii " when installed).
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) || status=
    case $status in
    ?i*) ;;
    *) printf '%s\n' "$p" ;;
    esac
  done
}

# Installs the given packages that are missing.  apt-get update runs only
# when something has to be installed, so a ready machine stays offline.
lc_install_pkgs() {
  local missing
  command -v dpkg-query >/dev/null 2>&1 ||
    lc_die "not a Debian system (no dpkg-query); install by hand: $*"
  mapfile -t missing < <(lc_missing_pkgs "$@")
  [ "${#missing[@]}" -eq 0 ] && return 0
  lc_log "installing missing packages: ${missing[*]}"
  lc_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  lc_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  mapfile -t missing < <(lc_missing_pkgs "$@")
  [ "${#missing[@]}" -eq 0 ] ||
    lc_die "still missing after apt-get install: ${missing[*]}"
}

lc_install_deps() { lc_install_pkgs "${LC_BUILD_PKGS[@]}"; }

# The source directory a meson build directory was configured from, or
# nothing if DIR is not a (readable) meson build directory.
lc_build_source() {
  local info="$1/meson-info/meson-info.json"
  [ -f "$info" ] || return 0
  python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["directories"]["source"])' "$info" \
    2>/dev/null || true
}

# lc_setup DIR [MESON_SETUP_ARGS...]: configures DIR for this tree with the
# given options.  An existing directory of this tree is reconfigured (so
# changed options apply); one configured from another checkout, or one that
# cannot be reconfigured, is wiped first.  A non-empty directory that is not a meson build directory
# is never deleted.
lc_setup() {
  local dir=$1
  shift
  local src
  src=$(lc_build_source "$dir")
  if [ -n "$src" ] && [ "$(cd "$src" 2>/dev/null && pwd -P)" = "$LC_ROOT" ] &&
    [ -f "$dir/build.ninja" ]; then
    if meson setup --reconfigure "$dir" "$LC_ROOT" "$@"; then
      return 0
    fi
    # e.g. a directory from another meson version: start afresh once
    lc_warn "reconfiguring $dir failed; wiping it and configuring afresh"
  fi
  if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
    if [ -z "$src" ] && [ ! -d "$dir/meson-private" ]; then
      lc_die "$dir exists and is not a meson build directory; remove it or set LANCHAT_BUILD_DIR"
    fi
    lc_log "wiping $dir (configured from ${src:-an unknown tree})"
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  meson setup "$dir" "$LC_ROOT" "$@"
}

# lc_build DIR [MESON_SETUP_ARGS...]: lc_setup, then builds everything.
lc_build() {
  lc_setup "$@"
  ninja -C "$1"
}

# Takes a per-build-base lock so that two runs (say tools/test and
# tools/demo) never write the same build directory at once.
lc_lock() {
  mkdir -p "$LC_BUILD_BASE"
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$LC_BUILD_BASE/.lock"
  if ! flock -n 9; then
    lc_log "waiting for another lanchat build in $LC_BUILD_BASE"
    flock 9
  fi
}

lc_unlock() { exec 9>&-; }
