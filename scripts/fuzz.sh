#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 3s), one
# after the other. The targets are found with `go test -list`, so new ones
# are picked up without editing this script. Each target first runs its
# seed corpus (testdata/fuzz/<Target> and the f.Add seeds), then fuzzes;
# the inputs it finds interesting are kept in Go's cache for the next run.
# A failing input is written to testdata/fuzz/<Target>/ of its package, to
# be committed with the fix. Exits non-zero if any target fails.
#
#   FUZZTIME=10m bash scripts/fuzz.sh          # every target, longer
#   FUZZTIME=1m bash scripts/fuzz.sh ./internal/pack
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3s}

# Packages whose test files declare a fuzz target; `go test -list` then
# names the targets. Listing only these keeps the other test binaries
# (and the CLI's, which builds rewind first) out of it.
pkgs=()
while read -r path dir; do
  if grep -qsE '^func Fuzz[A-Za-z0-9_]*\(' "$dir"/*_test.go; then
    pkgs+=("$path")
  fi
done < <($GO list -f '{{.ImportPath}} {{.Dir}}' "${@:-./...}")
if [ ${#pkgs[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

# `go test -list` prints each package's matching names, then its "ok" line.
targets=()
names=()
listing=$($GO test -list '^Fuzz' "${pkgs[@]}")
while read -r first second _; do
  case "$first" in
    Fuzz*) names+=("$first") ;;
    ok)
      for n in "${names[@]}"; do targets+=("$second:$n"); done
      names=()
      ;;
  esac
done <<<"$listing"

# corpus lists the saved inputs of a target, to tell whether a failing
# run wrote a new one.
corpus() {
  local dir
  dir=$($GO list -f '{{.Dir}}' "$1")/testdata/fuzz/$2
  if [ -d "$dir" ]; then ls "$dir"; fi
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
flaked=()
for t in "${targets[@]}"; do
  pkg=${t%%:*}
  name=${t##*:}
  echo "== $name ($pkg, $FUZZTIME)"
  before=$(corpus "$pkg" "$name")
  if $GO test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log"; then
    continue
  fi
  # Go up to 1.26 can stop a target at the end of -fuzztime with a bare
  # "context deadline exceeded" and no failing input (golang/go#75804), on
  # a loaded machine. Every real failure writes its input: only a run that
  # wrote none and says exactly that is not counted as a failure.
  if [ "$(corpus "$pkg" "$name")" = "$before" ] && grep -q '^    context deadline exceeded$' "$log" &&
    [ "$(grep -c '^--- FAIL' "$log")" -eq 1 ]; then
    echo "fuzz: $name stopped with the fuzz coordinator's deadline race (golang/go#75804), no failing input: not a failure" >&2
    flaked+=("$t")
    continue
  fi
  failed+=("$t")
done
echo "fuzz: ran ${#targets[@]} targets for $FUZZTIME each${flaked[*]:+; deadline race, ignored: ${flaked[*]}}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
