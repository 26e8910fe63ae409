#!/usr/bin/env bash
# Fetches Debian's kernel for the tests' tiny bootable guest
# (internal/testutil/guest.go) into
# ${XDG_CACHE_HOME:-$HOME/.cache}/rewind-test/guest-kernel/current, unless
# it is already there: `apt-get download` of the package linux-image-amd64
# depends on, unpacked with dpkg-deb -x (nothing is installed on this
# system). The tests take vmlinuz and a few modules (virtio, vfat) from it.
set -euo pipefail
dir="${XDG_CACHE_HOME:-$HOME/.cache}/rewind-test/guest-kernel"
if [ -f "$dir/current/ok" ]; then
  exit 0
fi
mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# linux-image-amd64 is a metapackage: its one dependency is the kernel.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
pkg="$(kernel_pkg)"
if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq >/dev/null
  pkg="$(kernel_pkg)"
fi
if [ -z "$pkg" ]; then
  echo "guest-kernel.sh: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2
  exit 1
fi
echo "guest-kernel.sh: fetching $pkg into $dir (about 70 MB, once)" >&2
apt-get download -qq "$pkg" 2>/dev/null || {
  echo "guest-kernel.sh: apt-get download $pkg failed" >&2
  exit 1
}
mkdir unpacked
dpkg-deb -x ./*.deb unpacked
rm -rf unpacked/usr  # documentation; the kernel and its modules are all the guest needs
ls unpacked/boot/vmlinuz-* >/dev/null
echo "$pkg" >unpacked/package
touch unpacked/ok
rm -rf "$dir/$pkg"
mv unpacked "$dir/$pkg"
ln -sfn "$pkg" "$dir/current"
