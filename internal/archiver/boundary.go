package archiver

import (
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// Kinds of Boundary.
const (
	// BoundaryMount: the root of another mount.
	BoundaryMount = "mount-point"
	// BoundarySubvolume: a btrfs subvolume of the filesystem around it,
	// which has a device number of its own but is no mount.
	BoundarySubvolume = "btrfs-subvolume"
	// BoundaryOther: a device change that is neither, or one whose kind
	// the kernel does not tell (before Linux 5.8).
	BoundaryOther = "other"
)

// btrfsSuperMagic is BTRFS_SUPER_MAGIC (linux/magic.h).
const btrfsSuperMagic = 0x9123683e

// Boundary is a directory that Options.OneFileSystem kept without its
// content, because it is on another device than its parent directory.
type Boundary struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
}

// crosses decides whether the walk goes into the directory n at p, whose
// parent directory is on device dev (0: no limit). Without
// OneFileSystem, on the same device, or on one of CrossDevices, it does. Otherwise a btrfs
// subvolume is crossed with CrossSubvolumes, and anything else is a
// boundary: recorded, logged, and not crossed.
func (a *Archiver) crosses(p string, n *tree.Node, dev uint64) bool {
	if dev == 0 || !a.opt.OneFileSystem || n.DeviceID == dev || slices.Contains(a.opt.CrossDevices, n.DeviceID) {
		return true
	}
	kind := boundaryKind(a.src(p))
	if kind == BoundarySubvolume && a.opt.CrossSubvolumes {
		a.log.Debug("crossing into a btrfs subvolume", "path", p)
		return true
	}
	a.errMu.Lock()
	a.boundaries = append(a.boundaries, Boundary{Path: p, Kind: kind})
	a.errMu.Unlock()
	a.log.Info("not crossed: --one-file-system", "path", p, "kind", kind)
	return false
}

// boundaryKind tells a mount point from a btrfs subvolume: a subvolume is
// no mount root, and its filesystem is btrfs.
func boundaryKind(p string) string {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE, &stx)
	if err != nil || stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return BoundaryOther
	}
	if stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return BoundaryMount
	}
	var sfs unix.Statfs_t
	if unix.Statfs(p, &sfs) == nil && sfs.Type == btrfsSuperMagic {
		return BoundarySubvolume
	}
	return BoundaryOther
}

// NotCrossed returns the directories that OneFileSystem kept without
// their content, sorted by path.
func (a *Archiver) NotCrossed() []Boundary {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	out := slices.Clone(a.boundaries)
	slices.SortFunc(out, func(x, y Boundary) int { return strings.Compare(x.Path, y.Path) })
	return out
}
