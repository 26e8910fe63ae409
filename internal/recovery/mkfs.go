package recovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/inventory"
	"golang.org/x/sys/unix"
)

// mkfsTool is the program that makes a filesystem type.
func mkfsTool(typ string) string {
	if typ == "swap" {
		return "mkswap"
	}
	return "mkfs." + typ
}

// ext4Volatile are ext4 feature flags that describe a state, not a
// choice: mke2fs refuses them.
var ext4Volatile = map[string]bool{"needs_recovery": true, "orphan_present": true, "mmp": true, "snapshot_bitmap": true}

// makeFS makes f on its device. The recorded features are asked for;
// when this machine's mkfs does not know one of them, the filesystem is
// made with its defaults instead and the returned warning says so.
//
// A btrfs whose UUID another device of this machine holds (the source
// disk still attached, a drill on the machine itself) cannot be made
// with it: mkfs.btrfs and btrfstune refuse, and the kernel could not
// tell the two apart. It is made with a new UUID, returned in newUUID,
// and the bootloader phase rewrites the configuration that names the
// old one.
func makeFS(ctx context.Context, f FilesystemPlan, tmp string) (newUUID, warning string, err error) {
	full, plain := mkfsArgs(f)
	c := cmd{name: mkfsTool(f.Type), args: full}
	_, err = c.run(ctx)
	if err != nil && f.Type == "btrfs" && strings.Contains(err.Error(), "non-unique UUID") {
		f.UUID = ""
		full, plain = mkfsArgs(f)
		c.args = full
		if _, err = c.run(ctx); err == nil {
			out, berr := (cmd{name: "blkid", args: []string{"-p", "-o", "value", "-s", "UUID", f.Device}}).run(ctx)
			if berr != nil {
				return "", "", fmt.Errorf("mkfs %s on %s: the new UUID: %w", f.Type, f.Device, berr)
			}
			newUUID = strings.TrimSpace(out)
			warning = fmt.Sprintf("%s: another device of this machine holds the btrfs UUID recorded for it: made with the new UUID %s (configuration naming the old one is rewritten)", f.Device, newUUID)
			f.UUID = newUUID
		}
	}
	if err != nil && !slices.Equal(full, plain) {
		ferr := err
		c.args = plain
		if _, err = c.run(ctx); err == nil {
			warning = strings.TrimPrefix(warning+"; ", "; ") + fmt.Sprintf("%s: made without the recorded features (%v)", f.Device, ferr)
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("mkfs %s on %s: %w", f.Type, f.Device, err)
	}
	if f.Type == "btrfs" && len(f.Subvolumes) > 0 {
		if err := makeSubvolumes(ctx, f, tmp); err != nil {
			return newUUID, warning, err
		}
	}
	return newUUID, warning, nil
}

// mkfsArgs are the arguments that make f with its UUID, label and
// recorded features (full), and without the features (plain).
func mkfsArgs(f FilesystemPlan) (full, plain []string) {
	var base, extra []string
	switch f.Type {
	case "ext2", "ext3", "ext4":
		base = []string{"-F", "-q"}
		if f.UUID != "" {
			base = append(base, "-U", f.UUID)
		}
		if f.Label != "" {
			base = append(base, "-L", f.Label)
		}
		bs, _ := strconv.ParseInt(f.Params["Block size"], 10, 64)
		if bs > 0 {
			base = append(base, "-b", strconv.FormatInt(bs, 10))
		}
		if is := f.Params["Inode size"]; is != "" {
			base = append(base, "-I", is)
		}
		// The recorded ratio of bytes to inodes, so that a larger disk
		// gets more inodes and a smaller one fewer.
		blocks, _ := strconv.ParseInt(f.Params["Block count"], 10, 64)
		inodes, _ := strconv.ParseInt(f.Params["Inode count"], 10, 64)
		if bs > 0 && blocks > 0 && inodes > 0 {
			ratio := blocks * bs / inodes
			ratio = max(1024, min(ratio, 64<<20))
			base = append(base, "-i", strconv.FormatInt(ratio, 10))
		}
		var feats []string
		for _, ft := range f.Features {
			if !ext4Volatile[ft] {
				feats = append(feats, ft)
			}
		}
		if len(feats) > 0 {
			extra = []string{"-O", "none," + strings.Join(feats, ",")}
		}
	case "xfs":
		base = []string{"-f", "-q"}
		if f.Label != "" {
			base = append(base, "-L", f.Label)
		}
		meta := []string{}
		if f.UUID != "" {
			meta = append(meta, "uuid="+f.UUID)
		}
		var feats []string
		for _, k := range []string{"crc", "finobt", "reflink", "rmapbt", "bigtime", "inobtcount"} {
			for pk, v := range f.Params {
				if strings.HasSuffix(pk, "."+k) && (v == "0" || v == "1") {
					feats = append(feats, k+"="+v)
					break
				}
			}
		}
		base = append(base, "-m", strings.Join(meta, ","))
		if len(feats) > 0 {
			extra = []string{"-m", strings.Join(feats, ",")}
		}
		if len(meta) == 0 {
			base = base[:len(base)-2]
		}
	case "btrfs":
		base = []string{"-f", "-q"}
		if f.UUID != "" {
			base = append(base, "-U", f.UUID)
		}
		if f.Label != "" {
			base = append(base, "-L", f.Label)
		}
		if ns := f.Params["nodesize"]; ns != "" {
			extra = append(extra, "-n", ns)
		}
		if cs := f.Params["csum_type"]; cs != "" {
			// dump-super says "0 (crc32c)".
			if _, name, ok := strings.Cut(cs, "("); ok {
				cs = strings.TrimSuffix(name, ")")
			}
			extra = append(extra, "--csum", cs)
		}
	case "vfat":
		if f.UUID != "" {
			base = append(base, "-i", strings.ReplaceAll(f.UUID, "-", ""))
		}
		if f.Label != "" {
			base = append(base, "-n", f.Label)
		}
		if fat := f.Params["fat"]; fat != "" {
			extra = append(extra, "-F", fat)
		}
	case "swap":
		if f.UUID != "" {
			base = append(base, "-U", f.UUID)
		}
		if f.Label != "" {
			base = append(base, "-L", f.Label)
		}
	}
	plain = append(slices.Clone(base), f.Device)
	full = append(append(slices.Clone(base), extra...), f.Device)
	return full, plain
}

// makeSubvolumes mounts the new btrfs at its top level and creates each
// recorded subvolume at its path, parents first.
func makeSubvolumes(ctx context.Context, f FilesystemPlan, tmp string) error {
	dir, err := os.MkdirTemp(tmp, "btrfs-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount(f.Device, dir, "btrfs", 0, "subvolid=5"); err != nil {
		return fmt.Errorf("mount the new btrfs %s: %w", f.Device, err)
	}
	defer unix.Unmount(dir, 0)
	subs := slices.Clone(f.Subvolumes)
	slices.SortFunc(subs, func(a, b inventory.Subvolume) int { return strings.Count(a.Path, "/") - strings.Count(b.Path, "/") })
	for _, s := range subs {
		p := filepath.Join(dir, filepath.Clean("/"+s.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if _, err := (cmd{name: "btrfs", args: []string{"-q", "subvolume", "create", p}}).run(ctx); err != nil {
			return fmt.Errorf("btrfs subvolume %s on %s: %w", s.Path, f.Device, err)
		}
	}
	return nil
}
