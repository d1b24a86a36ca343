#!/usr/bin/env bash
# The whole regchain test suite on a fresh machine: installs what the tests
# need (ZooKeeper and Chromium from Debian, a Consul agent built once and
# cached under the user's cache dir), checks that no tracked file is a
# build output, checks every module (the root and the nested ones that hold
# tests and programs importing peer modules) with go mod tidy -diff, gofmt,
# go vet and staticcheck, runs a consumer check (a scratch module that
# imports every public package must tidy, build and vet with default
# settings), then go test -race over every module.
#
# Usage: scripts/test.sh [--busy N]
#   --busy N  keep N processes spinning on the CPUs for the whole run, as a
#             busy CI machine would: races and timing assumptions that a
#             quiet machine hides show up.
#
# The setup runs side by side where it can: the Consul build (minutes of
# CPU) goes on in the background while apt installs ZooKeeper and Chromium
# and the Go modules of every module of this repository are downloaded.
#
# No pipeline here has a reader that can exit early: under pipefail that
# fails the script by SIGPIPE depending on how the writer buffers. Output
# that must be cut goes to a file first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
start=$(date +%s)
work=$(mktemp -d)
busy=0
while [ $# -gt 0 ]; do
  case "$1" in
    --busy) busy=${2:?--busy needs a number}; shift 2 ;;
    --busy=*) busy=${1#--busy=}; shift ;;
    *) echo "usage: scripts/test.sh [--busy N]" >&2; exit 2 ;;
  esac
done
case "$busy" in '' | *[!0-9]*) echo "--busy: not a number: $busy" >&2; exit 2 ;; esac
spinners=()
cleanup() {
  for p in "${spinners[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 "$busy"); do
  (while :; do :; done) &
  spinners+=($!)
done
if [ "$busy" -gt 0 ]; then echo "== busy: $busy spinning processes (pids ${spinners[*]})"; fi
phase() { echo "   $1 took $(( $(date +%s) - $2 ))s"; }

# The modules of this repository: the root and every nested go.mod.
modules=(.)
for m in interop bench; do
  if [ -f "$m/go.mod" ]; then modules+=("$m"); fi
done
# The Kubernetes tier is a nested module of its own (client-go reaches only
# the builds that import it), and so is its example; their tests start a
# real kube-apiserver.
for m in adapters/kubernetes examples/kubernetes; do
  if [ -f "$m/go.mod" ]; then modules+=("$m"); fi
done

echo "== setup: Consul and kube-apiserver builds in the background; ZooKeeper, Chromium and Go modules meanwhile"
t0=$(date +%s)
bash scripts/install-consul.sh > "$work/consul-path" 2> "$work/consul.log" &
consul_pid=$!
# kube-apiserver for adapters/kubernetes: built once (about 13 min cold at
# -p=1) and cached like Consul, in the background alongside it.
bash scripts/install-kube-apiserver.sh > "$work/kube-apiserver-path" 2> "$work/kube-apiserver.log" &
kube_pid=$!
echo "-- ZooKeeper (Debian package)"
bash scripts/install-zookeeper.sh
phase ZooKeeper "$t0"
echo "-- Chromium (Debian package, for the status page's browser test)"
t1=$(date +%s)
bash scripts/install-chromium.sh
phase Chromium "$t1"
echo "-- Go modules (${modules[*]})"
t1=$(date +%s)
for m in "${modules[@]}"; do
  (cd "$m" && go mod download)
done
phase "module downloads" "$t1"
echo "-- Consul agent (built once, cached)"
if ! wait "$consul_pid"; then
  cat "$work/consul.log"; echo "install-consul failed"; exit 1
fi
REGCHAIN_CONSUL=$(cat "$work/consul-path")
export REGCHAIN_CONSUL
"$REGCHAIN_CONSUL" version > "$work/consul-version"
sed -n 1p "$work/consul-version"
echo "-- kube-apiserver (built once, cached)"
if ! wait "$kube_pid"; then
  cat "$work/kube-apiserver.log"; echo "install-kube-apiserver failed"; exit 1
fi
REGCHAIN_KUBE_APISERVER=$(cat "$work/kube-apiserver-path")
export REGCHAIN_KUBE_APISERVER
"$REGCHAIN_KUBE_APISERVER" --version
phase "setup (the Consul and kube-apiserver builds included)" "$t0"

echo "== tracked files: no build output"
bash scripts/check-tracked.sh

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
t0=$(date +%s)
log="$work/test.log"
status=0
for m in "${modules[@]}"; do
  echo "-- module $m"
  # tee reads to the end, so this pipe cannot fail by SIGPIPE; pipefail
  # gives it go test's status.
  (cd "$m" && go test -race -count=1 -timeout 30m ./...) 2>&1 | tee -a "$log" || status=1
done
phase "go test -race" "$t0"
passed=$(grep -c '^ok' "$log" || true)
failed=$(grep -c '^FAIL' "$log" || true)
echo "packages: $passed passed, $failed failed"
echo "total $(( $(date +%s) - start ))s"
exit "$status"
