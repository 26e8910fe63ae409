#!/usr/bin/env bash
# Installs the system packages rewind's tests need, when they are missing.
# Runs as root on CI; as another user it only reports what is missing.
set -euo pipefail
need=()
command -v setfacl >/dev/null || need+=(acl)
command -v setfattr >/dev/null || need+=(attr)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v e2fsck >/dev/null || need+=(e2fsprogs)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
# sfdisk (fdisk), blkid, partx and losetup (util-linux): inventory tests
# partition a loop disk and read it back.
command -v sfdisk >/dev/null || need+=(fdisk)
command -v partx >/dev/null || need+=(util-linux)
# systemd (not running, only installed), unshare and nsenter: the unit
# steps' tests boot it as PID 1 of private namespaces (testutil.SystemdPID1).
[ -x /usr/lib/systemd/systemd ] || need+=(systemd)
command -v nsenter >/dev/null || need+=(util-linux)
command -v restic >/dev/null || need+=(restic)
command -v borg >/dev/null || need+=(borgbackup)
command -v bsdtar >/dev/null || need+=(libarchive-tools)
# rsync -aHAXn --checksum: the mount fidelity tests compare through it.
command -v rsync >/dev/null || need+=(rsync)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: missing packages ${need[*]}; tests that need them will be skipped (run as root to install)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
