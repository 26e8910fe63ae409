package rescue

import (
	"github.com/rewind-backup/rewind/internal/progpath"
)

// Tools are the programs recover runs, looked up on the host and copied
// with their libraries. A tool the host lacks is left out and listed in
// the image's /etc/rescue-missing.
var Tools = []string{
	// partitions and devices (util-linux)
	"sfdisk", "fdisk", "lsblk", "partx", "losetup", "blkid", "wipefs", "mount", "umount",
	// filesystems
	"mke2fs", "mkfs.ext2", "mkfs.ext3", "mkfs.ext4", "e2fsck", "resize2fs", "tune2fs",
	"mkfs.xfs", "xfs_admin", "xfs_db", "xfs_growfs",
	"mkfs.btrfs", "btrfs",
	"mkfs.fat", "mkfs.vfat", "mkswap",
	// boot loader
	"grub-install", "grub-bios-setup", "grub-mkimage", "grub-probe", "grub-editenv",
	"efibootmgr", "udevadm",
	// an EFI system partition written without mounting it
	"mcopy", "mmd", "mdir", "mformat",
	"chroot",
}

// ToolDirs are searched for Tools after $PATH.
var ToolDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/lib/grub/i386-pc"}

// GrubDirs are GRUB's platform files that grub-install reads.
var GrubDirs = []string{"/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi"}

// GrubSkip are folders under GrubDirs grub-install does not read:
// prebuilt images for netboot and installers, 15 MB.
var GrubSkip = []string{"/usr/lib/grub/x86_64-efi/monolithic"}

// ExtraFiles are copied when the host has them: CA certificates for S3
// over HTTPS, and mke2fs's defaults.
var ExtraFiles = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/mke2fs.conf"}

// DeviceModules and LaterModules are the kernel modules the image loads,
// dependencies added. DeviceModules come first: common disk
// controllers, network cards, USB keyboards and disks, loop devices.
// LaterModules load in the background while DHCP runs and questions are
// answered: filesystems, and the drivers of server RAID/SAS controllers,
// hypervisors' devices and server network cards (a card found then gets
// DHCP too). One built into the kernel is not needed; one the kernel has
// in neither form is listed as missing.
var (
	DeviceModules = []string{
		"virtio_pci", "ahci", "ata_piix", "sd_mod", "sr_mod", "virtio_blk", "virtio_scsi", "nvme",
		"af_packet", "e1000", "e1000e", "virtio_net", "r8169",
		"xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "usbhid", "hid_generic", "usb_storage", "uas",
		"loop",
	}
	LaterModules = []string{
		"crc32c_generic", "ext4", "xfs", "btrfs", "vfat", "nls_cp437", "nls_iso8859_1", "nls_utf8", "isofs",
		"megaraid_sas", "mpt3sas", "hpsa", "smartpqi", "aacraid",
		"vmw_pvscsi", "vmxnet3", "hv_storvsc", "hv_netvsc", "xen_blkfront", "xen_netfront",
		"igb", "ixgbe", "i40e", "tg3", "bnx2", "bnxt_en",
	}
)

// lookTool finds a tool on $PATH, then in ToolDirs; "" when absent.
func lookTool(name string) string { return progpath.Find(name, ToolDirs) }
