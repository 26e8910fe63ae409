package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ext4Shutdown is EXT4_IOC_SHUTDOWN, _IOR('X', 125, __u32), and
// ext4GoingNoLogFlush its flag EXT4_GOING_FLAGS_NOLOGFLUSH: stop the
// filesystem at once, without writing back dirty data or committing the
// running journal transaction.
const (
	ext4Shutdown        = 0x8004587d
	ext4GoingNoLogFlush = 2
)

// powerCutCommit is the journal commit interval, in seconds, of a
// PowerCutFS. ext4 commits every 5 s by default, which makes writes
// durable that nobody synced; with a long interval only an fsync (of any
// file: the journal is shared) commits, so a power cut drops exactly what
// was never synced.
const powerCutCommit = 600

// PowerCutFS is an ext4 filesystem on a loop device whose power can be
// cut: writes that were never synced are lost, as in a power failure.
type PowerCutFS struct {
	// Dir is where the filesystem is mounted.
	Dir string
	// Image is the file behind the loop device.
	Image string
}

// NewPowerCutFS returns a new, empty ext4 filesystem as Ext4 does (and
// skips or fails the test as Ext4 does when it cannot make one), mounted
// with a journal commit interval so long that nothing is durable until
// something is synced.
func NewPowerCutFS(t testing.TB) *PowerCutFS {
	t.Helper()
	mnt := Ext4(t)
	fs := &PowerCutFS{Dir: mnt, Image: filepath.Join(filepath.Dir(mnt), "ext4.img")}
	if out, err := run(RequireTool(t, "mount"), "-o", fs.options("remount"), mnt); err != nil {
		unavailable(t, "remount %s with commit=%d: %v: %s", mnt, powerCutCommit, err, out)
	}
	return fs
}

func (fs *PowerCutFS) options(first string) string {
	return fmt.Sprintf("%s,acl,user_xattr,commit=%d", first, powerCutCommit)
}

// CutPower stops the filesystem as a power failure would: every write not
// yet committed to the journal (anything not synced) is dropped, and
// every later operation on it fails with EIO. Processes using it should
// be killed, and then Remount called.
func (fs *PowerCutFS) CutPower() error {
	d, err := os.Open(fs.Dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.IoctlSetPointerInt(int(d.Fd()), ext4Shutdown, ext4GoingNoLogFlush); err != nil {
		return fmt.Errorf("EXT4_IOC_SHUTDOWN on %s: %w", fs.Dir, err)
	}
	return nil
}

// FsckResult is what e2fsck said about the filesystem after a power cut.
type FsckResult struct {
	// Code is e2fsck's exit status: 0 clean, 1 errors fixed (replaying
	// the journal counts), 2 fixed and reboot needed, 4 and above errors
	// left or a failure.
	Code   int
	Output string
}

// Remount boots the filesystem again after CutPower: it unmounts it, runs
// e2fsck -fy on the image as a boot after a crash would (replaying the
// journal), and mounts it again at Dir. The test fails if e2fsck leaves
// errors or the filesystem cannot be mounted.
func (fs *PowerCutFS) Remount(t testing.TB) FsckResult {
	t.Helper()
	err := unix.Unmount(fs.Dir, 0)
	for try := 0; errors.Is(err, unix.EBUSY) && try < 50; try++ {
		time.Sleep(100 * time.Millisecond)
		err = unix.Unmount(fs.Dir, 0)
	}
	if err != nil {
		t.Fatalf("unmount %s after the power cut: %v", fs.Dir, err)
	}
	cmd := exec.Command(RequireTool(t, "e2fsck"), "-f", "-y", fs.Image)
	out, err := cmd.CombinedOutput()
	res := FsckResult{Output: strings.TrimSpace(string(out))}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("e2fsck %s: %v", fs.Image, err)
	}
	if res.Code >= 4 {
		t.Fatalf("e2fsck left errors on %s (exit %d):\n%s", fs.Image, res.Code, res.Output)
	}
	if out, err := run(RequireTool(t, "mount"), "-t", "ext4", "-o", fs.options("loop"), fs.Image, fs.Dir); err != nil {
		t.Fatalf("mount %s again after the power cut: %v: %s", fs.Image, err, out)
	}
	return res
}

// RequireRootOrCI skips the test unless it runs as root, or fails it
// under CI=true, where the tests are expected to run as root.
func RequireRootOrCI(t testing.TB) {
	t.Helper()
	if !IsRoot() {
		unavailable(t, "needs root (to mount a filesystem and cut its power)")
	}
}
