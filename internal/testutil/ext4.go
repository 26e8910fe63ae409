package testutil

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ext4ImageSize is the apparent size of the sparse image behind Ext4.
const ext4ImageSize = 256 << 20

// Ext4 returns the root of a new, empty ext4 filesystem mounted with ACLs
// and user extended attributes, for tests that need a real filesystem with
// known features whatever the one holding the temporary directory is.
// The filesystem lives in a sparse 256 MiB image file in t.TempDir(), is
// mounted on a loop device, and is unmounted and detached when the test
// ends.
//
// It needs root: otherwise the test is skipped. As root, a failure to set
// it up (no loop devices in a container, a missing mkfs.ext4) skips the
// test too, except under CI=true, where it fails it.
func Ext4(t testing.TB) string {
	t.Helper()
	// 4 KiB blocks and 256-byte inodes (nanosecond and pre-1970 times,
	// in-inode xattrs), as on a production filesystem: mke2fs would pick
	// 1 KiB blocks for one this small.
	return loopFS(t, "ext4", ext4ImageSize, "loop,acl,user_xattr", "-b", "4096", "-I", "256", "-E", "nodiscard")
}

// unmountExt4 unmounts mnt, a loop mount of any filesystem, retrying
// while it is busy (a file a test has not closed yet, a process still
// exiting), then detaches the loop device behind img if mount's autoclear
// did not already.
func unmountExt4(t testing.TB, losetup, img, mnt string) {
	t.Helper()
	err := unix.Unmount(mnt, 0)
	for try := 0; errors.Is(err, unix.EBUSY) && try < 50; try++ {
		time.Sleep(100 * time.Millisecond)
		err = unix.Unmount(mnt, 0)
	}
	if errors.Is(err, unix.EBUSY) {
		t.Errorf("unmount %s: still busy, detaching lazily: something in the test keeps a file open", mnt)
		err = unix.Unmount(mnt, unix.MNT_DETACH)
	}
	if err != nil {
		t.Errorf("unmount %s: %v", mnt, err)
		return
	}
	out, err := run(losetup, "--noheadings", "--output", "NAME", "--associated", img)
	if err != nil {
		t.Errorf("losetup --associated %s: %v: %s", img, err, out)
		return
	}
	for _, dev := range strings.Fields(out) {
		if out, err := run(losetup, "--detach", dev); err != nil && !strings.Contains(out, "No such device") {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	}
}

// run runs a program and returns its combined output, trimmed.
func run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}
