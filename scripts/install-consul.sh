#!/usr/bin/env bash
# Builds the Consul agent from its Go module at a pinned version and caches the
# binary under the user's cache dir, keyed by version. Prints the binary's path.
# Debian has no Consul package and `go install` refuses the module (its go.mod has
# replace lines pointing at nested modules), so: download, drop those replaces, build.
set -euo pipefail
CONSUL_VERSION="${CONSUL_VERSION:-v1.22.6}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/regchain/consul-${CONSUL_VERSION}"
bin="$cache/consul"
if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"; exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/consul@${CONSUL_VERSION}") > "$work/download.json"
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$work/download.json")
[ -n "$dir" ] || { echo "install-consul: module download failed" >&2; exit 1; }
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
for m in api sdk envoyextensions proto-public troubleshoot; do
  go mod edit -dropreplace="github.com/hashicorp/consul/$m" 2>/dev/null || true
done
GONOSUMDB=github.com/hashicorp/consul GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
echo "$bin"
