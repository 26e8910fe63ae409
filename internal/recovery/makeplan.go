package recovery

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/loopdev"
)

// MiB is the alignment of the partitions recover moves or resizes.
const MiB = 1 << 20

// ErrTooSmall: a target disk cannot hold what the plan puts on it.
var ErrTooSmall = errors.New("target disk too small")

// ErrPlan: the inventory and the targets cannot make a plan (a disk
// without a target, a mapping naming a disk that was not recorded).
var ErrPlan = errors.New("cannot plan the recovery")

// gptTail is the room a GPT needs at the end of a disk for its backup
// entries (16 KiB) and header, in bytes, for a sector size.
func gptTail(sector int64) int64 { return 16384 + 2*sector }

// Filesystem types recover makes.
var makeable = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "vfat": true, "swap": true}

// layers are signatures of layers this build does not rebuild, with why.
var layers = map[string]string{
	"crypto_LUKS":       "LUKS volumes are not rebuilt (opening one needs device-mapper, which recover does not drive yet); its files are restored only if their filesystem is on a plain partition",
	"LVM2_member":       "LVM physical volumes are not rebuilt (LVM needs device-mapper, which recover does not drive yet)",
	"linux_raid_member": "MD RAID members are not rebuilt (recover does not assemble arrays yet)",
}

// MakePlan maps the recorded disks of doc (those with a partition table)
// onto targets: in order, or as m says. Each partition keeps its start,
// size, type, UUID, name and attributes, and the table its disk GUID or
// identifier; the last partition of each disk grows to fill the target or
// shrinks to fit it (m may size any partition). Sizes are converted to
// the target's sector size. A partition that does not fit, or a
// filesystem shrunk below what it holds, is an error wrapping ErrTooSmall
// that says how many bytes are missing. MakePlan touches nothing.
func MakePlan(doc *inventory.Document, targets []Target, m *Mapping) (*Plan, error) {
	if doc == nil {
		return nil, fmt.Errorf("%w: no inventory", ErrPlan)
	}
	p := &Plan{Host: doc.Host, BootMode: doc.Boot.Mode, Disks: []DiskPlan{}, Filesystems: []FilesystemPlan{}, Mounts: []MountPlan{}, Warnings: []string{}}
	if p.BootMode == "" {
		p.BootMode = "bios"
	}
	pairs, err := pairDisks(doc, targets, m, p)
	if err != nil {
		return nil, err
	}
	newDev := map[string]string{} // recorded partition -> new device
	newLen := map[string]int64{}
	used := roomNeededBy(doc)
	var sizes map[string]int64
	if m != nil {
		sizes = m.Sizes
	}
	for _, pr := range pairs {
		dp, err := planDisk(pr.disk, pr.target, sizes, used)
		if err != nil {
			return nil, err
		}
		for _, np := range dp.parts {
			newLen[np.source] = np.Size * int64(dp.Table.SectorSize)
			newDev[np.source] = np.Path
		}
		p.Disks = append(p.Disks, dp.DiskPlan)
	}
	if m != nil {
		for part := range m.Sizes {
			if _, ok := newDev["/dev/"+part]; !ok {
				return nil, fmt.Errorf("%w: the map sizes partition %s, which is not on a recorded disk being recovered", ErrPlan, part)
			}
		}
	}
	planFilesystems(doc, p, newDev, newLen)
	planMounts(doc, p)
	return p, nil
}

type diskPair struct {
	disk   inventory.Disk
	target Target
}

