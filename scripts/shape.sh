#!/usr/bin/env bash
# The shape of regchain's packages: per package, files, non-test lines,
# mutexes, pairs of files that use each other's declarations both ways, and
# the longest function. `scripts/shape.sh -pairs` lists the pairs too.
# Extra arguments are package patterns (default ./...).
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./scripts/shape "$@"
