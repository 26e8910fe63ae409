#!/usr/bin/env bash
# Installs the MinIO server that the S3 tests run against, into
# ${XDG_CACHE_HOME:-$HOME/.cache}/rewind-test/bin/minio, unless it is already
# there. The tests (internal/testutil/minio.go) look for it in the same
# place, or at $REWIND_MINIO. Building it takes a few minutes on two cores;
# later runs reuse the binary.
set -euo pipefail
version=v0.0.0-20260212201848-7aac2a2c5b7c
bin="${XDG_CACHE_HOME:-$HOME/.cache}/rewind-test/bin"
if [ -x "$bin/minio" ]; then
  exit 0
fi
mkdir -p "$bin"
echo "minio.sh: building MinIO $version into $bin (a few minutes)" >&2
# Outside the project, so that its go.mod and go.work take no part.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
GOBIN="$bin" go install "github.com/minio/minio@$version"
"$bin/minio" --version >/dev/null