// pairDisks decides which target each recorded disk goes to.
func pairDisks(doc *inventory.Document, targets []Target, m *Mapping, p *Plan) ([]diskPair, error) {
	var recorded []inventory.Disk
	for _, d := range doc.Disks {
		if d.Table == nil {
			p.Warnings = append(p.Warnings, fmt.Sprintf("disk %s has no partition table: not recovered (a filesystem or layer on a whole disk is not rebuilt)", d.Path))
			continue
		}
		recorded = append(recorded, d)
	}
	if len(recorded) == 0 {
		return nil, fmt.Errorf("%w: the inventory records no disk with a partition table", ErrPlan)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no target disk given (--disk)", ErrPlan)
	}
	byPath := map[string]Target{}
	for _, t := range targets {
		if _, dup := byPath[t.Path]; dup {
			return nil, fmt.Errorf("%w: target %s given twice", ErrPlan, t.Path)
		}
		byPath[t.Path] = t
	}
	var pairs []diskPair
	usedT := map[string]bool{}
	if m != nil && len(m.Disks) > 0 {
		for src, dst := range m.Disks {
			if !slices.ContainsFunc(recorded, func(d inventory.Disk) bool { return d.Name == src }) {
				return nil, fmt.Errorf("%w: the map names disk %s, which the inventory does not record with a partition table (recorded: %s)", ErrPlan, src, diskNames(recorded))
			}
			if _, ok := byPath[dst]; !ok {
				return nil, fmt.Errorf("%w: the map sends %s to %s, which is not a target disk (give it with --disk)", ErrPlan, src, dst)
			}
		}
		for _, d := range recorded {
			dst, ok := m.Disks[d.Name]
			if !ok {
				p.Warnings = append(p.Warnings, fmt.Sprintf("disk %s is not in the map: not recovered", d.Path))
				continue
			}
			pairs = append(pairs, diskPair{d, byPath[dst]})
			usedT[dst] = true
		}
	} else {
		if len(targets) < len(recorded) {
			return nil, fmt.Errorf("%w: %d recorded disks (%s) and %d target disks: give one --disk for each, or a --map", ErrPlan, len(recorded), diskNames(recorded), len(targets))
		}
		for i, d := range recorded {
			pairs = append(pairs, diskPair{d, targets[i]})
			usedT[targets[i].Path] = true
		}
	}
	for _, t := range targets {
		if !usedT[t.Path] {
			p.Warnings = append(p.Warnings, fmt.Sprintf("target %s is not used", t.Path))
		}
	}
	return pairs, nil
}

func diskNames(ds []inventory.Disk) string {
	var n []string
	for _, d := range ds {
		n = append(n, d.Name)
	}
	return strings.Join(n, ", ")
}

// roomNeededBy maps each recorded device to the smallest partition its
// filesystem fits once made anew (roomNeeded).
func roomNeededBy(doc *inventory.Document) map[string]int64 {
	u := map[string]int64{}
	for _, f := range doc.Filesystems {
		u[f.Device] = roomNeeded(f)
	}
	return u
}

// newPart is a partition of the new table, remembering its source.
type newPart struct {
	inventory.Partition
	source string
}

type diskPlan struct {
	DiskPlan
	parts []newPart // the new table's partitions with their sources
}

// extended reports whether a dos partition type is an extended one.
func extended(tableType, typ string) bool {
	if tableType != "dos" {
		return false
	}
	switch strings.ToLower(strings.TrimPrefix(typ, "0x")) {
	case "5", "f", "85":
		return true
	}
	return false
}

func alignUp(n, a int64) int64   { return (n + a - 1) / a * a }
func alignDown(n, a int64) int64 { return n / a * a }

