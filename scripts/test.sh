#!/usr/bin/env bash
# The whole regchain test suite on a fresh machine: installs what the tests
# need (ZooKeeper from Debian, a Consul agent built once and cached under the
# user's cache dir), checks every module (the root and the nested ones that
# hold tests and programs importing peer modules) with go mod tidy -diff,
# gofmt, go vet and staticcheck, runs a consumer check (a scratch module that
# imports every public package must tidy, build and vet with default
# settings), then go test -race over every module.
#
# No pipeline here has a reader that can exit early: under pipefail that
# fails the script by SIGPIPE depending on how the writer buffers. Output
# that must be cut goes to a file first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The modules of this repository: the root and every nested go.mod.
modules=(.)
for m in interop bench; do
  if [ -f "$m/go.mod" ]; then modules+=("$m"); fi
done

echo "== ZooKeeper (Debian package)"
bash scripts/install-zookeeper.sh
echo "== Consul agent (built once, cached)"
REGCHAIN_CONSUL=$(bash scripts/install-consul.sh)
export REGCHAIN_CONSUL
"$REGCHAIN_CONSUL" version > "$work/consul-version"
sed -n 1p "$work/consul-version"
if [ -f scripts/install-chromium.sh ]; then
  echo "== Chromium (Debian package, for the status page's browser test)"
  bash scripts/install-chromium.sh
fi
echo "   setup took $(( $(date +%s) - start ))s"

echo "== go mod tidy -diff (${modules[*]})"
for m in "${modules[@]}"; do
  (cd "$m" && go mod tidy -diff) || { echo "go.mod/go.sum of $m are not tidy (diff above)"; exit 1; }
done

echo "== shell: no pipeline whose reader may exit early (SIGPIPE under pipefail)"
if grep -nE '\|[[:space:]]*(head|grep[[:space:]]+(-[a-zA-Z]*[qm]|--quiet|--max-count))' scripts/*.sh .ci/run > "$work/pipes"; then
  cat "$work/pipes"; echo "write the output to a file and read that instead"; exit 1
fi

echo "== gofmt"
git ls-files '*.go' > "$work/gofiles"
gofmt -l $(cat "$work/gofiles") > "$work/unformatted"
if [ -s "$work/unformatted" ]; then
  echo "gofmt would change:"; cat "$work/unformatted"; exit 1
fi

echo "== go vet"
for m in "${modules[@]}"; do
  (cd "$m" && go vet ./...)
done

echo "== staticcheck"
STATICCHECK_VERSION=v0.8.2
for m in "${modules[@]}"; do
  (cd "$m" && go run "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}" ./...)
done

echo "== consumer check (a user's module importing every public package)"
bash scripts/consumer-check.sh "$repo"

echo "== go test -race"
log="$work/test.log"
status=0
for m in "${modules[@]}"; do
  echo "-- module $m"
  # tee reads to the end, so this pipe cannot fail by SIGPIPE; pipefail
  # gives it go test's status.
  (cd "$m" && go test -race -count=1 -timeout 30m ./...) 2>&1 | tee -a "$log" || status=1
done
passed=$(grep -c '^ok' "$log" || true)
failed=$(grep -c '^FAIL' "$log" || true)
echo "packages: $passed passed, $failed failed"
echo "total $(( $(date +%s) - start ))s"
exit "$status"
