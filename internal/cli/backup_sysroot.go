package cli

// backup --system-root DIR and --disks: back up a system that is not
// running (another machine's disk attached here, a server's root mounted
// from a rescue system) as that system, with the inventory of its disks.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/inventory"
)

// sysrootOpts are backup's --system-root and --disks flags.
type sysrootOpts struct {
	root  string
	disks []string
}

func (o *sysrootOpts) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.root, "system-root", "", "back up the system whose root filesystem is mounted at `DIR` (not running): PATHs (default /) are that system's, read below DIR and stored as the system's own; its hostname comes from DIR/etc/hostname")
	f.StringSliceVar(&o.disks, "disks", nil, "record the inventory of these `disks` (/dev/sdb,/dev/sdc) instead of every disk of this machine; with --system-root, the disks of that system")
}

func (o *sysrootOpts) on() bool { return o.root != "" || len(o.disks) > 0 }

// check validates the flags before anything is opened: DIR must look
// like a system's root (an etc folder), and each disk must be a block
// device. It makes root absolute.
func (o *sysrootOpts) check() error {
	for i, d := range o.disks {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("--disks %s: %w; give whole disks such as /dev/sdb", d, err)
		}
		if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("--disks %s: not a block device; give whole disks such as /dev/sdb", d)
		}
		// /dev/disk/by-id/... names are links: the inventory records the
		// kernel's name.
		dev, err := filepath.EvalSymlinks(d)
		if err != nil {
			return fmt.Errorf("--disks %s: %w", d, err)
		}
		if _, err := os.Stat(filepath.Join("/sys/class/block", filepath.Base(dev), "partition")); err == nil {
			return fmt.Errorf("--disks %s: a partition, not a whole disk; give the disk that holds it", d)
		}
		o.disks[i] = dev
	}
	if o.root == "" {
		return nil
	}
	abs, err := filepath.Abs(o.root)
	if err != nil {
		return fmt.Errorf("--system-root %s: %w", o.root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("--system-root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--system-root %s: not a folder; give the folder where the system's root filesystem is mounted", abs)
	}
	if fi, err := os.Stat(filepath.Join(abs, "etc")); err != nil || !fi.IsDir() {
		return fmt.Errorf("--system-root %s does not look like a system's root (no etc folder in it); give the folder where its root filesystem is mounted", abs)
	}
	o.root = abs
	return nil
}

// sources says what the inventory records.
func (o *sysrootOpts) sources() inventory.Sources {
	return inventory.Sources{Root: o.root, Disks: o.disks}
}

// hostname is the system's name in DIR/etc/hostname.
func (o *sysrootOpts) hostname() (string, error) {
	p := filepath.Join(o.root, "etc", "hostname")
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("the system's hostname: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if i := strings.IndexAny(name, " \t\n"); i >= 0 {
		name = name[:i]
	}
	if name == "" {
		return "", fmt.Errorf("no hostname in %s: give the system's name with --host", p)
	}
	return name, nil
}

// crossDevices are the system's filesystems the backup goes into: those
// of its disks mounted under DIR.
func (o *sysrootOpts) crossDevices() ([]uint64, error) {
	if o.root == "" {
		return nil, nil
	}
	devs, err := inventory.SystemDevices(o.sources())
	if err != nil {
		return nil, fmt.Errorf("--system-root: the system's filesystems: %w", err)
	}
	return devs, nil
}
