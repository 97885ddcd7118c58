#!/bin/sh
# check_exports.sh LIB: the shared library exports the public lc_ API and
# nothing else (internals are built with hidden visibility).
set -eu
syms=$(nm -D --defined-only "$1" | awk '{print $3}')
[ -n "$syms" ] || { echo "no exported symbols in $1"; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v '^lc_[a-z]' || true)
if [ -n "$bad" ]; then
  echo "exported but not public API:"
  printf '  %s\n' $bad
  exit 1
fi
printf '%s\n' "$syms" | grep -qx lc_strerror || { echo "lc_strerror missing"; exit 1; }
echo "exports: $(printf '%s\n' "$syms" | tr '\n' ' ')"
