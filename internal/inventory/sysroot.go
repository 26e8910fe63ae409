package inventory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// A system root other than "/" is a system that is not running: another
// machine's disk attached here, or a server's root mounted from a rescue
// system. What the running kernel, firmware and network say is then
// about this host, not about that system, so those parts are read from
// the disks and from Root instead (docs/FORMAT.md §15, "A system that is
// not running").

// foreignRoot is the absolute, symlink-free path of Sources.Root when it
// names a system other than the running one, else "".
func (s Sources) foreignRoot() string {
	if s.Root == "" {
		return ""
	}
	r, err := filepath.Abs(s.Root)
	if err != nil {
		return ""
	}
	if e, err := filepath.EvalSymlinks(r); err == nil {
		r = e
	}
	if r == "/" {
		return ""
	}
	return r
}

// SystemPath maps a path of this host into the system rooted at root:
// root itself is "/", root/boot/efi is "/boot/efi". ok is false for a
// path outside root. root "" or "/" leaves paths as they are.
func SystemPath(root, path string) (string, bool) {
	if root == "" || root == "/" {
		return path, true
	}
	root = filepath.Clean(root)
	path = filepath.Clean(path)
	if path == root {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(path, root+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}

// systemMounts keeps the mounts at or below the foreign root, with their
// targets as that system names them; the others are this host's.
func systemMounts(root string, ms []Mount) []Mount {
	if root == "" {
		return ms
	}
	var out []Mount
	for _, m := range ms {
		if t, ok := SystemPath(root, m.Target); ok {
			m.Target = t
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Mount) int { return strings.Compare(a.Target+"\x00"+a.Root, b.Target+"\x00"+b.Root) })
	return out
}

// usedBytes is what the filesystem mounted at dir holds: its blocks
// minus its free blocks, times the block size. 0 when statfs fails.
func usedBytes(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0
	}
	bs := st.Frsize
	if bs <= 0 {
		bs = st.Bsize
	}
	if st.Blocks < st.Bfree {
		return 0
	}
	return int64(st.Blocks-st.Bfree) * bs
}

// espType reports whether a partition type is the EFI system partition:
// its GPT type GUID or the dos type code ef.
func espType(t string) bool {
	return strings.EqualFold(t, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") || strings.EqualFold(t, "ef") || strings.EqualFold(t, "0xef")
}

// diskBootMode is the boot mode of a system that is not running, read
// from its disks: "uefi" when an EFI system partition on them holds an
// EFI loader (EFI/<dir>/<name>.efi), else "bios".
func (c *collector) diskBootMode(ctx context.Context) string {
	for _, d := range c.doc.Disks {
		if d.Table == nil {
			continue
		}
		for _, p := range d.Table.Partitions {
			if !espType(p.Type) {
				continue
			}
			if c.espHasLoader(ctx, p.Path) {
				return "uefi"
			}
		}
	}
	return "bios"
}

// espHasLoader looks for EFI/*/*.efi on the ESP dev: through one of its
// mounts on this host when it is mounted, else read with mtools, which
// needs no mount.
func (c *collector) espHasLoader(ctx context.Context, dev string) bool {
	if dirs := c.hostMounts[dev]; len(dirs) > 0 {
		return efiLoaderIn(dirs[0])
	}
	out, err := c.run.Run(ctx, "mdir", "-i", dev, "-/", "-b", "::/")
	var ee *ExitError
	if errors.As(err, &ee) && ee.Code == 1 && strings.Contains(ee.Stderr, "not found") {
		return false // an empty filesystem: mdir lists nothing and fails
	}
	if err != nil {
		c.toolFailed("EFI loaders on "+dev, err)
		return false
	}
	return efiLoaderListed(string(out))
}

// efiLoaderIn reports whether dir (an ESP's mount) has EFI/*/*.efi, in
// any letter case as FAT does.
func efiLoaderIn(dir string) bool {
	efi := ciEntry(dir, "EFI")
	if efi == "" {
		return false
	}
	subs, _ := os.ReadDir(efi)
	for _, s := range subs {
		if !s.IsDir() {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(efi, s.Name()))
		for _, f := range files {
			if f.Type().IsRegular() && strings.EqualFold(filepath.Ext(f.Name()), ".efi") {
				return true
			}
		}
	}
	return false
}

// ciEntry is the path of the entry of dir named name in any case, or "".
func ciEntry(dir, name string) string {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.EqualFold(e.Name(), name) {
			return filepath.Join(dir, e.Name())
		}
	}
	return ""
}

// efiLoaderListed reads `mdir -/ -b ::/` (one path a line,
// "::/EFI/BOOT/BOOTX64.EFI") for an EFI/<dir>/<name>.efi.
func efiLoaderListed(out string) bool {
	for _, line := range strings.Split(out, "\n") {
		p := strings.TrimPrefix(strings.TrimSpace(line), "::")
		parts := strings.Split(strings.Trim(p, "/"), "/")
		if len(parts) == 3 && strings.EqualFold(parts[0], "EFI") && strings.EqualFold(filepath.Ext(parts[2]), ".efi") {
			return true
		}
	}
	return false
}

// installedKernels are the kernel releases with an image in Root/boot
// (vmlinuz-<release>), sorted.
func (c *collector) installedKernels() []string {
	ents, err := os.ReadDir(c.src.root("/boot"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if rel, ok := strings.CutPrefix(e.Name(), "vmlinuz-"); ok && rel != "" && !e.IsDir() {
			out = append(out, rel)
		}
	}
	slices.SortFunc(out, CompareVersions)
	return out
}

// resolveIn is the path of p (absolute, as the system sees it) inside
// root, following symbolic links as that system would: an absolute
// link target starts again at root, and ".." never leaves it. So
// root/etc/resolv.conf -> /run/... reads root/run/..., not this host's
// file. Components that do not exist are kept as they are.
func resolveIn(root, p string) string {
	parts := strings.Split(strings.Trim(filepath.Clean("/"+p), "/"), "/")
	cur := "/" // the path inside root resolved so far
	links := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil || links >= 40 {
			cur = next
			continue
		}
		links++
		if !filepath.IsAbs(target) {
			target = filepath.Join(cur, target)
		}
		parts = append(strings.Split(strings.Trim(filepath.Clean(target), "/"), "/"), parts...)
		cur = "/"
	}
	return filepath.Join(root, cur)
}
