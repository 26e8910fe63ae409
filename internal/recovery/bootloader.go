package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// bootPlan is how the boot loader will be installed, decided before any
// disk is touched so that a missing grub-install stops recover early.
type bootPlan struct {
	install  bool
	platform string // "i386-pc" or "x86_64-efi"
	// chroot: the recovered system has its own grub-install for the
	// platform, run inside it; otherwise this machine's.
	chroot bool
	tool   string // the program: a path inside the recovered system, or this machine's
	disk   string // the target disk GRUB goes on (BIOS), or that holds the ESP
	esp    string // the ESP's mount point in the recovered system (UEFI)
	espNum int    // the ESP's partition number (UEFI)
}

// grubTools are where a system keeps grub-install.
var grubTools = []string{"/usr/sbin/grub-install", "/usr/bin/grub-install", "/sbin/grub-install"}

// inSnapshot reports whether the snapshot holds p below root.
func inSnapshot(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, root, p string) bool {
	if r == nil || sn == nil {
		return false
	}
	_, err := snapshot.Lookup(ctx, r, sn, path.Join(root, p))
	return err == nil
}

// planBoot decides how GRUB is installed for p.BootMode.
func planBoot(ctx context.Context, opt Options, p *Plan, root string) (*bootPlan, []string, error) {
	doc := opt.Inventory
	var warnings []string
	hasGrub := slices.Contains(doc.Boot.Loaders, "grub") || inSnapshot(ctx, opt.Repo, opt.Snapshot, root, "/boot/grub")
	if !hasGrub {
		return &bootPlan{}, []string{"the recorded system has no GRUB (boot loaders recorded: " + fmt.Sprint(doc.Boot.Loaders) + "): no boot loader installed; install one before booting"}, nil
	}
	b := &bootPlan{install: true, platform: "i386-pc"}
	if p.BootMode == "uefi" {
		b.platform = "x86_64-efi"
	}
	for _, t := range grubTools {
		if inSnapshot(ctx, opt.Repo, opt.Snapshot, root, t) && inSnapshot(ctx, opt.Repo, opt.Snapshot, root, "/usr/lib/grub/"+b.platform) {
			b.chroot, b.tool = true, t
			break
		}
	}
	if !b.chroot {
		var err error
		if b.tool, err = lookPath("grub-install"); err == nil {
			if _, serr := os.Stat("/usr/lib/grub/" + b.platform); serr != nil {
				err = fmt.Errorf("%w: grub-install has no %s modules (/usr/lib/grub/%s)", ErrMissingTool, b.platform, b.platform)
			}
		}
		if err != nil {
			pkg := "grub-pc-bin"
			if b.platform == "x86_64-efi" {
				pkg = "grub-efi-amd64-bin"
			}
			return nil, nil, fmt.Errorf("%w: GRUB for %s (%s boot) is neither in the snapshot nor on this machine: install the Debian package %s (and udev for udevadm) and run recover again; no disk was touched",
				ErrMissingTool, b.platform, p.BootMode, pkg)
		}
	}
	// The disk: the one holding /boot, else /, (BIOS) or the ESP (UEFI).
	want := ""
	if p.BootMode == "uefi" {
		for _, t := range []string{"/boot/efi", "/efi", "/boot"} {
			if i := slices.IndexFunc(p.Mounts, func(m MountPlan) bool { return m.Target == t && m.Type == "vfat" }); i >= 0 {
				b.esp, want = t, p.Mounts[i].Device
				break
			}
		}
		if want == "" {
			return nil, nil, fmt.Errorf("%w: UEFI boot, but no EFI system partition (vfat at /boot/efi, /efi or /boot) is in the recorded fstab or mounts; give --boot-mode bios if the system boots by BIOS", ErrPlan)
		}
	} else {
		for _, t := range []string{"/boot", "/"} {
			if i := slices.IndexFunc(p.Mounts, func(m MountPlan) bool { return m.Target == t }); i >= 0 {
				want = p.Mounts[i].Device
				break
			}
		}
	}
	for _, d := range p.Disks {
		for _, pt := range d.Table.Partitions {
			if pt.Path == want {
				b.disk, b.espNum = d.Target, pt.Number
			}
		}
	}
	if b.disk == "" {
		return nil, nil, fmt.Errorf("%w: no target disk holds the boot filesystem", ErrPlan)
	}
	if p.BootMode == "bios" {
		for _, d := range p.Disks {
			if d.Target == b.disk && d.Table.Type == "gpt" && !slices.ContainsFunc(d.Table.Partitions, func(pt inventory.Partition) bool { return equalFold(pt.Type, biosBootGUID) }) {
				warnings = append(warnings, b.disk+": a GPT disk without a BIOS boot partition: grub-install may refuse to embed itself")
			}
		}
	}
	return b, warnings, nil
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }

