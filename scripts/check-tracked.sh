#!/usr/bin/env bash
# Fails when a tracked file looks like a build output: an executable binary
# (ELF, Mach-O, PE), a file with the executable bit that is not a script
# (no "#!" line), anything over 1 MB, or a main package's go build output
# that .gitignore does not list. Every clone downloads what is tracked;
# binaries belong in .gitignore.
#
# Usage: scripts/check-tracked.sh [path-to-checkout]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
list=$(mktemp)
bad=$(mktemp)
trap 'rm -f "$list" "$bad"' EXIT
# Mode, object, stage and path of every tracked file, NUL-separated, read
# by one perl process (a process per file took minutes on a loaded machine).
git ls-files -s -z > "$list"
perl -0 -ne '
  chomp;
  my ($mode, $path) = /^(\d+) \S+ \d+\t(.*)$/s or next;
  next unless -f $path;                       # deleted, or a submodule
  my $size = -s _;
  if ($size > 1048576) { print "$path: $size bytes, over the 1 MB limit\n"; next }
  open(my $fh, "<:raw", $path) or next;
  read($fh, my $magic, 4); close $fh;
  my $hex = unpack("H*", $magic // "");
  if ($hex eq "7f454c46") { print "$path: an ELF executable\n"; next }
  if ($hex =~ /^(cffaedfe|cefaedfe|feedface|feedfacf)$/) { print "$path: a Mach-O executable\n"; next }
  if ($hex =~ /^4d5a/) { print "$path: a PE (Windows) executable\n"; next }
  if ($mode eq "100755" && substr($hex, 0, 4) ne "2321") { print "$path: executable bit set, not a script (no #! line)\n" }
' "$list" > "$bad"
# Every main package's binary is ignored wherever go build leaves it: at
# the top of its module (unless a directory has that name), and in its own
# directory.
git grep -l -z '^package main$' -- '*.go' > "$list" || true
while IFS= read -r -d '' f; do
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
