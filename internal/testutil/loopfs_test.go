package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLoopFS mounts each filesystem the restore tests use and checks it is
// what was asked for, takes user xattrs, and is gone after the test.
func TestLoopFS(t *testing.T) {
	for _, c := range []struct {
		fstype string
		magic  int64
		mount  func(testing.TB) string
	}{
		{"xfs", unix.XFS_SUPER_MAGIC, XFS},
		{"btrfs", unix.BTRFS_SUPER_MAGIC, func(t testing.TB) string { return LoopFS(t, "btrfs", 128<<20) }},
	} {
		t.Run(c.fstype, func(t *testing.T) {
			var mnt, img string
			t.Run("mount", func(t *testing.T) {
				mnt = c.mount(t)
				img = filepath.Join(filepath.Dir(mnt), c.fstype+".img")
				var sfs unix.Statfs_t
				if err := unix.Statfs(mnt, &sfs); err != nil {
					t.Fatal(err)
				}
				if sfs.Type != c.magic {
					t.Fatalf("filesystem type %#x, want %s (%#x)", sfs.Type, c.fstype, c.magic)
				}
				p := filepath.Join(mnt, "f")
				if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := unix.Lsetxattr(p, "user.test", []byte("v"), 0); err != nil {
					t.Errorf("user xattrs: %v", err)
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
		})
	}
}
