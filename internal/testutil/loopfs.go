package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// quietForce are the flags that make each mkfs quiet and let it write
// over an image file without asking.
var quietForce = map[string][]string{
	"ext4":  {"-q", "-F"},
	"xfs":   {"-q", "-f"},
	"btrfs": {"-q", "-f"},
}

// LoopFS returns the root of a new, empty filesystem of type fstype
// ("ext4", "xfs", "btrfs", ...) made by mkfs.<fstype> with mkfsArgs in a
// sparse image of size bytes in t.TempDir(), and mounted on a loop device
// with the filesystem's default options. It is unmounted and the loop
// device detached when the test ends. The image is <fstype>.img next to
// the returned directory.
//
// It needs root: otherwise the test is skipped. As root, a failure to set
// it up (no loop devices, a missing mkfs, a kernel without the
// filesystem) skips the test too, except under CI=true, where it fails it.
func LoopFS(t testing.TB, fstype string, size int64, mkfsArgs ...string) string {
	t.Helper()
	return loopFS(t, fstype, size, "loop", mkfsArgs...)
}

// loopFS is LoopFS with mount options (a comma-separated list that must
// include "loop").
func loopFS(t testing.TB, fstype string, size int64, mountOpts string, mkfsArgs ...string) string {
	t.Helper()
	if !IsRoot() {
		t.Skipf("%s loop mount needs root", fstype)
	}
	mkfs := RequireTool(t, "mkfs."+fstype)
	mount := RequireTool(t, "mount")
	losetup := RequireTool(t, "losetup")

	dir := t.TempDir()
	img := filepath.Join(dir, fstype+".img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("create %s image: %v", fstype, err)
	}
	args := append(append(append([]string(nil), quietForce[fstype]...), mkfsArgs...), img)
	if out, err := run(mkfs, args...); err != nil {
		unavailable(t, "mkfs.%s: %v: %s", fstype, err, out)
	}
	if out, err := run(mount, "-t", fstype, "-o", mountOpts, img, mnt); err != nil {
		unavailable(t, "mount %s image on a loop device: %v: %s", fstype, err, out)
	}
	t.Cleanup(func() { unmountExt4(t, losetup, img, mnt) })
	return mnt
}
