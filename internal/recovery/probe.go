package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrTargetBusy: a target disk is mounted, holds swap, or is held by
// another device (RAID, LVM, LUKS).
var ErrTargetBusy = errors.New("target disk in use")

// ProbeTarget returns the size and logical sector size of the disk at
// path (a symlink such as /dev/disk/by-id/... is followed). A regular
// file is a target of 512-byte sectors (a planned VM image); Recover
// itself only writes block devices.
func ProbeTarget(ctx context.Context, path string) (Target, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return Target{}, fmt.Errorf("target %s: %w", path, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return Target{}, fmt.Errorf("target %s: %w", path, err)
	}
	if fi.Mode().IsRegular() {
		return Target{Path: real, SizeBytes: fi.Size(), SectorSize: 512}, nil
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return Target{}, fmt.Errorf("target %s is not a block device", path)
	}
	name, err := sysName(real)
	if err != nil {
		return Target{}, fmt.Errorf("target %s: %w", path, err)
	}
	if _, err := os.Stat("/sys/class/block/" + name + "/partition"); err == nil {
		return Target{}, fmt.Errorf("target %s is a partition: give the whole disk", path)
	}
	sectors, err := strconv.ParseInt(sysRead("/sys/class/block/"+name+"/size"), 10, 64)
	if err != nil {
		return Target{}, fmt.Errorf("target %s: no size in sysfs", path)
	}
	ss, _ := strconv.Atoi(sysRead("/sys/class/block/" + name + "/queue/logical_block_size"))
	if ss == 0 {
		ss = 512
	}
	return Target{Path: real, SizeBytes: sectors * 512, SectorSize: ss}, nil
}

// sysName is the kernel name of the block device node path, found by
// its device number (a node may be named otherwise than the kernel
// names it).
func sysName(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	link, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
	if err != nil {
		return "", fmt.Errorf("not a known block device: %w", err)
	}
	return filepath.Base(link), nil
}

func sysRead(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

// busy says why the disk at path cannot be written ("" when it can): it
// or one of its partitions is mounted, is a swap area in use, or is held
// by another device. It reads /proc/self/mountinfo, /proc/swaps and the
// holders directories of sysfs.
func busy(path string) string {
	name, err := sysName(path)
	if err != nil {
		return fmt.Sprintf("%s: %v", path, err)
	}
	devs := map[string]string{} // "major:minor" -> kernel name
	devs[sysRead("/sys/class/block/"+name+"/dev")] = name
	ents, _ := os.ReadDir("/sys/class/block/" + name)
	for _, e := range ents {
		if _, err := os.Stat("/sys/class/block/" + name + "/" + e.Name() + "/partition"); err == nil {
			devs[sysRead("/sys/class/block/"+e.Name()+"/dev")] = e.Name()
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			if n, ok := devs[f[2]]; ok {
				return fmt.Sprintf("/dev/%s is mounted on %s", n, f[4])
			}
		}
		// btrfs shows an anonymous device number: match the source.
		if i := indexOf(f, "-"); i > 0 && len(f) > i+2 {
			for _, n := range devs {
				if f[i+2] == "/dev/"+n {
					return fmt.Sprintf("/dev/%s is mounted on %s", n, f[4])
				}
			}
		}
	}
	sw, _ := os.ReadFile("/proc/swaps")
	for _, line := range strings.Split(string(sw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, n := range devs {
			if f[0] == "/dev/"+n {
				return fmt.Sprintf("/dev/%s is a swap area in use (swapoff it first)", n)
			}
		}
	}
	for _, n := range devs {
		dir := "/sys/class/block/" + n + "/holders"
		if n != name {
			dir = "/sys/class/block/" + name + "/" + n + "/holders"
		}
		if hs, _ := os.ReadDir(dir); len(hs) > 0 {
			return fmt.Sprintf("/dev/%s is held by %s (RAID, LVM or LUKS: stop it first)", n, hs[0].Name())
		}
	}
	return ""
}

func indexOf(f []string, s string) int {
	for i, x := range f {
		if x == s {
			return i
		}
	}
	return -1
}
