#!/usr/bin/env bash
# The whole regchain test suite on a fresh machine: installs what the tests
# need (ZooKeeper from Debian, a Consul agent built once and cached under the
# user's cache dir), then gofmt, go vet and go test -race over every package.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

echo "== ZooKeeper (Debian package)"
bash scripts/install-zookeeper.sh
echo "== Consul agent (built once, cached)"
REGCHAIN_CONSUL=$(bash scripts/install-consul.sh)
export REGCHAIN_CONSUL
"$REGCHAIN_CONSUL" version | head -1
echo "   setup took $(( $(date +%s) - start ))s"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 30m ./... 2>&1 | tee /tmp/regchain-test.$$.log
status=${PIPESTATUS[0]}
passed=$(grep -c '^ok' /tmp/regchain-test.$$.log || true)
failed=$(grep -c '^FAIL' /tmp/regchain-test.$$.log || true)
rm -f /tmp/regchain-test.$$.log
echo "packages: $passed passed, $failed failed"
echo "total $(( $(date +%s) - start ))s"
exit "$status"
