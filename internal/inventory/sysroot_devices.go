package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// SystemDevices are the device numbers (st_dev) of the filesystems that
// make up the system rooted at src.Root: those mounted at or below Root
// from src.Disks (a disk or one of its partitions), or, without Disks,
// from any block device. Virtual filesystems mounted there (proc, sysfs,
// tmpfs, a bind of this host's /dev) are not among them. A backup with
// a system root crosses into these and no other mounts.
func SystemDevices(src Sources) ([]uint64, error) {
	root := src.foreignRoot()
	if root == "" {
		root = "/"
	}
	c := &collector{src: src, warn: map[string]bool{}}
	mounts, _ := c.mountinfo()
	if len(c.warn) > 0 {
		return nil, fmt.Errorf("list the mounts: %s", strings.Join(mapKeys(c.warn), "; "))
	}
	var keep func(key string) bool
	if len(src.Disks) == 0 {
		keep = func(key string) bool {
			// A block device's major number is not 0; btrfs mounts are
			// keyed by their source device path.
			return strings.HasPrefix(key, "/dev/") || !strings.HasPrefix(key, "0:")
		}
	} else {
		keys := map[string]bool{}
		for _, d := range src.Disks {
			name := filepath.Base(d)
			keys["/dev/"+name] = true
			keys[sysString(src.sys("block/"+name+"/dev"))] = true
			for _, part := range c.partitionNames(name) {
				keys["/dev/"+part] = true
				keys[sysString(src.sys("class/block/"+part+"/dev"))] = true
			}
		}
		delete(keys, "")
		keep = func(key string) bool { return keys[key] }
	}
	var out []uint64
	for key, ms := range mounts {
		if !keep(key) {
			continue
		}
		for _, m := range ms {
			if _, ok := SystemPath(root, m.Target); !ok {
				continue
			}
			var st unix.Stat_t
			if err := unix.Stat(m.Target, &st); err != nil {
				return nil, fmt.Errorf("mount %s: %w", m.Target, err)
			}
			out = append(out, st.Dev)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// partitionNames lists the partitions of the disk name from sysfs.
func (c *collector) partitionNames(name string) []string {
	var out []string
	ents, _ := os.ReadDir(c.src.sys("block/" + name))
	for _, e := range ents {
		if statOK(c.src.sys("block/" + name + "/" + e.Name() + "/partition")) {
			out = append(out, e.Name())
		}
	}
	return out
}

func mapKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
