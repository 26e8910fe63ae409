#!/usr/bin/env bash
# Installs what the bare-metal recovery tests (rewind recover, export --vm,
# drill, rescue build) and their test server (internal/testutil/server.go)
# need: GRUB for BIOS and UEFI (grub-pc-bin, grub-efi-amd64-bin,
# grub2-common, grub-common), udev (udevadm, which grub-install asks about
# a loop disk; no daemon), OVMF (UEFI firmware for QEMU), xorriso (the
# rescue ISO), cpio, efibootmgr (the EFI boot entry), and the filesystem
# tools recover rebuilds with: dosfstools, mtools, btrfs-progs, xfsprogs.
# QEMU, busybox-static and the guest kernel come from scripts/qemu.sh.
# Quiet and idempotent; as another user than root it only reports what is
# missing.
set -euo pipefail
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in grub-pc-bin grub-efi-amd64-bin grub2-common grub-common udev ovmf xorriso cpio \
  efibootmgr dosfstools mtools btrfs-progs xfsprogs; do
  have_pkg "$pkg" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "recovery.sh: missing ${need[*]}; the recovery tests will be skipped (run as root to install)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
