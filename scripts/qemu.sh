#!/usr/bin/env bash
# Installs what the disk-image, dirty-bitmap and instant-boot tests need:
# Debian's qemu-system-x86 (the emulator; TCG here, KVM where present),
# qemu-utils (qemu-img, qemu-nbd) and busybox-static (the tests' tiny guest
# runs it as its init), and what builds that guest's boot disk: syslinux,
# syslinux-common (its MBR code), mtools and dosfstools (a FAT partition
# written without mounting it); then scripts/guest-kernel.sh fetches
# Debian's kernel for the guest into the test cache. Quiet and idempotent;
# as another user than root it only reports what is missing.
set -euo pipefail
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v syslinux >/dev/null || need+=(syslinux)
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
command -v mcopy >/dev/null || need+=(mtools)
command -v mkfs.vfat >/dev/null || [ -x /usr/sbin/mkfs.vfat ] || need+=(dosfstools)
kernel() { bash "$(dirname "$0")/guest-kernel.sh"; }
[ ${#need[@]} -eq 0 ] && { kernel; exit 0; }
if [ "$(id -u)" -ne 0 ]; then
  echo "qemu.sh: missing ${need[*]}; the QEMU tests will be skipped (run as root to install)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
kernel
