package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The tests' bootable guest: a sparse raw disk of GuestDiskSize bytes
// with an MBR (syslinux's boot code) and one FAT partition holding
// syslinux, Debian's kernel (scripts/guest-kernel.sh) and an initramfs
// whose init is busybox-static's shell running guestInit. The guest's
// root stays the initramfs: init loads the virtio and vfat modules,
// mounts its own disk's partition on /disk, prints the lines below on
// its serial console (ttyS0) and then reads commands from it:
//
//	sum NAME        prints "REWIND-SUM NAME SHA256" of /disk/NAME
//	write NAME TEXT writes TEXT and a newline to /disk/NAME, syncs, prints "REWIND-OK write NAME"
//	echo TEXT       prints TEXT
//	poweroff        unmounts /disk, prints GuestPoweroff, powers off
const (
	GuestDiskSize = 1 << 30
	// GuestMarker is the first line init prints.
	GuestMarker = "REWIND-GUEST-UP"
	// GuestReady follows the check: the disk is mounted and commands are
	// read from the console.
	GuestReady    = "REWIND-READY"
	GuestPoweroff = "REWIND-POWEROFF"
	// GuestCheckFile is on the guest's disk; init prints "REWIND-CHECK
	// SHA256" of it, GuestCheckSum when the disk is intact.
	GuestCheckFile = "check.txt"
)

// guestVersion changes when the builder changes what it builds.
const guestVersion = "1"

// guestPartStart and guestPartSize place the FAT partition (sectors).
const (
	guestPartStart = 2048
	guestPartSize  = 64 << 20 / 512
)

// guestCheckContent is the check file's content: some text, so that a
// wrong block read through the repository changes its checksum.
var guestCheckContent = []byte(strings.Repeat("rewind instant recovery check line\n", 3000))

// GuestCheckSum is the hex SHA-256 of the check file the guest prints.
var GuestCheckSum = func() string {
	s := sha256.Sum256(guestCheckContent)
	return hex.EncodeToString(s[:])
}()

const guestSyslinuxCfg = `SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT guest
LABEL guest
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0,115200 quiet loglevel=1 panic=-1 rdinit=/init
`

// guestInit is /init. The disk shows as /dev/vda (virtio) or /dev/sda.
const guestInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
echo ` + GuestMarker + `
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
stty -echo 2>/dev/null
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "REWIND-ERROR insmod $m"; done
part=
for i in $(seq 1 100); do
  for d in /dev/vda1 /dev/sda1; do [ -b $d ] && part=$d; done
  [ -n "$part" ] && break
  sleep 0.1
done
if [ -z "$part" ]; then echo "REWIND-ERROR no disk"; poweroff -f; fi
mount -t vfat $part /disk || { echo "REWIND-ERROR mount $part"; poweroff -f; }
echo "REWIND-CHECK $(sha256sum /disk/` + GuestCheckFile + ` | cut -d' ' -f1)"
echo ` + GuestReady + `
while read -r cmd name text; do
  case "$cmd" in
  sum) echo "REWIND-SUM $name $(sha256sum /disk/$name | cut -d' ' -f1)" ;;
  write) echo "$text" >/disk/$name && sync && echo "REWIND-OK write $name" ;;
  echo) echo "$name $text" ;;
  poweroff) sync; umount /disk; echo ` + GuestPoweroff + `; poweroff -f ;;
  "") ;;
  *) echo "REWIND-ERROR unknown command $cmd" ;;
  esac