// regenerateInitramfs runs the recovered system's own initramfs
// generator in it; a system without one gets a warning.
func regenerateInitramfs(ctx context.Context, root string) (warning string, err error) {
	for _, g := range []struct {
		paths []string
		args  []string
	}{
		{[]string{"/usr/sbin/update-initramfs", "/sbin/update-initramfs"}, []string{"-u", "-k", "all"}},
		{[]string{"/usr/bin/dracut", "/usr/sbin/dracut", "/sbin/dracut"}, []string{"--regenerate-all", "-f"}},
	} {
		for _, p := range g.paths {
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				continue
			}
			if _, err := (cmd{name: p, args: g.args, chroot: root}).run(ctx); err != nil {
				return "", fmt.Errorf("regenerate the initramfs: %w", err)
			}
			return "", nil
		}
	}
	return "no update-initramfs or dracut in the recovered system: its initramfs is the one restored, not regenerated", nil
}

// installGrub installs GRUB for b into the recovered system at root.
// grub-install on a loop disk needs a device.map naming it; one is
// written for the run and removed after.
func installGrub(ctx context.Context, b *bootPlan, root, host string, p *Plan, espMounted bool) (warnings []string, err error) {
	mapPath := filepath.Join(root, "boot/grub/device.map")
	if _, serr := os.Stat(mapPath); errors.Is(serr, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(mapPath), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(mapPath, []byte("(hd0)\t"+b.disk+"\n"), 0o644); err != nil {
			return nil, err
		}
		defer os.Remove(mapPath)
	}
	if b.platform == "x86_64-efi" && !espMounted {
		if err := mkimageEFI(ctx, b, root, p); err != nil {
			return nil, err
		}
		return efiEntry(ctx, b, host), nil
	}
	args := []string{"--target=" + b.platform}
	c := cmd{name: b.tool}
	if b.chroot {
		c.chroot = root
		if b.platform == "x86_64-efi" {
			args = append(args, "--efi-directory="+b.esp, "--removable", "--no-nvram")
		}
	} else {
		args = append(args, "--boot-directory="+filepath.Join(root, "boot"))
		if b.platform == "x86_64-efi" {
			args = append(args, "--efi-directory="+filepath.Join(root, b.esp), "--removable", "--no-nvram")
		}
	}
	if b.platform == "i386-pc" {
		args = append(args, b.disk)
	}
	c.args = args
	if _, err := c.run(ctx); err != nil {
		return nil, fmt.Errorf("install GRUB: %w", err)
	}
	if b.platform != "x86_64-efi" {
		return nil, nil
	}
	return efiEntry(ctx, b, host), nil
}

