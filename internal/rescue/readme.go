package rescue

import (
	"fmt"
	"strings"
)

// readme is README.txt: how to boot what was built.
func readme(res *Result) string {
	var b strings.Builder
	b.WriteString(`rewind rescue system
====================

vmlinuz      the kernel
initrd.img   the initramfs: busybox, a static rewind, the tools recover
             needs, kernel modules for disks, filesystems and network
`)
	if res.ISO != "" {
		b.WriteString("rescue.iso   a bootable ISO (BIOS and UEFI) holding both\n")
	}
	b.WriteString(`
The system configures every wired network card by DHCP, then either runs
"rewind recover --config FILE" on its own (FILE from rewind.config=FILE
on the kernel command line, or the one built in with --config;
rewind.reboot reboots when it succeeds) or asks for the repository and
its password and leaves you at a shell. It prints REWIND-RESCUE-UP when
all its kernel modules are loaded, before recover or the shell.

  rewind snapshots
  rewind recover --dry-run --disk /dev/sda
  rewind recover --disk /dev/sda

Boot it under QEMU (serial console in this terminal):

  qemu-system-x86_64 -m 1024 -kernel vmlinuz -initrd initrd.img \
    -append "console=ttyS0,115200" -nographic \
    -nic user -drive file=disk.qcow2,if=virtio

Boot it from a USB stick (this erases the stick /dev/sdX):

  dd if=rescue.iso of=/dev/sdX bs=4M conv=fsync status=progress

(rescue.iso comes with "rewind rescue build --iso"; without it, copy
vmlinuz and initrd.img to a stick that has a boot loader.)

Boot it by PXE: put vmlinuz and initrd.img on the TFTP or HTTP server and
add to pxelinux.cfg/default (or the same in an iPXE script):

  LABEL rescue
    KERNEL vmlinuz
    INITRD initrd.img
    APPEND console=tty0 quiet rewind.config=http://SERVER/recover.conf

Give the machine at least 512 MB of memory.
`)
	if len(res.Missing) > 0 {
		fmt.Fprintf(&b, "\nLeft out because this machine lacks them (also in /etc/rescue-missing):\n  %s\n", strings.Join(res.Missing, "\n  "))
	}
	return b.String()
}
