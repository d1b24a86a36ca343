#!/usr/bin/env bash
# Runs every native Go fuzz target of the root module for a given time,
# one target per `go test -fuzz` invocation (Go fuzzes one target at a
# time), and prints how many inputs each tried.
#
# Usage: scripts/fuzz.sh [-t DURATION] [PATTERN]
#   -t DURATION  fuzzing time per target (default 60s), a go test -fuzztime
#   PATTERN      only the targets whose "package FuzzName" matches this
#                extended regular expression (e.g. 'regconfig|FuzzOpen')
#
# Made for a busy 2-core machine: GOMAXPROCS=1 and -parallel 1 (one
# fuzzing worker), -fuzzminimizetime 2s (the minimiser otherwise stalls on
# large file inputs). The seed corpora (f.Add and testdata/fuzz/) run in
# every plain `go test`; this script looks for new inputs. A crasher is
# saved by go test under the package's testdata/fuzz/TARGET/ (commit it
# with its fix: it then runs in every go test) and fails the script.
#
# No pipeline here has a reader that exits early (pipefail and SIGPIPE):
# output goes to files, read whole.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=60s
pattern=.
while [ $# -gt 0 ]; do
  case "$1" in
    -t) fuzztime=${2:?-t needs a duration}; shift 2 ;;
    -t=*) fuzztime=${1#-t=}; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "usage: scripts/fuzz.sh [-t DURATION] [PATTERN]" >&2; exit 2 ;;
    *) pattern=$1; shift ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The targets: "./package FuzzName", from the test files of the root
# module (bench/ and interop/ are modules of their own).
grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*' . > "$work/found" || true
: > "$work/targets"
while IFS= read -r line; do
  file=${line%%:*}
  name=${line##*func }
  case "$file" in ./bench/* | ./interop/*) continue ;; esac
  echo "./$(dirname "${file#./}") $name" >> "$work/targets"
done < "$work/found"
sort -u "$work/targets" > "$work/sorted"
grep -E -- "$pattern" "$work/sorted" > "$work/selected" || true
if [ ! -s "$work/selected" ]; then
  echo "no fuzz target matches $pattern" >&2
  exit 2
fi
echo "== $(wc -l < "$work/selected") fuzz targets, $fuzztime each"

failed=0
printf '%-26s %-24s %14s  %s\n' PACKAGE TARGET EXECS RESULT > "$work/table"
while read -r pkg name; do
  log="$work/$(echo "$pkg $name" | tr '/ ' '__').log"
  echo "-- $pkg $name"
  result=ok
  if ! GOMAXPROCS=1 go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" \
      -fuzzminimizetime 2s -parallel 1 "$pkg" > "$log" 2>&1; then
    result=FAIL
    failed=$((failed + 1))
    cat "$log"
  fi
  execs=$(awk '/execs: / { for (i = 1; i <= NF; i++) if ($i == "execs:") n = $(i + 1); sub(/,$/, "", n) } END { print (n == "" ? "-" : n) }' "$log")
  printf '%-26s %-24s %14s  %s\n' "$pkg" "$name" "$execs" "$result" >> "$work/table"
done < "$work/selected"
echo
cat "$work/table"
if [ "$failed" -gt 0 ]; then
  echo "$failed target(s) failed: see the output above; new crashers are under testdata/fuzz/" >&2
  exit 1
fi
