// Package loopdev attaches image files as loop block devices and makes
// their partitions appear. The kernels rewind runs on do not always scan a
// loop device's partition table by themselves (even with --partscan), so
// every change of a table is followed by `partx`, which tells the kernel
// about each partition; devtmpfs then makes /dev/loopNpK.
//
// One small wrapper per program: losetup, partx and udevadm.
package loopdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/progpath"
)

// ErrNoTool: a program this package runs is not installed.
var ErrNoTool = errors.New("program not found")

// LookPath finds a program in PATH, then in the sbin directories that a
// user's PATH may leave out.
func LookPath(name string) (string, error) {
	if p := progpath.Find(name, progpath.Sbin); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%s: %w (install util-linux)", name, ErrNoTool)
}

// run runs one program with the C locale and returns its standard
// output; a failure carries its standard error.
func run(ctx context.Context, name string, args ...string) (string, error) {
	p, err := LookPath(name)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// Attach attaches file as a new loop device with partition scanning and
// returns the device ("/dev/loop3"). The partitions of a table already in
// the file are made to appear.
func Attach(ctx context.Context, file string) (string, error) {
	out, err := run(ctx, "losetup", "--find", "--show", "--partscan", file)
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", file, err)
	}
	dev := strings.TrimSpace(out)
	if !strings.HasPrefix(dev, "/dev/loop") {
		return "", fmt.Errorf("attach %s: losetup printed %q, not a loop device", file, out)
	}
	if err := Rescan(ctx, dev); err != nil {
		_ = Detach(context.WithoutCancel(ctx), dev)
		return "", err
	}
	return dev, nil
}

// Rescan tells the kernel about the partition table now on dev: partx -a
// adds the partitions it does not know yet, partx -u updates the sizes of
// those it knows and removes those that are gone. A disk without a table
// is not an error. The partition nodes are waited for.
func Rescan(ctx context.Context, dev string) error {
	if _, err := run(ctx, "partx", "-u", dev); err != nil && !noTable(err) {
		return fmt.Errorf("rescan %s: %w", dev, err)
	}
	// Some partx versions leave partitions that are new to -a, which
	// fails ("error adding partitions") for those -u added already.
	if _, err := run(ctx, "partx", "-a", dev); err != nil && !noTable(err) && !strings.Contains(err.Error(), "error adding partition") {
		return fmt.Errorf("rescan %s: %w", dev, err)
	}
	settle(ctx)
	return waitNodes(ctx, dev)
}

// noTable: partx found no partition table (a blank disk).
func noTable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "failed to read partition table") || strings.Contains(s, "does not contain a recognized partition table")
}

// settle waits for udev to finish with the new devices when udevadm is
// installed (a rescue system may have no udev at all; devtmpfs alone
// makes the nodes then).
func settle(ctx context.Context) {
	if _, err := LookPath("udevadm"); err == nil {
		_, _ = run(ctx, "udevadm", "settle", "--timeout=10")
	}
}

// waitNodes waits until each partition the kernel lists for dev in sysfs
// has its node in /dev.
func waitNodes(ctx context.Context, dev string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		missing := ""
		for _, n := range Partitions(dev) {
			if _, err := os.Stat(PartitionPath(dev, n)); err != nil {
				missing = PartitionPath(dev, n)
				break
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("partition %s: no device node after 5s", missing)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Partitions lists the partition numbers the kernel knows on disk, from
// /sys/class/block.
func Partitions(disk string) []int {
	name := filepath.Base(disk)
	ents, _ := os.ReadDir("/sys/class/block/" + name)
	var out []int
	for _, e := range ents {
		b, err := os.ReadFile("/sys/class/block/" + name + "/" + e.Name() + "/partition")
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// Detach detaches the loop device dev. Its partitions go with it.
func Detach(ctx context.Context, dev string) error {
	if _, err := run(ctx, "losetup", "-d", dev); err != nil {
		return fmt.Errorf("detach %s: %w", dev, err)
	}
	return nil
}

// PartitionPath is the device of partition n of disk: a "p" goes between
// when the disk's name ends in a digit ("/dev/nvme0n1p1", "/dev/loop3p1",
// "/dev/mmcblk0p2"), else the number follows ("/dev/sda1", "/dev/vdb2").
func PartitionPath(disk string, n int) string {
	if disk != "" && disk[len(disk)-1] >= '0' && disk[len(disk)-1] <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}
