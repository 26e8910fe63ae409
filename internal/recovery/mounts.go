package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mounts are the mounts recover made below its work directory, undone
// in reverse order.
type mounts struct {
	done []string
}

// mount mounts dev (or, for a bind mount, the directory dev) on dir,
// creating dir.
func (m *mounts) mount(dev, dir, typ, opts string, flags uintptr) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, dir, typ, flags, opts); err != nil {
		what := typ
		if flags&unix.MS_BIND != 0 {
			what = "bind"
		}
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, what, dir, err)
	}
	m.done = append(m.done, dir)
	return nil
}

// unmountAll undoes every mount, last first. A busy one is detached
// lazily so that the disk can still be let go of.
func (m *mounts) unmountAll() error {
	var errs []error
	for i := len(m.done) - 1; i >= 0; i-- {
		dir := m.done[i]
		if err := unix.Unmount(dir, 0); err != nil {
			if err2 := unix.Unmount(dir, unix.MNT_DETACH); err2 != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", dir, err))
			}
		}
	}
	m.done = nil
	return errors.Join(errs...)
}

// mountSystem mounts the plan's filesystems below root as the recovered
// system mounts them, parents first.
func (m *mounts) mountSystem(root string, p *Plan) error {
	for _, mp := range p.Mounts {
		dir := filepath.Join(root, filepath.Clean("/"+mp.Target))
		opts := mp.Options
		if mp.Type == "vfat" {
			// The restore sets modes and owners that FAT cannot hold:
			// "quiet" makes FAT accept them as it does at boot.
			opts = strings.TrimPrefix(opts+",quiet", ",")
		}
		if err := m.mount(mp.Device, dir, mp.Type, opts, 0); err != nil {
			return err
		}
	}
	return nil
}

// bindSystem binds /dev, /proc, /sys and /run into root for programs run
// in it (the initramfs generator, grub-install).
func (m *mounts) bindSystem(root string) error {
	for _, d := range []string{"/dev", "/proc", "/sys", "/run"} {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if err := m.mount(d, filepath.Join(root, d), "", "", unix.MS_BIND|unix.MS_REC); err != nil {
			return err
		}
		// Unmounting a recursive bind must not propagate to the host's
		// own mounts.
		_ = unix.Mount("", filepath.Join(root, d), "", unix.MS_SLAVE|unix.MS_REC, "")
	}
	return nil
}
