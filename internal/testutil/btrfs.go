package testutil

import (
	"testing"

	"golang.org/x/sys/unix"
)

// btrfsImageSize: mkfs.btrfs refuses images under about 110 MiB.
const btrfsImageSize = 256 << 20

// Btrfs returns the root of a new, empty btrfs filesystem (the top-level
// subvolume) on a loop device, with ACLs (btrfs always has user xattrs),
// set up and skipped or failed as LoopFS says. It needs mkfs.btrfs
// (Debian package btrfs-progs).
func Btrfs(t testing.TB) string {
	t.Helper()
	return loopFS(t, "btrfs", btrfsImageSize, "loop,acl")
}

// BtrfsSubvolume creates a subvolume at path, on a btrfs filesystem such
// as Btrfs returns. A subvolume has its own device number (st_dev) but is
// no mount point.
func BtrfsSubvolume(t testing.TB, path string) {
	t.Helper()
	btrfs := RequireTool(t, "btrfs")
	if out, err := run(btrfs, "-q", "subvolume", "create", path); err != nil {
		t.Fatalf("btrfs subvolume create %s: %v: %s", path, err, out)
	}
}

// BindMount mounts the directory src on dst (which must exist), for a
// test that needs one filesystem mounted inside another, and undoes it
// when the test ends. Register it after the filesystems it joins, so that
// it is undone first.
func BindMount(t testing.TB, src, dst string) {
	t.Helper()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		unavailable(t, "bind mount %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dst, 0); err != nil {
			t.Errorf("unmount %s: %v", dst, err)
		}
	})
}
