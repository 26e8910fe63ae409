// Package fsfreeze freezes and thaws a mounted filesystem with the
// FIFREEZE and FITHAW ioctls, as fsfreeze(8) does, for the plan's
// fsfreeze step; and runs the watchdog that thaws a filesystem at the end
// of its freeze window even when the process that froze it is gone.
package fsfreeze

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The ioctls of linux/fs.h: _IOWR('X', 119, int) and _IOWR('X', 120, int).
const (
	fiFreeze = 0xC0045877
	fiThaw   = 0xC0045878
)

// ErrNotMountPoint is returned for a path that is not the root of a mount:
// the whole filesystem under it would be frozen, which its name would
// hide.
var ErrNotMountPoint = errors.New("not a mount point")

// Freeze freezes the filesystem mounted at mnt: writes to it block until
// Thaw. It fails if mnt is no mount point or is frozen already.
func Freeze(mnt string) error {
	if err := checkMountPoint(mnt); err != nil {
		return err
	}
	return ioctl(mnt, fiFreeze, "freeze")
}

// Thaw thaws the filesystem mounted at mnt. Thawing one that is not
// frozen is no error: the watchdog and the runner may both thaw.
func Thaw(mnt string) error {
	err := ioctl(mnt, fiThaw, "thaw")
	if errors.Is(err, unix.EINVAL) {
		return nil
	}
	return err
}

func ioctl(mnt string, req uint, what string) error {
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, mnt, err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, req, 0); err != nil {
		return fmt.Errorf("%s %s: %w", what, mnt, err)
	}
	return nil
}

// checkMountPoint fails unless mnt is the root of a mount (statx's
// mount-root attribute, Linux 5.8 and later).
func checkMountPoint(mnt string) error {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, mnt, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE, &stx); err != nil {
		return fmt.Errorf("freeze %s: %w", mnt, err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return fmt.Errorf("freeze %s: %w (name the folder the filesystem is mounted on)", mnt, ErrNotMountPoint)
	}
	return nil
}

// Device returns the device number of the filesystem holding path, or of
// its nearest existing parent when path does not exist yet.
func Device(path string) (uint64, error) {
	for p := path; ; {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil {
			return st.Dev, nil
		}
		parent := parentDir(p)
		if !errors.Is(err, unix.ENOENT) || parent == p {
			return 0, fmt.Errorf("stat %s: %w", p, err)
		}
		p = parent
	}
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	if len(p) > 0 && p[0] == '/' {
		return "/"
	}
	return "."
}

// Watch is the watchdog: it thaws mnt once after has passed since it
// started, or as soon as the process pid (the one that froze mnt) is
// gone, whichever comes first. It returns early, without thawing, when
// ctx ends: the freezer stops the watchdog after its own thaw. It returns
// whether it thawed, and why.
func Watch(ctx context.Context, mnt string, after time.Duration, pid int) (string, error) {
	deadline := time.NewTimer(after)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", nil
		case <-deadline.C:
			return "freeze window of " + after.String() + " ended", Thaw(mnt)
		case <-tick.C:
			if pid > 0 && !alive(pid) {
				return fmt.Sprintf("process %d that froze it is gone", pid), Thaw(mnt)
			}
		}
	}
}

// alive reports whether process pid exists (and is no zombie, which a
// SIGKILLed parent not yet reaped would be).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' {
			return i+2 >= len(b) || b[i+2] != 'Z'
		}
	}
	return true
}
