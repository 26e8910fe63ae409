package inventory

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func (c *collector) filesystems(ctx context.Context) {
	mounts, types := c.mountinfo()
	for _, dev := range c.devices() {
		name := filepath.Base(dev)
		majmin := sysString(c.src.sys("class/block/" + name + "/dev"))
		out, err := blkidProbe(ctx, c.run, dev)
		var ee *ExitError
		if errors.As(err, &ee) && ee.Code == 2 && strings.TrimSpace(ee.Stderr) == "" {
			continue // nothing on it that blkid knows
		}
		kv := parseExport(string(out))
		if err != nil {
			c.toolFailed("filesystem on "+dev, err)
			t := firstOf(types[majmin], types[dev])
			if t == "" {
				continue
			}
			// Mounted: its type at least is known.
			kv = map[string]string{"TYPE": t}
		}
		if kv["TYPE"] == "" {
			continue
		}
		sectors, _ := strconv.ParseInt(sysString(c.src.sys("class/block/"+name+"/size")), 10, 64)
		hostMounts := append(slices.Clone(mounts[majmin]), mounts[dev]...)
		f := Filesystem{
			Device: dev, Type: kv["TYPE"], UUID: kv["UUID"], UUIDSub: kv["UUID_SUB"],
			Label: kv["LABEL"], Version: kv["VERSION"], BlockSize: atoi(kv["BLOCK_SIZE"]),
			SizeBytes: sectors * 512,
			Mounts:    systemMounts(c.root, hostMounts),
		}
		for _, m := range hostMounts {
			c.hostMounts[dev] = append(c.hostMounts[dev], m.Target)
		}
		if len(hostMounts) > 0 {
			f.UsedBytes = usedBytes(hostMounts[0].Target)
		}
		if err != nil {
			c.doc.Filesystems = append(c.doc.Filesystems, f)
			continue
		}
		switch f.Type {
		case "ext2", "ext3", "ext4":
			c.ext4Features(ctx, &f)
		case "xfs":
			c.xfsFeatures(ctx, &f)
		case "btrfs":
			c.btrfsFeatures(ctx, &f)
		}
		c.doc.Filesystems = append(c.doc.Filesystems, f)
	}
}

// blkidProbe reads the signatures on dev straight from the device
// (`blkid -p`, not blkid's cache) as KEY=VALUE lines.
func blkidProbe(ctx context.Context, run Runner, dev string) ([]byte, error) {
	return run.Run(ctx, "blkid", "-p", "-o", "export", dev)
}

// mountinfo maps "major:minor" (or, for btrfs, the source device path)
// to the mounts of that device, and to the filesystem type mounted from
// it, read from Proc/self/mountinfo.
func (c *collector) mountinfo() (map[string][]Mount, map[string]string) {
	out := map[string][]Mount{}
	types := map[string]string{}
	data, missing := c.readFile(c.src.proc("self/mountinfo"))
	if missing {
		return out, types
	}
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 6 || sep < 6 || len(f) < sep+4 {
			continue
		}
		m := Mount{Target: unescapeMount(f[4]), Root: unescapeMount(f[3]), Options: f[5], Super: f[sep+3]}
		// btrfs mounts carry an anonymous device number: they are found
		// by their source device instead.
		key := f[2]
		if src := unescapeMount(f[sep+2]); strings.HasPrefix(src, "/dev/") && f[sep+1] == "btrfs" {
			key = src
		}
		out[key] = append(out[key], m)
		types[key] = f[sep+1]
	}
	for k := range out {
		slices.SortFunc(out[k], func(a, b Mount) int { return strings.Compare(a.Target+"\x00"+a.Root, b.Target+"\x00"+b.Root) })
	}
	return out, types
}

// unescapeMount undoes the octal escapes (\040 for a space) of
// mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ext4Params are the dumpe2fs header lines kept: what mkfs needs to make
// the same filesystem, none of what changes in use.
var ext4Params = []string{"Block count", "Block size", "Inode count", "Inode size", "Reserved block count", "Filesystem revision #", "Default mount options", "Journal size"}

func (c *collector) ext4Features(ctx context.Context, f *Filesystem) {
	out, err := c.run.Run(ctx, "dumpe2fs", "-h", f.Device)
	if err != nil {
		c.toolFailed("ext4 features of "+f.Device, err)
		return
	}
	f.Params = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "Filesystem features":
			f.Features = strings.Fields(v)
		case slices.Contains(ext4Params, k):
			f.Params[k] = v
		}
	}
}

