package testutil

import "fmt"

// serverModules are loaded by the server's initramfs, with what they
// depend on first: the virtio disk and network QEMU gives it, ext4 (and
// the crc32c its checksums ask the crypto API for, which no modprobe
// would load), vfat for the ESP's fstab entry.
var serverModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4",
	"vfat", "nls_cp437", "nls_ascii", "nls_utf8"}

// serverInitramfsInit is the initramfs's /init: load the modules, find
// the root= of the kernel's command line (UUID=... or a device) with
// busybox findfs, mount it and switch_root into its /sbin/init.
const serverInitramfsInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "REWIND-ERROR insmod $m"; done
root=
for a in $(cat /proc/cmdline); do case "$a" in root=*) root="${a#root=}" ;; esac; done
dev=
for i in $(seq 1 150); do
  case "$root" in
  /dev/*) [ -b "$root" ] && dev="$root" ;;
  *) dev="$(findfs "$root" 2>/dev/null)" ;;
  esac
  [ -n "$dev" ] && break
  sleep 0.1
done
if [ -z "$dev" ]; then echo "REWIND-ERROR no root device $root"; poweroff -f; fi
mount -t ext4 "$dev" /root || { echo "REWIND-ERROR mount root $dev"; poweroff -f; }
mount --move /dev /root/dev
umount /proc /sys
exec switch_root /root /sbin/init
`

// serverRootInit is the root's /sbin/init, run by busybox sh. After
// ServerReady it reads commands from the console:
//
//	run CMD...  runs CMD with sh -c, then prints "REWIND-SERVER-DONE STATUS"
//	echo TEXT   prints TEXT
//	poweroff    unmounts, prints ServerPoweroff, powers off
const serverRootInit = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs dev /dev
stty -echo 2>/dev/null
hostname -F /etc/hostname
echo "` + ServerUp + ` $(cat /etc/hostname)"
ok=ok
mount -a || ok=failed
swapon -a || ok=failed
echo "` + ServerFstab + ` $ok"
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 || echo "REWIND-ERROR network"
httpd -p 80 -h /srv/www || echo "REWIND-ERROR httpd"
# READY once port 80 listens (state 0A in /proc/net/tcp).
for i in $(seq 1 100); do grep -q ':0050 00000000:0000 0A' /proc/net/tcp && break; sleep 0.1; done
echo ` + ServerReady + `
while read -r cmd rest; do
  case "$cmd" in
  run) sh -c "$rest"; echo "REWIND-SERVER-DONE $?" ;;
  echo) echo "$rest" ;;
  poweroff) swapoff -a; umount /boot/efi; mount -o remount,ro /; sync; echo ` + ServerPoweroff + `; poweroff -f ;;
  "") ;;
  *) echo "REWIND-ERROR unknown command $cmd" ;;
  esac
done
poweroff -f
`

// serverUpdateInitramfs is the server's /usr/sbin/update-initramfs: a
// test stand-in for Debian's tool, which rebuilds /boot/initrd.img-* with
// initramfs-tools the tiny server does not have. `rewind recover` runs
// update-initramfs in a chroot of the recovered root like on a real
// Debian; this one records that it ran, when, with which arguments and
// for which kernels in ServerRegenerated, which the recovery tests check.
const serverUpdateInitramfs = `#!/bin/sh
# rewind test stand-in for Debian's update-initramfs (see
# internal/testutil/serverinit.go): records the run in
# ` + ServerRegenerated + ` instead of rebuilding the initramfs.
out=` + ServerRegenerated + `
{
  echo "regenerated $(date -u +%Y-%m-%dT%H:%M:%SZ) args: $*"
  for k in /boot/vmlinuz-*; do echo "kernel ${k#/boot/vmlinuz-}"; done
} >"$out" || exit 1
echo "update-initramfs: wrote $out"
`

// serverFstab is the root's /etc/fstab; data adds the data disk's
// entry.
func serverFstab(data bool) string {
	s := fmt.Sprintf(`# /etc/fstab of the rewind test server
UUID=%s / ext4 errors=remount-ro 0 1
UUID=%s /boot/efi vfat umask=0077 0 2
UUID=%s none swap sw 0 0
`, ServerRootUUID, ServerESPUUID, ServerSwapUUID)
	if data {
		s += fmt.Sprintf("UUID=%s %s ext4 defaults 0 2\n", ServerDataUUID, ServerDataMount)
	}
	return s
}

// serverGrubCfg is /boot/grub/grub.cfg: one entry, no menu.
func serverGrubCfg(kernel string) string {
	return fmt.Sprintf(`set default=0
set timeout=0
menuentry 'rewind test server' {
	search --no-floppy --fs-uuid --set=root %[1]s
	linux /boot/vmlinuz-%[2]s root=UUID=%[1]s rw console=ttyS0,115200 quiet loglevel=1 panic=-1
	initrd /boot/initrd.img-%[2]s
}
`, ServerRootUUID, kernel)
}
