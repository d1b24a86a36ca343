#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy at a pinned version and
# caches the binary under the user's cache dir, keyed by version. Prints the
# binary's path. Debian has no kube-apiserver package, and k8s.io/kubernetes
# cannot be `go install`ed: its go.mod requires its staging modules
# (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and replaces them with
# ./staging/src/... directories. So: a scratch module that requires
# k8s.io/kubernetes and replaces each of those staging modules with its
# published v0.<minor>.<patch> release, then one `go build -p=1` (the build
# peaks at about 2.4 GB; -p=1 keeps it from taking every core of a shared
# machine). Cold: about 13 minutes on an idle 2-core machine; cached: at once.
#
# Concurrent runs (the suite's background build and a test that needs the
# binary) wait for each other on a lock instead of building twice.
set -euo pipefail
KUBE_APISERVER_VERSION="${KUBE_APISERVER_VERSION:-v1.37.2}"
version=$KUBE_APISERVER_VERSION
case "$version" in
  v1.*.*) ;;
  *) echo "install-kube-apiserver: KUBE_APISERVER_VERSION=$version is not v1.<minor>.<patch>" >&2; exit 2 ;;
esac
staging="v0.${version#v1.}" # k8s.io/kubernetes v1.37.2 -> staging modules v0.37.2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/regchain/kube-apiserver-${version}"
bin="$cache/kube-apiserver"
mkdir -p "$cache"

usable() { [ -x "$bin" ] && "$bin" --version > /dev/null 2>&1; }
if usable; then
  echo "$bin"; exit 0
fi
exec 9> "$cache/.lock"
flock 9
if usable; then # built by another run while this one waited
  echo "$bin"; exit 0
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
export GOFLAGS="-mod=mod -buildvcs=false"
(go mod download -json "k8s.io/kubernetes@${version}") > download.json
gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' download.json)
[ -n "$gomod" ] && [ -f "$gomod" ] || { echo "install-kube-apiserver: cannot download k8s.io/kubernetes@${version}" >&2; exit 1; }

# The staging modules: required at v0.0.0 and replaced by a ./staging path.
sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*$#\1#p' "$gomod" | sort > replaced
sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) v0\.0\.0$#\1#p' "$gomod" | sort > required
comm -12 replaced required > staging
[ -s staging ] || { echo "install-kube-apiserver: no staging modules found in $gomod" >&2; exit 1; }

go mod init regchain.invalid/kube-apiserver-build > /dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@${version}"
while read -r m; do
  go mod edit -replace="${m}=${m}@${staging}"
done < staging
echo "install-kube-apiserver: building kube-apiserver ${version} ($(wc -l < staging) staging modules at ${staging}); this takes a while the first time" >&2
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@${version}" >&2
minor=${version#v1.}
minor=${minor%%.*}
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=${version}"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor}"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
go build -p=1 -trimpath -ldflags "$ldflags" -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$bin.tmp" "$bin"
usable || { echo "install-kube-apiserver: $bin does not run" >&2; exit 1; }
echo "$bin"
