#!/usr/bin/env bash
# Fails when a tracked file looks like a build output: an executable binary
# (ELF, Mach-O, PE), a file with the executable bit that is not a script
# (no "#!" line), or anything over 1 MB. Every clone downloads what is
# tracked; binaries belong in .gitignore.
#
# Usage: scripts/check-tracked.sh [path-to-checkout]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
limit=1048576
list=$(mktemp)
bad=$(mktemp)
trap 'rm -f "$list" "$bad"' EXIT
# Mode, object, stage and path of every tracked file, NUL-separated.
git ls-files -s -z > "$list"
while IFS= read -r -d '' entry; do
  mode=${entry%% *}
  path=${entry#*$'\t'}
  [ -f "$path" ] || continue # deleted in the work tree, or a submodule
  size=$(stat -c %s "$path")
  if [ "$size" -gt "$limit" ]; then
    echo "$path: $size bytes, over the 1 MB limit" >> "$bad"
    continue
  fi
  magic=$(od -An -tx1 -N4 "$path" | tr -d ' \n')
  case "$magic" in
    7f454c46) echo "$path: an ELF executable" >> "$bad"; continue ;;
    cffaedfe | cefaedfe | feedface | feedfacf) echo "$path: a Mach-O executable" >> "$bad"; continue ;;
    4d5a*) echo "$path: a PE (Windows) executable" >> "$bad"; continue ;;
  esac
  if [ "$mode" = 100755 ] && [ "${magic:0:4}" != 2321 ]; then
    echo "$path: executable bit set, not a script (no #! line)" >> "$bad"
  fi
done < "$list"
# Every main package's binary is ignored wherever go build leaves it: at
# the top of its module (unless a directory has that name), and in its own
# directory.
git ls-files -z '*.go' > "$list"
while IFS= read -r -d '' f; do
  grep -q '^package main$' "$f" || continue
  dir=$(dirname "$f")
  name=$(basename "$dir")
  mod=.
  [ -f "${dir%%/*}/go.mod" ] && mod=${dir%%/*}
  for out in "$mod/$name" "$dir/$name"; do
    out=${out#./}
    [ -d "$out" ] && continue # go build refuses to write over a directory
    git check-ignore -q --no-index "$out" || echo "$out: go build's output for ./$dir is not in .gitignore" >> "$bad"
  done
done < "$list"
sort -u "$bad" -o "$bad"
if [ -s "$bad" ]; then
  echo "tracked files that look like build outputs (remove them and list them in .gitignore):"
  cat "$bad"
  exit 1
fi
