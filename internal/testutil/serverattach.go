package testutil

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// AttachedServer is a server disk attached as a loop device, its
// partitions scanned, its root mounted at Root and its ESP at
// Root/boot/efi: what `rewind backup --system-root Root --disks Dev`
// backs up, as an administrator would with another machine's disk.
//
// The ESP is mounted only where the running kernel has vfat: the test
// machine's kernel has no vfat and no modules to load it, so there
// ESPMounted is false and the ESP's files are reachable with mtools
// only (mdir -i DevpN ::/EFI).
type AttachedServer struct {
	Dev        string // /dev/loopN; partitions are DevpN
	Root       string
	ESPMounted bool
}

// KernelHasFS reports whether the running kernel knows the filesystem
// type fs (/proc/filesystems): without it nothing of that type mounts.
func KernelHasFS(fs string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[len(f)-1] == fs {
			return true
		}
	}
	return false
}

// Part is the device of partition n ("/dev/loop3p4").
func (a *AttachedServer) Part(n int) string { return fmt.Sprintf("%sp%d", a.Dev, n) }

// AttachServer attaches disk (a raw server disk, see BuildServerDisk)
// and mounts its root and ESP; when the test ends they are unmounted and
// the loop device detached. It needs root (else the test is skipped).
func AttachServer(t testing.TB, disk string) *AttachedServer {
	t.Helper()
	if !IsRoot() {
		t.Skip("attaching the server disk needs root")
	}
	losetup := RequireTool(t, "losetup")
	partx := RequireTool(t, "partx")
	dev, err := run(losetup, "--find", "--show", "--partscan", disk)
	if err != nil {
		unavailable(t, "losetup --partscan %s: %v: %s", disk, err, dev)
	}
	a := &AttachedServer{Dev: dev, Root: t.TempDir()}
	var mounted []string
	t.Cleanup(func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			if out, err := run("umount", mounted[i]); err != nil {
				t.Errorf("umount %s: %v: %s", mounted[i], err, out)
			}
		}
		if out, err := run(losetup, "-d", dev); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	// The kernel may not have scanned the table: partx adds what it
	// lacks (and fails harmlessly on what it has).
	_, _ = run(partx, "-a", dev)
	for _, n := range []int{2, 4} {
		if err := waitBlock(a.Part(n), 10*time.Second); err != nil {
			t.Fatalf("server disk %s: %v", disk, err)
		}
	}
	mounts := []struct{ dev, dir string }{{a.Part(4), a.Root}}
	if KernelHasFS("vfat") {
		mounts = append(mounts, struct{ dev, dir string }{a.Part(2), a.Root + "/boot/efi"})
	}
	for _, m := range mounts {
		if out, err := run("mount", m.dev, m.dir); err != nil {
			t.Fatalf("mount %s %s: %v: %s", m.dev, m.dir, err, out)
		}
		mounted = append(mounted, m.dir)
	}
	a.ESPMounted = len(mounted) == 2
	return a
}

// waitBlock waits for a block device node to appear.
func waitBlock(path string, d time.Duration) error {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeDevice != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v", path, d)
		}
	}
}
