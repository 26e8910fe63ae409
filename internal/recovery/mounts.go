package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// mounts are the mounts recover made below its work directory, undone
// in reverse order.
type mounts struct {
	done []string
	// fat are the vfat filesystems of the plan that this kernel cannot
	// mount (no vfat driver): their files are restored into the
	// directory where they would be mounted, on the filesystem above,
	// and moved into the FAT with mtools afterwards (writeFAT).
	fat []fatDir
	// made are the bind mount points recover created in the recovered
	// system, removed once unmounted.
	made []string
}

// fatDir is a vfat filesystem written with mtools instead of a mount.
type fatDir struct {
	dir, dev, target string
}

// kernelHas reports whether the running kernel knows the filesystem type
// (/proc/filesystems); modules it could load are not seen, so this is
// asked only after a mount fails with ENODEV.
func kernelHas(typ string) bool {
	b, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == typ {
			return true
		}
	}
	return false
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
				continue
			}
		}
		// A mount point made for a bind goes while the filesystem it is
		// on is still mounted.
		if slices.Contains(m.made, dir) {
			if err := os.Remove(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	m.done = nil
	m.made = nil
	return errors.Join(errs...)
}

// mountSystem mounts the plan's filesystems below root as the recovered
// system mounts them, parents first.
func (m *mounts) mountSystem(root string, p *Plan) error {
	for _, mp := range p.Mounts {
		dir := filepath.Join(root, filepath.Clean("/"+mp.Target))
		opts := mp.Options
		if mp.Type == "xfs" {
			// The recorded filesystem may be mounted on this machine
			// under the same UUID (a drill of the machine itself).
			opts = strings.TrimPrefix(opts+",nouuid", ",")
		}
		if mp.Type == "vfat" {
			// The restore sets modes and owners that FAT cannot hold:
			// "quiet" makes FAT accept them as it does at boot.
			opts = strings.TrimPrefix(opts+",quiet", ",")
		}
		err := m.mount(mp.Device, dir, mp.Type, opts, 0)
		if err != nil && mp.Type == "vfat" && errors.Is(err, unix.ENODEV) && !kernelHas("vfat") {
			m.fat = append(m.fat, fatDir{dir: dir, dev: mp.Device, target: mp.Target})
			continue
		}
		if err != nil {
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
		dir := filepath.Join(root, d)
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			m.made = append(m.made, dir)
		}
		if err := m.mount(d, dir, "", "", unix.MS_BIND|unix.MS_REC); err != nil {
			return err
		}
		// Unmounting a recursive bind must not propagate to the host's
		// own mounts.
		_ = unix.Mount("", filepath.Join(root, d), "", unix.MS_SLAVE|unix.MS_REC, "")
	}
	return nil
}

// writeFAT copies what was restored below each unmounted vfat's mount
// point into the FAT with mcopy (modification times kept; FAT holds no
// owners, modes or extended attributes), then empties the mount point.
func (m *mounts) writeFAT(ctx context.Context) ([]string, error) {
	var warnings []string
	for _, f := range m.fat {
		ents, err := os.ReadDir(f.dir)
		if err != nil {
			return warnings, err
		}
		var args []string
		for _, e := range ents {
			args = append(args, filepath.Join(f.dir, e.Name()))
		}
		if len(args) > 0 {
			args = append(append([]string{"-i", f.dev, "-s", "-p", "-m", "-o", "-Q"}, args...), "::/")
			if _, err := (cmd{name: "mcopy", args: args}).run(ctx); err != nil {
				return warnings, fmt.Errorf("write the files of %s into the FAT on %s: %w", f.target, f.dev, err)
			}
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(f.dir, e.Name())); err != nil {
				return warnings, err
			}
		}
		warnings = append(warnings, fmt.Sprintf("this kernel has no vfat driver: %s (%s) was written with mtools, which keeps modification times only", f.target, f.dev))
	}
	return warnings, nil
}
