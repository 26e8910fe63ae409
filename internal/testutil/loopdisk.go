package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// LoopDisk returns a new loop device ("/dev/loop5") backed by a sparse,
// empty image of size bytes in t.TempDir(), attached with partition
// scanning (losetup -P) and detached when the test ends. The caller
// partitions it; as the kernel may not scan a loop device's table by
// itself, `partx -u DEV` after writing one makes its partitions appear.
//
// It needs root: otherwise the test is skipped. As root, a failure to
// set it up skips the test, except under CI=true, where it fails it.
func LoopDisk(t testing.TB, size int64) string {
	t.Helper()
	if !IsRoot() {
		t.Skip("a loop disk needs root")
	}
	losetup := RequireTool(t, "losetup")
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("create disk image: %v", err)
	}
	dev, err := run(losetup, "--find", "--show", "--partscan", img)
	if err != nil {
		unavailable(t, "losetup --partscan %s: %v: %s", img, err, dev)
	}
	t.Cleanup(func() {
		if out, err := run(losetup, "-d", dev); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}