func (c *collector) xfsFeatures(ctx context.Context, f *Filesystem) {
	target := f.Device
	if m := c.hostMounts[f.Device]; len(m) > 0 {
		target = m[0]
	}
	out, err := c.run.Run(ctx, "xfs_info", target)
	if err != nil {
		c.toolFailed("xfs geometry of "+f.Device, err)
		return
	}
	f.Params = map[string]string{}
	section := ""
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			section, _, _ = strings.Cut(strings.Fields(line)[0], "=")
		}
		for _, tok := range strings.Fields(line) {
			k, v, ok := strings.Cut(tok, "=")
			if !ok || k == section || k == "" || v == "" {
				continue
			}
			f.Params[section+"."+k] = v
			if v == "0" || v == "1" {
				f.Features = append(f.Features, k+"="+v)
			}
		}
	}
	slices.Sort(f.Features)
	f.Features = slices.Compact(f.Features)
}

func (c *collector) btrfsFeatures(ctx context.Context, f *Filesystem) {
	out, err := c.run.Run(ctx, "btrfs", "inspect-internal", "dump-super", f.Device)
	if err != nil {
		c.toolFailed("btrfs features of "+f.Device, err)
		return
	}
	f.Params = map[string]string{}
	f.Features = btrfsFlags(string(out))
	for _, line := range strings.Split(string(out), "\n") {
		fs := strings.Fields(line)
		if len(fs) == 2 && (fs[0] == "nodesize" || fs[0] == "sectorsize" || fs[0] == "num_devices" || fs[0] == "csum_type") {
			f.Params[fs[0]] = fs[1]
		}
	}
	if len(c.hostMounts[f.Device]) == 0 {
		c.warnf("btrfs %s: not mounted, so its subvolumes and profiles are not recorded", f.Device)
		return
	}
	mnt := c.hostMounts[f.Device][0]
	if out, err := c.run.Run(ctx, "btrfs", "filesystem", "df", mnt); err != nil {
		c.toolFailed("btrfs profiles of "+f.Device, err)
	} else {
		for _, line := range strings.Split(string(out), "\n") {
			kind, rest, ok := strings.Cut(line, ",")
			prof, _, ok2 := strings.Cut(rest, ":")
			if ok && ok2 {
				f.Params[strings.ToLower(strings.TrimSpace(kind))+"_profile"] = strings.TrimSpace(prof)
			}
		}
	}
	out, err = c.run.Run(ctx, "btrfs", "subvolume", "list", "-a", mnt)
	if err != nil {
		c.toolFailed("btrfs subvolumes of "+f.Device, err)
		return
	}
	f.Subvolumes = parseSubvolumes(string(out))
}

// btrfsFlags lists the names of the incompat and compat_ro flags of a
// `btrfs inspect-internal dump-super` output.
func btrfsFlags(dump string) []string {
	var flags []string
	in := false
	for _, line := range strings.Split(dump, "\n") {
		fs := strings.Fields(line)
		if len(fs) > 0 && (fs[0] == "incompat_flags" || fs[0] == "compat_ro_flags" || fs[0] == "compat_flags") {
			in = true
			fs = fs[2:]
		} else if len(line) > 0 && line[0] != ' ' && line[0] != '\t' {
			in = false
		}
		if !in {
			continue
		}
		for _, tok := range fs {
			tok = strings.Trim(tok, "()|")
			if tok != "" && !strings.HasPrefix(tok, "0x") {
				flags = append(flags, strings.ToLower(tok))
			}
		}
		if strings.Contains(line, ")") {
			in = false
		}
	}
	slices.Sort(flags)
	return slices.Compact(flags)
}

// parseSubvolumes reads `btrfs subvolume list -a` lines:
// "ID 256 gen 9 top level 5 path <FS_TREE>/home". The generation changes
// with every write and is left out.
func parseSubvolumes(out string) []Subvolume {
	subs := []Subvolume{}
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		if len(fs) < 9 || fs[0] != "ID" || fs[2] != "gen" || fs[4] != "top" || fs[7] != "path" {
			continue
		}
		idn, err1 := strconv.ParseInt(fs[1], 10, 64)
		top, err2 := strconv.ParseInt(fs[6], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		_, p, _ := strings.Cut(line, " path ")
		p = strings.TrimPrefix(p, "<FS_TREE>/")
		subs = append(subs, Subvolume{ID: idn, TopLevel: top, Path: p})
	}
	return subs
}

// fstab records /etc/fstab and /etc/crypttab as they are.
func (c *collector) fstab(context.Context) {
	for _, t := range []struct {
		path string
		dst  **TextFile
	}{{"/etc/fstab", &c.doc.Fstab}, {"/etc/crypttab", &c.doc.Crypttab}} {
		data, missing := c.readFile(c.src.root(t.path))
		if !missing {
			*t.dst = &TextFile{Path: t.path, Content: data}
		} else if t.path == "/etc/fstab" {
			c.warnf("%s: not found", t.path)
		}
	}
}

// statOK reports whether path exists.
func statOK(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