// planDisk lays out the table of d on t.
func planDisk(d inventory.Disk, t Target, sizes map[string]int64, used map[string]int64) (*diskPlan, error) {
	src := d.Table
	ss := int64(src.SectorSize)
	if ss == 0 {
		ss = 512
	}
	ts := int64(t.SectorSize)
	if ts == 0 {
		ts = 512
	}
	if t.SizeBytes <= 0 {
		return nil, fmt.Errorf("%w: target %s has no size", ErrTooSmall, t.Path)
	}
	end := alignDown(t.SizeBytes, ts) // first byte past the usable area
	if src.Type == "gpt" {
		end -= gptTail(ts)
	}
	parts := slices.Clone(src.Partitions)
	slices.SortFunc(parts, func(a, b inventory.Partition) int { return int(a.Start - b.Start) })
	// The partition that takes the rest of the disk: the last one that
	// is not an extended container.
	last := -1
	for i, pt := range parts {
		if !extended(src.Type, pt.Type) {
			last = i
		}
	}
	dp := &diskPlan{DiskPlan: DiskPlan{Source: d.Path, Target: t.Path, SourceSize: d.SizeBytes, TargetSize: t.SizeBytes}}
	table := &inventory.PartitionTable{Type: src.Type, ID: src.ID, SectorSize: int(ts), Partitions: []inventory.Partition{}}
	if ss == ts {
		table.FirstLBA = src.FirstLBA
	}
	var prevEnd int64
	moved := false
	var extIdx = -1
	for i, pt := range parts {
		start := pt.Start * ss
		size := pt.Size * ss
		if extended(src.Type, pt.Type) {
			extIdx = len(table.Partitions)
		} else if prevEnd > start || (moved && !logical(src.Type, pt)) {
			// An earlier partition was given another size (--map): the
			// ones after it follow it.
			start = alignUp(prevEnd, MiB)
		}
		name := path.Base(pt.Path)
		override, sized := sizes[name]
		switch {
		case sized:
			size = alignUp(override, MiB)
			moved = true
		case i == last:
			size = alignDown(end-start, MiB)
		}
		if i == last || sized {
			if size != pt.Size*ss {
				dp.Resized, dp.OldPartLen, dp.NewPartLen = pt.Path, pt.Size*ss, size
			}
		}
		if need := used[pt.Path]; need > 0 && size < need {
			return nil, fmt.Errorf("%w: %s would shrink to %d bytes on %s, but its filesystem needs %d bytes (its data and the new filesystem's own structures): %d bytes missing (use a larger disk, or give another partition less room with --map)",
				ErrTooSmall, pt.Path, max(size, 0), t.Path, need, need-max(size, 0))
		}
		if size < MiB && (i == last || sized) {
			need := max(used[pt.Path], MiB)
			return nil, fmt.Errorf("%w: %s (%d bytes recorded) does not fit on %s (%d bytes): %d bytes missing",
				ErrTooSmall, pt.Path, pt.Size*ss, t.Path, t.SizeBytes, start+need-end)
		}
		if start+size > end && !extended(src.Type, pt.Type) {
			return nil, fmt.Errorf("%w: %s (%d bytes at %d) does not fit on %s (%d bytes usable): %d bytes missing",
				ErrTooSmall, pt.Path, size, start, t.Path, end, start+size-end)
		}
		np := pt
		np.Number = partNumber(pt)
		np.Path = loopdev.PartitionPath(t.Path, np.Number)
		np.Start = (start + ts - 1) / ts
		np.Size = size / ts
		table.Partitions = append(table.Partitions, np)
		dp.parts = append(dp.parts, newPart{np, pt.Path})
		if !extended(src.Type, pt.Type) {
			prevEnd = start + size
		}
	}
	if extIdx >= 0 {
		// The extended container ends where its last logical partition
		// does.
		e := &table.Partitions[extIdx]
		e.Size = prevEnd/ts - e.Start
		dp.parts[extIdx].Partition = *e
	}
	slices.SortFunc(table.Partitions, func(a, b inventory.Partition) int { return a.Number - b.Number })
	dp.Table = table
	return dp, nil
}

// logical reports whether p is a logical partition of a dos table.
func logical(tableType string, p inventory.Partition) bool {
	return tableType == "dos" && partNumber(p) > 4
}

// partNumber is a partition's number, from its record or its path.
func partNumber(p inventory.Partition) int {
	if p.Number > 0 {
		return p.Number
	}
	i := len(p.Path)
	for i > 0 && p.Path[i-1] >= '0' && p.Path[i-1] <= '9' {
		i--
	}
	n := 0
	for _, c := range p.Path[i:] {
		n = n*10 + int(c-'0')
	}
	return n
}