done
poweroff -f
`

// guestModules are loaded by init, with what they depend on first.
var guestModules = []string{"virtio_pci", "virtio_blk", "vfat", "nls_cp437", "nls_ascii", "nls_utf8"}

var guestOnce struct {
	sync.Mutex
	path string
}

// GuestDisk returns the path of the guest's raw disk image, built once
// per test binary and cached by content in
// ${XDG_CACHE_HOME:-~/.cache}/rewind-test/guest/. Tests must not write
// to it: boot it through an overlay or a copy. Needs scripts/qemu.sh's
// packages (syslinux, mtools, dosfstools, busybox-static) and the kernel
// scripts/guest-kernel.sh fetches (run here when missing).
func GuestDisk(t testing.TB) string {
	t.Helper()
	p, err := BuildGuestDisk()
	var m *missingError
	if errors.As(err, &m) {
		unavailable(t, "guest disk: %v", err)
	}
	if err != nil {
		t.Fatalf("guest disk: %v", err)
	}
	return p
}

// missingError is a component the guest needs that is not installed.
type missingError struct{ msg string }

func (e *missingError) Error() string { return e.msg }

func missing(format string, args ...any) error {
	return &missingError{fmt.Sprintf(format, args...)}
}

// BuildGuestDisk is GuestDisk outside a test (the bench): the path of
// the cached disk, built when missing.
func BuildGuestDisk() (string, error) {
	guestOnce.Lock()
	defer guestOnce.Unlock()
	if guestOnce.path != "" {
		return guestOnce.path, nil
	}
	for _, tool := range []string{"syslinux", "mcopy", "mkfs.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				return "", missing("%s not found (run scripts/qemu.sh as root: syslinux, mtools, dosfstools)", tool)
			}
		}
	}
	mbr, err := os.ReadFile("/usr/lib/syslinux/mbr/mbr.bin")
	if err != nil {
		return "", missing("syslinux's MBR code: %v (run scripts/qemu.sh as root: syslinux-common)", err)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", missing("%v (run scripts/qemu.sh as root: busybox-static)", err)
	}
	kdir, err := guestKernelDir()
	if err != nil {
		return "", err
	}
	vmlinuz, err := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if err != nil || len(vmlinuz) != 1 {
		return "", fmt.Errorf("no single vmlinuz in %s/boot: %v", kdir, vmlinuz)
	}
	mods, err := moduleOrder(kdir, guestModules)
	if err != nil {
		return "", err
	}
	syslinux, _ := exec.LookPath("syslinux")
	sysBin, _ := os.ReadFile(syslinux)
	h := sha256.New()
	for _, part := range [][]byte{[]byte(guestVersion), []byte(guestInit), []byte(guestSyslinuxCfg), mbr, busybox, sysBin, []byte(vmlinuz[0])} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	for _, m := range mods {
		fmt.Fprintf(h, "%s;", m.Rel)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir := filepath.Join(testCacheDir(), "guest")
	path := filepath.Join(dir, "guest-"+key+".img")
	if _, err := os.Stat(path); err == nil {
		guestOnce.path = path
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	initrd, err := guestInitramfs(busybox, mods)
	if err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	k, err := os.ReadFile(vmlinuz[0])
	if err != nil {
		return "", err
	}
	files := map[string][]byte{
		"syslinux.cfg": []byte(guestSyslinuxCfg),
		"initrd.gz":    initrd,
		"vmlinuz":      k,
		GuestCheckFile: guestCheckContent,
	}
	part := filepath.Join(work, "part.img")
	if err := guestFAT(work, part, files); err != nil {
		return "", err
	}
	disk := filepath.Join(work, "disk.img")
	if err := guestAssemble(disk, part, mbr); err != nil {
		return "", err
	}
	// A rename is atomic: parallel test binaries build the same file.
	if err := os.Rename(disk, path); err != nil {
		return "", err
	}
	guestOnce.path = path
	return path, nil
}

// testCacheDir is ${XDG_CACHE_HOME:-~/.cache}/rewind-test.
func testCacheDir() string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "rewind-test")
}

// guestKernelDir is $REWIND_GUEST_KERNEL, or the unpacked kernel package
// scripts/guest-kernel.sh leaves in the test cache (run when missing).
func guestKernelDir() (string, error) {
	if d := os.Getenv("REWIND_GUEST_KERNEL"); d != "" {
		return d, nil
	}
	d := filepath.Join(testCacheDir(), "guest-kernel", "current")
	if _, err := os.Stat(filepath.Join(d, "ok")); err == nil {
		return d, nil
	}
	script, err := projectFile("scripts/guest-kernel.sh")
	if err != nil {
		return "", missing("guest kernel: %v", err)
	}
	out, err := exec.Command("bash", script).CombinedOutput()
	if err != nil {
		return "", missing("guest kernel: %s: %v: %s", script, err, bytes.TrimSpace(out))
	}
	return d, nil
}

// projectFile finds rel in the project, looking up from the working
// directory (a package's directory under go test) to go.mod's.
func projectFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, rel), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("no go.mod above the working directory, so no %s", rel)
		}
		dir = up
	}
}

// GuestKernelDir returns the unpacked Debian kernel package the guest
// boots (boot/vmlinuz-*, lib/modules/*/), fetched by
// scripts/guest-kernel.sh when missing.
func GuestKernelDir(t testing.TB) string {
	t.Helper()
	d, err := guestKernelDir()
	var m *missingError
	if errors.As(err, &m) {
		unavailable(t, "guest kernel: %v", err)
	}
	if err != nil {
		t.Fatalf("guest kernel: %v", err)
	}
	return d
}
