#!/bin/sh
# full_disk.sh TEST_FULL_DISK: runs it with the receiver's data folder on a
# 4 MiB tmpfs mounted in a private mount namespace (gone with the test).
# Skipped (77) where that cannot be done: not root, no unshare.
set -eu
prog=$1
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null 2>&1; then
  echo "full_disk: needs root and unshare: skipped"
  exit 77
fi
dir=$(mktemp -d /tmp/lc-full-disk-XXXXXX)
trap 'rm -rf "$dir"' EXIT
# shellcheck disable=SC2016 # expanded by the inner shell
unshare -m --propagation private sh -c \
  'mount -t tmpfs -o size=4m lc-full-disk "$1" || exit 77; exec "$2" "$1"' \
  sh "$dir" "$prog"