// efiEntry makes the NVRAM boot entry for the ESP, when this machine
// booted by UEFI; otherwise it says why there is none.
func efiEntry(ctx context.Context, b *bootPlan, host string) []string {
	// The firmware boots \EFI\BOOT\BOOTX64.EFI from the ESP by itself;
	// an NVRAM entry is made only when this machine is the one that
	// will boot it (it booted by UEFI).
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return []string{"this machine did not boot by UEFI: no NVRAM boot entry made; the firmware finds \\EFI\\BOOT\\BOOTX64.EFI on the ESP by itself"}
	}
	if _, err := lookPath("efibootmgr"); err != nil {
		return []string{"efibootmgr is not installed: no NVRAM boot entry made; the firmware finds \\EFI\\BOOT\\BOOTX64.EFI on the ESP by itself"}
	}
	label := "rewind " + host
	if _, err := (cmd{name: "efibootmgr", args: []string{"-q", "-c", "-d", b.disk, "-p", strconv.Itoa(b.espNum), "-L", label, "-l", `\EFI\BOOT\BOOTX64.EFI`}}).run(ctx); err != nil {
		return []string{fmt.Sprintf("no NVRAM boot entry: %v", err)}
	}
	return nil
}

// efiModules are what the UEFI image made by mkimageEFI holds: enough to
// find the filesystem of /boot/grub and read its grub.cfg; the rest is
// loaded from /boot/grub/x86_64-efi.
var efiModules = []string{"part_gpt", "part_msdos", "fat", "ext2", "xfs", "btrfs", "search", "search_fs_uuid", "normal", "configfile", "linux", "echo", "test", "all_video", "gzio"}

// mkimageEFI installs GRUB for UEFI without grub-install, which wants the
// ESP mounted (this kernel may have no vfat): the platform's modules are
// copied to /boot/grub/x86_64-efi and grub-mkimage writes
// \EFI\BOOT\BOOTX64.EFI (the removable path) into the ESP's directory,
// with a configuration that finds /boot/grub by its filesystem's UUID.
func mkimageEFI(ctx context.Context, b *bootPlan, root string, p *Plan) error {
	mods := "/usr/lib/grub/" + b.platform
	if b.chroot {
		mods = filepath.Join(root, mods)
	}
	dst := filepath.Join(root, "boot/grub", b.platform)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(mods)
	if err != nil {
		return fmt.Errorf("install GRUB: %w", err)
	}
	for _, e := range ents {
		if ext := filepath.Ext(e.Name()); e.Type().IsRegular() && (ext == ".mod" || ext == ".lst") {
			data, err := os.ReadFile(filepath.Join(mods, e.Name()))
			if err == nil {
				err = os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644)
			}
			if err != nil {
				return fmt.Errorf("install GRUB modules: %w", err)
			}
		}
	}
	// The filesystem holding /boot/grub, and the path to it there.
	var at MountPlan
	for _, m := range p.Mounts {
		if (m.Target == "/" || m.Target == "/boot") && len(m.Target) >= len(at.Target) {
			at = m
		}
	}
	uuid := ""
	for _, f := range p.Filesystems {
		if f.Device == at.Device {
			uuid = f.UUID
		}
	}
	if uuid == "" {
		return fmt.Errorf("install GRUB: the filesystem of /boot has no UUID to find it by")
	}
	prefix := strings.TrimPrefix("/boot/grub", strings.TrimSuffix(at.Target, "/"))
	if sv, ok := optionValue(at.Options, "subvol"); ok {
		prefix = "/" + strings.Trim(sv, "/") + prefix
	}
	cfg := filepath.Join(root, "boot/grub/rewind-early.cfg")
	if err := os.WriteFile(cfg, []byte("search --no-floppy --fs-uuid --set=root "+uuid+"\nset prefix=($root)"+prefix+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(cfg)
	out := filepath.Join(root, b.esp, "EFI/BOOT/BOOTX64.EFI")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	args := append([]string{"-O", b.platform, "-d", mods, "-c", cfg, "-p", prefix, "-o", out}, efiModules...)
	if _, err := (cmd{name: "grub-mkimage", args: args}).run(ctx); err != nil {
		return fmt.Errorf("install GRUB: %w", err)
	}
	return nil
}
