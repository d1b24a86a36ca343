#!/usr/bin/env bash
# Consumer check: what a user of regchain goes through. A scratch module in a
# temp dir outside the repository imports every public package of the root
# module, points at this checkout with a replace, and must `go mod tidy`,
# `go build` and `go vet` with default settings: no GONOSUMDB, GOPRIVATE,
# GONOSUMCHECK, GOFLAGS or GOINSECURE, neither in the environment nor in the
# go env file. `go mod tidy` also resolves the tests of every imported
# package, so a test-only import of a module the checksum database lacks
# fails here, as it would for the user.
#
# Usage: scripts/consumer-check.sh [path-to-checkout]
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT

# Public packages: every package of the root module except internal ones,
# commands and examples (package main cannot be imported).
(cd "$repo" && go list -f '{{if ne .Name "main"}}{{.ImportPath}}{{end}}' ./...) > "$scratch/all"
grep -v -e '/internal/' -e '/internal$' "$scratch/all" > "$scratch/public" || true
if [ ! -s "$scratch/public" ]; then echo "consumer-check: no public packages found"; exit 1; fi

# Test support (internal/testsupport, internal/suite) is for tests only: no
# public package links it.
(cd "$repo" && go list -deps $(cat "$scratch/public")) > "$scratch/deps"
grep -e '/internal/testsupport/' -e '/internal/suite/' "$scratch/deps" > "$scratch/testdeps" || true
if [ -s "$scratch/testdeps" ]; then
  echo "consumer-check: public packages link test support:"; cat "$scratch/testdeps"; exit 1
fi

# The plugins and the locality wrapper link no backend: a Kratos app or a
# go-micro service on Consul links neither etcd, nor bbolt, nor Prometheus
# (the etcd-backed constructors live in their etcdchain packages).
for p in kratosplugin microplugin microplugin/microservice locality grpcresolver grpcbalancer; do
  (cd "$repo" && go list -deps "./$p") > "$scratch/plugdeps"
  grep -e '^go.etcd.io/' -e '/prometheus/' -e '/regchain/regchain/adapters/' -e '/regchain/regchain/chain$' "$scratch/plugdeps" > "$scratch/heavy" || true
  if [ -s "$scratch/heavy" ]; then
    echo "consumer-check: $p links a backend:"; cat "$scratch/heavy"; exit 1
  fi
done

mkdir "$scratch/consumer"
cd "$scratch/consumer"
{
  echo "// Command consumer imports every public regchain package."
  echo "package main"
  echo
  echo "import ("
  while read -r p; do echo "	_ \"$p\""; done < "$scratch/public"
  echo ")"
  echo
  echo "func main() {}"
} > main.go
cat > go.mod <<EOF
module example.com/consumer

go 1.25

require github.com/regchain/regchain v0.0.0

replace github.com/regchain/regchain => $repo
EOF

# Default settings only: drop the variables from the environment and make
# sure the go env file sets none of them either.
unset GONOSUMDB GONOSUMCHECK GOFLAGS GOPRIVATE GOINSECURE GONOPROXY
export GOENV="$scratch/goenv" # an empty go env file: nothing set by `go env -w`
go env GONOSUMDB GOPRIVATE GOFLAGS GOINSECURE GONOPROXY > "$scratch/settings"
if grep -q . "$scratch/settings"; then
  echo "consumer-check: non-default settings remain:"; cat "$scratch/settings"; exit 1
fi

n=$(wc -l < "$scratch/public")
echo "consumer module imports $n public packages:"
sed 's/^/  /' "$scratch/public"
go mod tidy
echo "  go mod tidy: ok"
go build ./...
echo "  go build: ok"
go vet ./...
echo "  go vet: ok"
