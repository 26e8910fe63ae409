package diskimage

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Size returns the size in bytes of the open device or image file f.
func Size(f *os.File) (int64, error) {
	n, err := f.Seek(0, 2)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return 0, err
	}
	return n, nil
}

// IsDevice reports whether p is a block device.
func IsDevice(p string) (bool, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return false, err
	}
	return fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0, nil
}

// InUse says why the block device dev must not be written: it, or one
// of its partitions, is mounted (per /proc/self/mountinfo) or held by
// another device (a device-mapper or md device built on it, per
// /sys/dev/block/MAJ:MIN/holders). It returns "" when it is free.
func InUse(dev string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", fmt.Errorf("%s: %w", dev, err)
	}
	devs := map[string]bool{fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)): true}
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	// Partitions are subfolders holding a "partition" file.
	parts, _ := filepath.Glob(filepath.Join(sys, "*", "partition"))
	dirs := []string{sys}
	for _, p := range parts {
		d := filepath.Dir(p)
		dirs = append(dirs, d)
		if b, err := os.ReadFile(filepath.Join(d, "dev")); err == nil {
			devs[strings.TrimSpace(string(b))] = true
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && devs[fields[2]] {
			return fmt.Sprintf("%s is mounted on %s", dev, fields[4]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	for _, d := range dirs {
		hs, _ := os.ReadDir(filepath.Join(d, "holders"))
		if len(hs) > 0 {
			return fmt.Sprintf("%s is in use by /dev/%s", dev, hs[0].Name()), nil
		}
	}
	return "", nil
}
