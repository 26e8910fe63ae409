package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExt4(t *testing.T) {
	var mnt, img string
	t.Run("mount", func(t *testing.T) {
		mnt = Ext4(t)
		img = filepath.Join(filepath.Dir(mnt), "ext4.img")

		var sfs unix.Statfs_t
		if err := unix.Statfs(mnt, &sfs); err != nil {
			t.Fatal(err)
		}
		if sfs.Type != unix.EXT4_SUPER_MAGIC {
			t.Fatalf("filesystem type %#x, want ext4 (%#x)", sfs.Type, unix.EXT4_SUPER_MAGIC)
		}
		if sfs.Bsize != 4096 {
			t.Errorf("block size %d, want 4096", sfs.Bsize)
		}
		if !mounted(t, mnt) {
			t.Fatalf("%s not in /proc/self/mountinfo", mnt)
		}
		p := filepath.Join(mnt, "f")
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(p, "user.test", []byte("v"), 0); err != nil {
			t.Errorf("user xattrs: %v", err)
		}
		// Keep a file open past the end of the test: cleanup must wait
		// for it to be closed, not fail.
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(300*time.Millisecond, func() { f.Close() })
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

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func TestRequireTool(t *testing.T) {
	if p := RequireTool(t, "sh"); p == "" {
		t.Fatal("sh not found")
	}
	if CI() {
		return // a missing tool fails the test there
	}
	var skipped bool
	t.Run("missing", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		RequireTool(t, "no-such-tool-rewind")
	})
	if !skipped {
		t.Error("missing tool did not skip")
	}
}
