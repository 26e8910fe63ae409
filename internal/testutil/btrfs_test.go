package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// btrfsSuperMagic is BTRFS_SUPER_MAGIC from linux/magic.h.
const btrfsSuperMagic = 0x9123683e

// TestBtrfs mounts a btrfs image, makes a subvolume in it and binds an
// ext4 filesystem inside the subvolume: the subvolume has a device of its
// own but is no mount root; the bind is a mount root. Everything is
// unmounted and detached when the subtest ends.
func TestBtrfs(t *testing.T) {
	var mnt, img string
	t.Run("mount", func(t *testing.T) {
		mnt = Btrfs(t)
		img = filepath.Join(filepath.Dir(mnt), "btrfs.img")
		var sfs unix.Statfs_t
		if err := unix.Statfs(mnt, &sfs); err != nil {
			t.Fatal(err)
		}
		if sfs.Type != btrfsSuperMagic {
			t.Fatalf("filesystem type %#x, want btrfs (%#x)", sfs.Type, btrfsSuperMagic)
		}
		vol := filepath.Join(mnt, "vol")
		BtrfsSubvolume(t, vol)
		if err := os.WriteFile(filepath.Join(vol, "f"), []byte("in the subvolume"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(filepath.Join(vol, "f"), "user.test", []byte("v"), 0); err != nil {
			t.Errorf("user xattrs: %v", err)
		}
		ext := filepath.Join(vol, "ext")
		if err := os.Mkdir(ext, 0o755); err != nil {
			t.Fatal(err)
		}
		BindMount(t, Ext4(t), ext)

		top, sub, bound := statxOf(t, mnt), statxOf(t, vol), statxOf(t, ext)
		if top.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			t.Skip("the kernel does not report STATX_ATTR_MOUNT_ROOT")
		}
		if sub.Dev_major == top.Dev_major && sub.Dev_minor == top.Dev_minor {
			t.Errorf("subvolume has the device of its parent")
		}
		if sub.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 || top.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			t.Errorf("subvolume mount root %v, filesystem root %v; want false, true",
				sub.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, top.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0)
		}
		if bound.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			t.Errorf("bind mount is not a mount root")
		}
	})
	if mnt == "" {
		return // skipped
	}
	if mounted(t, mnt) {
		t.Errorf("%s still mounted after the test ended", mnt)
	}
	if out, err := run("losetup", "--noheadings", "--associated", img); err != nil || out != "" {
		t.Errorf("loop device still attached to %s: %s %v", img, out, err)
	}
}

func statxOf(t *testing.T, p string) unix.Statx_t {
	t.Helper()
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &st); err != nil {
		t.Fatal(err)
	}
	return st
}