// planFilesystems lists the filesystems to make on the new partitions.
func planFilesystems(doc *inventory.Document, p *Plan, newDev map[string]string, newLen map[string]int64) {
	for _, f := range doc.Filesystems {
		dev, ok := newDev[f.Device]
		if !ok {
			continue
		}
		if why, layer := layers[f.Type]; layer {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %s", f.Device, why))
			continue
		}
		if !makeable[f.Type] {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s: filesystem type %q is not made by recover; the partition is left empty", f.Device, f.Type))
			continue
		}
		params := f.Params
		if v, ok := strings.CutPrefix(f.Version, "FAT"); ok && f.Type == "vfat" {
			params = maps.Clone(params)
			if params == nil {
				params = map[string]string{}
			}
			params["fat"] = v
		}
		p.Filesystems = append(p.Filesystems, FilesystemPlan{
			Source: f.Device, Device: dev, Type: f.Type, UUID: f.UUID, Label: f.Label,
			SizeBytes: newLen[f.Device], UsedBytes: f.UsedBytes,
			Features: f.Features, Params: params, Subvolumes: f.Subvolumes,
		})
	}
	for _, ds := range doc.Disks {
		if ds.Table == nil {
			continue
		}
		for _, pt := range ds.Table.Partitions {
			if _, ok := newDev[pt.Path]; ok && !slices.ContainsFunc(doc.Filesystems, func(f inventory.Filesystem) bool { return f.Device == pt.Path }) &&
				!extended(ds.Table.Type, pt.Type) && !strings.EqualFold(pt.Type, biosBootGUID) {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s: no filesystem recorded on it; the partition is made empty", pt.Path))
			}
		}
	}
}

// biosBootGUID is the type of the GPT partition GRUB embeds itself in.
const biosBootGUID = "21686148-6449-6E6F-744E-656564454649"

// planMounts finds where each new filesystem mounts: from the recorded
// fstab first, then from the Mount records of the inventory. Parents come
// first.
func planMounts(doc *inventory.Document, p *Plan) {
	byDev := map[string]*FilesystemPlan{}
	for i := range p.Filesystems {
		byDev[p.Filesystems[i].Source] = &p.Filesystems[i]
	}
	seen := map[string]bool{}
	add := func(target, srcDev, opts string) {
		f := byDev[srcDev]
		if f == nil || f.Type == "swap" || seen[target] {
			return
		}
		target = path.Clean(target)
		seen[target] = true
		p.Mounts = append(p.Mounts, MountPlan{Target: target, Device: f.Device, Type: f.Type, Options: opts})
	}
	res := newResolver(doc)
	if doc.Fstab != nil {
		for _, e := range ParseFstab(doc.Fstab.Content) {
			if !strings.HasPrefix(e.File, "/") {
				continue
			}
			dev := res.device(e.Spec)
			if dev == "" {
				continue
			}
			opts := ""
			if sv, ok := optionValue(e.Options, "subvol"); ok {
				opts = "subvol=" + sv
			}
			add(e.File, dev, opts)
		}
	}
	for _, f := range doc.Filesystems {
		for _, mt := range f.Mounts {
			opts := ""
			if f.Type == "btrfs" && mt.Root != "" && mt.Root != "/" {
				opts = "subvol=" + strings.TrimPrefix(mt.Root, "/")
			} else if mt.Root != "" && mt.Root != "/" {
				continue // a bind mount
			}
			add(mt.Target, f.Device, opts)
		}
	}
	slices.SortStableFunc(p.Mounts, func(a, b MountPlan) int { return depth(a.Target) - depth(b.Target) })
	if !slices.ContainsFunc(p.Mounts, func(m MountPlan) bool { return m.Target == "/" }) {
		p.Warnings = append(p.Warnings, "no recovered filesystem is mounted at / in the recorded fstab or mounts: the files cannot be restored")
	}
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}
