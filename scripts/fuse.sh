#!/usr/bin/env bash
# Installs what the mount tests need: Debian's fuse3 (fusermount3, the
# helper that mounts and unmounts a FUSE filesystem without the caller
# holding the mount) when it is missing. /dev/fuse comes with the kernel.
# Runs as root on CI; as another user it only reports what is missing.
set -euo pipefail
command -v fusermount3 >/dev/null && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "fuse.sh: fusermount3 is missing; the mount tests will be skipped (run as root to install fuse3)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends fuse3 >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends fuse3 >/dev/null
}
