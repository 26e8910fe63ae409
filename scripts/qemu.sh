#!/usr/bin/env bash
# Installs what the disk-image, dirty-bitmap and instant-boot tests need:
# Debian's qemu-system-x86 (the emulator; TCG here, KVM where present),
# qemu-utils (qemu-img, qemu-nbd) and busybox-static (the tests' tiny guest
# runs it as its init). Quiet and idempotent; as another user than root it
# only reports what is missing.
set -euo pipefail
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
[ -x /bin/busybox ] || need+=(busybox-static)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "qemu.sh: missing ${need[*]}; the QEMU tests will be skipped (run as root to install)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
