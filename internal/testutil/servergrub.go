package testutil

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// GRUB goes onto the server disk without grub-install, which wants the
// target filesystems mounted: grub-mkimage makes an image holding every
// module the boot needs and an early configuration that finds the root
// by its UUID and reads its /boot/grub/grub.cfg. For UEFI that image is
// EFI/BOOT/BOOTX64.EFI on the ESP (serverESP). For BIOS it is the core
// image in the BIOS boot partition, and the MBR gets GRUB's boot.img
// patched the way grub-bios-setup patches it (which needs a device and
// its root filesystem's, and so a loop device and a mount).

// serverGrubModules are built into the image: the root's /boot/grub has
// no module directory to load more from.
var serverGrubModules = []string{"part_gpt", "ext2", "search", "search_fs_uuid", "normal", "linux",
	"boot", "configfile", "echo", "test"}

// serverGrubEarly is the early configuration built into the image.
var serverGrubEarly = fmt.Sprintf(`search --no-floppy --fs-uuid --set=root %s
set prefix=($root)/boot/grub
`, ServerRootUUID)

// grubImage runs grub-mkimage for format into out.
func grubImage(work, format, out string, mods []string, in *serverIn) error {
	early := filepath.Join(work, "early.cfg")
	if err := os.WriteFile(early, []byte(serverGrubEarly), 0o644); err != nil {
		return err
	}
	args := append([]string{"-O", format, "-o", out, "-c", early, "-p", "/boot/grub"}, serverGrubModules...)
	return runErr(in.tools["grub-mkimage"], append(args, mods...)...)
}

// serverGrubEFI writes GRUB's EFI image to out.
func serverGrubEFI(work, out string, in *serverIn) error {
	return grubImage(work, "x86_64-efi", out, []string{"fat", "efi_gop"}, in)
}

// Offsets in GRUB's i386-pc boot.img (include/grub/i386/pc/boot.h).
const (
	grubBPBStart    = 0x03 // a BIOS parameter block's place, kept
	grubBPBEnd      = 0x5a
	grubKernelSec   = 0x5c // 64-bit LBA of the core image's first sector
	grubBootDrive   = 0x64 // 0xff: the drive the BIOS booted from
	grubDriveCheck  = 0x66 // a jump, replaced by two NOPs for hard disks
	grubNTMagic     = 0x1b8
	grubPartEnd     = 0x1fe
	grubListSize    = 12     // a blocklist entry: start u64, len u16, segment u16
	grubCoreSegment = 0x0820 // where the second core sector on loads
)

// serverGrubBIOS writes GRUB's core image into the BIOS boot partition
// and boot.img into the MBR, keeping the protective MBR's partition
// table, as grub-bios-setup does when it embeds (without Reed-Solomon
// codes, as its --no-rs-codes).
func serverGrubBIOS(work, disk string, in *serverIn) error {
	core := filepath.Join(work, "core.img")
	if err := grubImage(work, "i386-pc", core, []string{"biosdisk"}, in); err != nil {
		return err
	}
	c, err := os.ReadFile(core)
	if err != nil {
		return err
	}
	boot, err := os.ReadFile("/usr/lib/grub/i386-pc/boot.img")
	if err != nil {
		return missing("GRUB's boot.img: %v (run scripts/recovery.sh as root: grub-pc-bin)", err)
	}
	if len(boot) != 512 {
		return fmt.Errorf("/usr/lib/grub/i386-pc/boot.img has %d bytes, want 512", len(boot))
	}
	sectors := (len(c) + 511) / 512
	if sectors > serverBIOSSize {
		return fmt.Errorf("GRUB's core image (%d sectors) does not fit the BIOS boot partition (%d)", sectors, serverBIOSSize)
	}
	c = append(c, make([]byte, sectors*512-len(c))...)
	// The first core sector (diskboot) loads the others: one blocklist
	// entry at its end, and an empty one before it ends the list.
	e := c[512-grubListSize:]
	binary.LittleEndian.PutUint64(e[0:8], serverBIOSStart+1)
	binary.LittleEndian.PutUint16(e[8:10], uint16(sectors-1))
	binary.LittleEndian.PutUint16(e[10:12], grubCoreSegment)
	clear(c[512-2*grubListSize : 512-grubListSize])

	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	b := append([]byte(nil), boot...)
	copy(b[grubBPBStart:grubBPBEnd], mbr[grubBPBStart:grubBPBEnd])
	copy(b[grubNTMagic:grubPartEnd], mbr[grubNTMagic:grubPartEnd])
	binary.LittleEndian.PutUint64(b[grubKernelSec:], serverBIOSStart)
	b[grubBootDrive] = 0xff
	b[grubDriveCheck], b[grubDriveCheck+1] = 0x90, 0x90
	if _, err := f.WriteAt(c, serverBIOSStart*512); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Close()
}
