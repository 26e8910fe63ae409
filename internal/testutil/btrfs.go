package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// LoopFS describes a filesystem that LoopMount makes in an image file and
// mounts on a loop device. Helpers for one filesystem (Btrfs; XFS could
// be another) fill it in.
type LoopFS struct {
	Type      string   // filesystem type for mount -t, e.g. "btrfs"
	Mkfs      string   // program that formats the image, e.g. "mkfs.btrfs"
	MkfsArgs  []string // its arguments before the image path
	MountOpts string   // mount options besides "loop", e.g. "user_xattr"
	Size      int64    // apparent size of the sparse image in bytes
}

// LoopMount formats a new sparse image in t.TempDir() as fs, mounts it on
// a loop device and returns the mount's root. The mount is undone and the
// loop device detached when the test ends.
//
// It needs root: otherwise the test is skipped. As root, a failure to set
// it up (no loop devices in a container, a missing mkfs, a kernel without
// the filesystem) skips the test too, except under CI=true, where it
// fails it.
func LoopMount(t testing.TB, fs LoopFS) string {
	t.Helper()
	if !IsRoot() {
		t.Skipf("%s loop mount needs root", fs.Type)
	}
	mkfs := RequireTool(t, fs.Mkfs)
	mount := RequireTool(t, "mount")
	losetup := RequireTool(t, "losetup")

	dir := t.TempDir()
	img := filepath.Join(dir, fs.Type+".img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(fs.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("create %s image: %v", fs.Type, err)
	}
	if out, err := run(mkfs, append(append([]string(nil), fs.MkfsArgs...), img)...); err != nil {
		unavailable(t, "%s: %v: %s", fs.Mkfs, err, out)
	}
	opts := "loop"
	if fs.MountOpts != "" {
		opts += "," + fs.MountOpts
	}
	if out, err := run(mount, "-t", fs.Type, "-o", opts, img, mnt); err != nil {
		unavailable(t, "mount %s image on a loop device: %v: %s", fs.Type, err, out)
	}
	t.Cleanup(func() { unmountExt4(t, losetup, img, mnt) })
	return mnt
}

// btrfsImageSize: mkfs.btrfs refuses images under about 110 MiB.
const btrfsImageSize = 256 << 20

// Btrfs returns the root of a new, empty btrfs filesystem (the top-level
// subvolume) on a loop device, with ACLs (btrfs always has user xattrs),
// set up and skipped or failed as LoopMount says. It needs mkfs.btrfs
// (Debian package btrfs-progs).
func Btrfs(t testing.TB) string {
	t.Helper()
	return LoopMount(t, LoopFS{Type: "btrfs", Mkfs: "mkfs.btrfs", MkfsArgs: []string{"-q", "-f"},
		MountOpts: "acl", Size: btrfsImageSize})
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
