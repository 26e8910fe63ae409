package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// SystemDisk is a small installed-looking system on a loop disk, mounted
// as a system that is not running: its root at Root, its /boot at
// Root/boot. The ESP is not mounted: this machine's kernel has no vfat
// (its files are written with mtools).
type SystemDisk struct {
	Dev      string // "/dev/loop5"
	ESP      string // "/dev/loop5p1", vfat, label "ESP"
	BootPart string // "/dev/loop5p2", ext4, label "sys-boot"
	RootPart string // "/dev/loop5p3", ext4, label "sys-root"
	Root     string // where RootPart is mounted
	RootUUID string
	BootUUID string
	ESPUUID  string
}

// SystemDiskOptions shape a SystemDisk.
type SystemDiskOptions struct {
	Hostname string // written to etc/hostname
	// EFILoader puts EFI/BOOT/BOOTX64.EFI on the ESP: the disk of a UEFI
	// system. Without it the ESP is empty, as on a BIOS system.
	EFILoader bool
}

// NewSystemDisk makes a 100 MiB loop disk with a GPT: an EFI system
// partition (16 MiB, vfat), an ext4 /boot (24 MiB) holding
// grub/grub.cfg and vmlinuz-6.1.0-test-amd64, and an ext4 root holding
// etc/hostname, etc/fstab (by UUID), etc/passwd and etc/group. It mounts
// the root at a temporary directory and /boot at its boot, all undone
// when the test ends. It needs root, sfdisk, partx, mkfs.vfat,
// mkfs.ext4, blkid, and mtools for EFILoader.
func NewSystemDisk(t testing.TB, opt SystemDiskOptions) *SystemDisk {
	t.Helper()
	dev := LoopDisk(t, 100<<20)
	for _, tool := range []string{"sfdisk", "partx", "mkfs.vfat", "mkfs.ext4", "blkid"} {
		RequireTool(t, tool)
	}
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return out
	}
	table := "label: gpt\n" +
		"size=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n" +
		"size=24MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot\n" +
		"type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n"
	must(sysDiskRunIn(table, RequireTool(t, "sfdisk"), "--quiet", "--no-reread", dev))
	must(run(RequireTool(t, "partx"), "-u", dev))
	d := &SystemDisk{Dev: dev, ESP: dev + "p1", BootPart: dev + "p2", RootPart: dev + "p3"}
	for _, p := range []string{d.ESP, d.BootPart, d.RootPart} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("partition device after partx -u: %v", err)
		}
	}
	must(run(RequireTool(t, "mkfs.vfat"), "-n", "ESP", d.ESP))
	must(run(RequireTool(t, "mkfs.ext4"), "-q", "-F", "-L", "sys-boot", d.BootPart))
	must(run(RequireTool(t, "mkfs.ext4"), "-q", "-F", "-L", "sys-root", d.RootPart))
	d.ESPUUID = must(run(RequireTool(t, "blkid"), "-p", "-s", "UUID", "-o", "value", d.ESP))
	d.BootUUID = must(run(RequireTool(t, "blkid"), "-p", "-s", "UUID", "-o", "value", d.BootPart))
	d.RootUUID = must(run(RequireTool(t, "blkid"), "-p", "-s", "UUID", "-o", "value", d.RootPart))
	if opt.EFILoader {
		loader := filepath.Join(t.TempDir(), "BOOTX64.EFI")
		sysDiskWrite(t, loader, "MZ not a loader\n")
		must(run(RequireTool(t, "mmd"), "-i", d.ESP, "::/EFI", "::/EFI/BOOT"))
		must(run(RequireTool(t, "mcopy"), "-i", d.ESP, loader, "::/EFI/BOOT/BOOTX64.EFI"))
	}

	d.Root = filepath.Join(t.TempDir(), "sysroot")
	sysDiskMount(t, d.RootPart, d.Root, "ext4")
	host := opt.Hostname
	if host == "" {
		host = "cold-srv"
	}
	files := map[string]string{
		"etc/hostname": host + "\n",
		"etc/fstab": "UUID=" + d.RootUUID + " / ext4 errors=remount-ro 0 1\n" +
			"UUID=" + d.BootUUID + " /boot ext4 defaults 0 2\n" +
			"UUID=" + d.ESPUUID + " /boot/efi vfat umask=0077 0 1\n",
		"etc/passwd":                    "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":                     "root:x:0:\n",
		"boot/grub/grub.cfg":            "set default=0\n",
		"boot/vmlinuz-6.1.0-test-amd64": "not a kernel\n",
		"boot/efi/.keep":                "",
	}
	sysDiskMount(t, d.BootPart, filepath.Join(d.Root, "boot"), "ext4")
	for name, content := range files {
		sysDiskWrite(t, filepath.Join(d.Root, name), content)
	}
	return d
}

// sysDiskMount creates dir and mounts dev there, unmounted when the test
// ends.
func sysDiskMount(t testing.TB, dev, dir, fstype string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev, dir, fstype, 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// MountTmpfs mounts a tmpfs at dir (created), unmounted when the test
// ends: a virtual filesystem inside a system root.
func MountTmpfs(t testing.TB, dir string) {
	t.Helper()
	sysDiskMount(t, "tmpfs", dir, "tmpfs")
}

func sysDiskWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runIn runs a program with stdin, returning its combined output.
func sysDiskRunIn(stdin, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
