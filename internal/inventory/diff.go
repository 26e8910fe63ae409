package inventory

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Change is one difference between two inventories. Its JSON form is an
// element of `rewind inventory diff --json` (docs/JSON.md).
type Change struct {
	// Section is the part of the document: "disk", "partition",
	// "filesystem", "fstab", "crypttab", "md", "luks", "lvm", "boot",
	// "kernel", "os", "hostname", "interface", "route", "dns", "package",
	// "unit", "user", "group", "crontab".
	Section string `json:"section"`
	// Item names what changed: a device, a package, a unit, a line.
	Item string `json:"item"`
	// Kind is "added", "removed" or "changed", or a more precise word:
	// "upgraded"/"downgraded" (a package), "grown"/"shrunk" (a disk or
	// partition size), "enabled"/"disabled" (a unit).
	Kind string `json:"change"`
	// Field, Old and New say what changed on an item that is in both:
	// "size" from "20480" to "40960" (sectors), "version", "uuid".
	Field string `json:"field,omitempty"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
}

// Diff lists what changed from a to b, in the order of the document's
// sections.
func Diff(a, b *Document) []Change {
	d := &differ{out: []Change{}}
	d.disks(a.Disks, b.Disks)
	d.filesystems(a.Filesystems, b.Filesystems)
	d.lines("fstab", textOf(a.Fstab), textOf(b.Fstab))
	d.lines("crypttab", textOf(a.Crypttab), textOf(b.Crypttab))
	d.blob("md", "", a.MD, b.MD)
	d.blob("luks", "", a.LUKS, b.LUKS)
	d.blob("lvm", "", a.LVM, b.LVM)
	d.field("boot", "", "mode", a.Boot.Mode, b.Boot.Mode)
	d.field("boot", "", "loaders", strings.Join(a.Boot.Loaders, ","), strings.Join(b.Boot.Loaders, ","))
	d.blob("boot", "efi entries", a.Boot.EFI, b.Boot.EFI)
	d.field("kernel", "", "release", a.Kernel.Release, b.Kernel.Release)
	d.field("kernel", "", "version", a.Kernel.Version, b.Kernel.Version)
	d.field("kernel", "", "cmdline", a.Kernel.Cmdline, b.Kernel.Cmdline)
	d.field("kernel", "", "installed", strings.Join(a.Kernel.Installed, " "), strings.Join(b.Kernel.Installed, " "))
	for _, k := range unionKeys(a.OS, b.OS) {
		d.field("os", k, "value", a.OS[k], b.OS[k])
	}
	d.field("hostname", "", "kernel", a.Hostname.Kernel, b.Hostname.Kernel)
	d.field("hostname", "", "/etc/hostname", a.Hostname.Etc, b.Hostname.Etc)
	d.network(&a.Network, &b.Network)
	d.packages(a.Packages.List, b.Packages.List)
	d.units(a.Units, b.Units)
	d.users(a.Users, b.Users)
	d.groups(a.Groups, b.Groups)
	d.crontabs(a.Crontabs, b.Crontabs)
	return d.out
}

type differ struct{ out []Change }

func (d *differ) add(c Change) { d.out = append(d.out, c) }

// field records a field that differs.
func (d *differ) field(section, item, field, old, new string) {
	if old != new {
		d.add(Change{Section: section, Item: item, Kind: "changed", Field: field, Old: old, New: new})
	}
}

// blob records that two values differ as a whole.
func (d *differ) blob(section, item string, a, b any) {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) == string(jb) {
		return
	}
	kind := "changed"
	if string(ja) == "null" {
		kind = "added"
	} else if string(jb) == "null" {
		kind = "removed"
	}
	d.add(Change{Section: section, Item: item, Kind: kind})
}

func textOf(t *TextFile) string {
	if t == nil {
		return ""
	}
	return t.Content
}

// lines records the lines added to and removed from a text file
// (comments and blank lines are ignored).
func (d *differ) lines(section, a, b string) {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			l = strings.TrimSpace(l)
			if l != "" && !strings.HasPrefix(l, "#") {
				m[l]++
			}
		}
		return m
	}
	ca, cb := count(a), count(b)
	for _, l := range unionKeys(ca, cb) {
		for n := cb[l]; n < ca[l]; n++ {
			d.add(Change{Section: section, Item: l, Kind: "removed"})
		}
		for n := ca[l]; n < cb[l]; n++ {
			d.add(Change{Section: section, Item: l, Kind: "added"})
		}
	}
}

func unionKeys[V any](a, b map[string]V) []string {
	ks := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// keyed indexes a list by a key.
func keyed[T any](xs []T, key func(T) string) map[string]T {
	m := make(map[string]T, len(xs))
	for _, x := range xs {
		m[key(x)] = x
	}
	return m
}

// sizeChange records a size that differs as grown or shrunk.
func (d *differ) sizeChange(section, item, field string, old, new int64) {
	switch {
	case new > old:
		d.add(Change{Section: section, Item: item, Kind: "grown", Field: field, Old: strconv.FormatInt(old, 10), New: strconv.FormatInt(new, 10)})
	case new < old:
		d.add(Change{Section: section, Item: item, Kind: "shrunk", Field: field, Old: strconv.FormatInt(old, 10), New: strconv.FormatInt(new, 10)})
	}
}

func (d *differ) disks(a, b []Disk) {
	ma := keyed(a, func(x Disk) string { return x.Path })
	mb := keyed(b, func(x Disk) string { return x.Path })
	for _, k := range unionKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		switch {
		case !inA:
			d.add(Change{Section: "disk", Item: k, Kind: "added", New: strconv.FormatInt(y.SizeBytes, 10)})
			continue
		case !inB:
			d.add(Change{Section: "disk", Item: k, Kind: "removed", Old: strconv.FormatInt(x.SizeBytes, 10)})
			continue
		}
		d.sizeChange("disk", k, "size_bytes", x.SizeBytes, y.SizeBytes)
		d.field("disk", k, "model", x.Model, y.Model)
		d.field("disk", k, "serial", x.Serial, y.Serial)
		var ta, tb PartitionTable
		if x.Table != nil {
			ta = *x.Table
		}
		if y.Table != nil {
			tb = *y.Table
		}
		d.field("disk", k, "partition_table", ta.Type, tb.Type)
		d.field("disk", k, "table_id", ta.ID, tb.ID)
		d.field("disk", k, "last_lba", itoa(ta.LastLBA), itoa(tb.LastLBA))
		d.partitions(ta.Partitions, tb.Partitions)
	}
}

func itoa(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

func (d *differ) partitions(a, b []Partition) {
	ma := keyed(a, func(x Partition) string { return x.Path })
	mb := keyed(b, func(x Partition) string { return x.Path })
	for _, k := range unionKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		switch {
		case !inA:
			d.add(Change{Section: "partition", Item: k, Kind: "added", New: fmt.Sprintf("start %d, %d sectors", y.Start, y.Size)})
			continue
		case !inB:
			d.add(Change{Section: "partition", Item: k, Kind: "removed", Old: fmt.Sprintf("start %d, %d sectors", x.Start, x.Size)})
			continue
		}
		d.sizeChange("partition", k, "size", x.Size, y.Size)
		d.field("partition", k, "start", strconv.FormatInt(x.Start, 10), strconv.FormatInt(y.Start, 10))
		d.field("partition", k, "type", x.Type, y.Type)
		d.field("partition", k, "uuid", x.UUID, y.UUID)
		d.field("partition", k, "name", x.Name, y.Name)
		d.field("partition", k, "attrs", x.Attrs, y.Attrs)
		d.field("partition", k, "bootable", strconv.FormatBool(x.Bootable), strconv.FormatBool(y.Bootable))
	}
}

// fsKey identifies a filesystem across inventories: its UUID, or its
// device when it has none.
func fsKey(f Filesystem) string {
	if f.UUID != "" {
		return f.Type + " " + f.UUID
	}
	return f.Type + " on " + f.Device
}

func (d *differ) filesystems(a, b []Filesystem) {
	ma := keyed(a, fsKey)
	mb := keyed(b, fsKey)
	for _, k := range unionKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		switch {
		case !inA:
			d.add(Change{Section: "filesystem", Item: k, Kind: "added", New: y.Device})
			continue
		case !inB:
			d.add(Change{Section: "filesystem", Item: k, Kind: "removed", Old: x.Device})
			continue
		}
		d.field("filesystem", k, "device", x.Device, y.Device)
		d.field("filesystem", k, "label", x.Label, y.Label)
		d.sizeChange("filesystem", k, "size_bytes", x.SizeBytes, y.SizeBytes)
		d.field("filesystem", k, "features", strings.Join(x.Features, " "), strings.Join(y.Features, " "))
		d.field("filesystem", k, "mounts", mountsText(x.Mounts), mountsText(y.Mounts))
		d.blob("filesystem", k+" params", x.Params, y.Params)
		d.blob("filesystem", k+" subvolumes", x.Subvolumes, y.Subvolumes)
	}
}

func mountsText(ms []Mount) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Target+" ("+m.Options+")")
	}
	return strings.Join(s, ", ")
}

func (d *differ) network(a, b *Network) {
	ma := keyed(a.Interfaces, func(x Interface) string { return x.Name })
	mb := keyed(b.Interfaces, func(x Interface) string { return x.Name })
	for _, k := range unionKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		switch {
		case !inA:
			d.add(Change{Section: "interface", Item: k, Kind: "added", New: addrsText(y.Addresses)})
		case !inB:
			d.add(Change{Section: "interface", Item: k, Kind: "removed", Old: addrsText(x.Addresses)})
		default:
			d.field("interface", k, "addresses", addrsText(x.Addresses), addrsText(y.Addresses))
			d.field("interface", k, "mac", x.MAC, y.MAC)
			d.field("interface", k, "mtu", strconv.Itoa(x.MTU), strconv.Itoa(y.MTU))
		}
	}
	routeKey := func(r Route) string {
		s := r.Family + " " + r.Dst
		if r.Gateway != "" {
			s += " via " + r.Gateway
		}
		if r.Dev != "" {
			s += " dev " + r.Dev
		}
		return s
	}
	ra := keyed(a.Routes, routeKey)
	rb := keyed(b.Routes, routeKey)
	for _, k := range unionKeys(ra, rb) {
		_, inA := ra[k]
		_, inB := rb[k]
		if !inA {
			d.add(Change{Section: "route", Item: k, Kind: "added"})
		} else if !inB {
			d.add(Change{Section: "route", Item: k, Kind: "removed"})
		}
	}
	d.lines("dns", a.Resolv, b.Resolv)
}

func addrsText(as []Address) string {
	var s []string
	for _, a := range as {
		s = append(s, a.CIDR)
	}
	return strings.Join(s, " ")
}

func (d *differ) packages(a, b []Package) {
	key := func(p Package) string { return p.Name + ":" + p.Arch }
	ma, mb := keyed(a, key), keyed(b, key)
	for _, k := range unionKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		switch {
		case !inA:
			d.add(Change{Section: "package", Item: k, Kind: "added", New: y.Version})
		case !inB:
			d.add(Change{Section: "package", Item: k, Kind: "removed", Old: x.Version})
		case x.Version != y.Version:
			kind := "upgraded"
			if CompareVersions(x.Version, y.Version) > 0 {
				kind = "downgraded"
			}
			d.add(Change{Section: "package", Item: k, Kind: kind, Field: "version", Old: x.Version, New: y.Version})
		}
	}
}

func (d *differ) units(a, b []Unit) {
	key := func(u Unit) string { return u.Name + " (" + u.By + "." + u.Kind + ")" }
	ma, mb := keyed(a, key), keyed(b, key)
	for _, k := range unionKeys(ma, mb) {
		_, inA := ma[k]
		_, inB := mb[k]
		if !inA {
			d.add(Change{Section: "unit", Item: k, Kind: "enabled"})
		} else if !inB {
			d.add(Change{Section: "unit", Item: k, Kind: "disabled"})
		}
	}
}

func (d *differ) users(a, b []User) {
	ma := keyed(a, func(u User) string { return u.Name })
	mb := keyed(b, func(u User) string { return u.Name })
	for _, k := range unionKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		switch {
		case !inA:
			d.add(Change{Section: "user", Item: k, Kind: "added", New: "uid " + strconv.Itoa(y.UID)})
		case !inB:
			d.add(Change{Section: "user", Item: k, Kind: "removed", Old: "uid " + strconv.Itoa(x.UID)})
		default:
			d.field("user", k, "uid", strconv.Itoa(x.UID), strconv.Itoa(y.UID))
			d.field("user", k, "gid", strconv.Itoa(x.GID), strconv.Itoa(y.GID))
			d.field("user", k, "home", x.Home, y.Home)
			d.field("user", k, "shell", x.Shell, y.Shell)
		}
	}
}

func (d *differ) groups(a, b []Group) {
	ma := keyed(a, func(g Group) string { return g.Name })
	mb := keyed(b, func(g Group) string { return g.Name })
	for _, k := range unionKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		switch {
		case !inA:
			d.add(Change{Section: "group", Item: k, Kind: "added", New: "gid " + strconv.Itoa(y.GID)})
		case !inB:
			d.add(Change{Section: "group", Item: k, Kind: "removed", Old: "gid " + strconv.Itoa(x.GID)})
		default:
			d.field("group", k, "gid", strconv.Itoa(x.GID), strconv.Itoa(y.GID))
			d.field("group", k, "members", strings.Join(x.Members, ","), strings.Join(y.Members, ","))
		}
	}
}

func (d *differ) crontabs(a, b []TextFile) {
	ma := keyed(a, func(t TextFile) string { return t.Path })
	mb := keyed(b, func(t TextFile) string { return t.Path })
	for _, k := range unionKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		switch {
		case !inA:
			d.add(Change{Section: "crontab", Item: k, Kind: "added"})
		case !inB:
			d.add(Change{Section: "crontab", Item: k, Kind: "removed"})
		case x.Content != y.Content:
			d.lines("crontab "+k, x.Content, y.Content)
		}
	}
}

// CompareVersions orders two Debian package versions as dpkg does
// ([epoch:]upstream[-revision], "~" sorting before everything): -1, 0 or
// 1. RPM versions compare sensibly with it too.
func CompareVersions(a, b string) int {
	ea, ra := splitEpoch(a)
	eb, rb := splitEpoch(b)
	if c := cmp.Compare(ea, eb); c != 0 {
		return c
	}
	ua, va := splitRevision(ra)
	ub, vb := splitRevision(rb)
	if c := compareDebPart(ua, ub); c != 0 {
		return c
	}
	return compareDebPart(va, vb)
}

func splitEpoch(v string) (int, string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		if n, err := strconv.Atoi(e); err == nil {
			return n, rest
		}
	}
	return 0, v
}

func splitRevision(v string) (string, string) {
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}

// debOrder is the weight of a character in the non-digit parts.
func debOrder(c byte) int {
	switch {
	case c == '~':
		return -1
	case c >= '0' && c <= '9':
		return 0
	case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		return int(c)
	case c == 0:
		return 0
	}
	return int(c) + 256
}

func compareDebPart(a, b string) int {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	for a != "" || b != "" {
		// Non-digit prefix, character by character.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			var ca, cb byte
			if a != "" && !isDigit(a[0]) {
				ca = a[0]
			}
			if b != "" && !isDigit(b[0]) {
				cb = b[0]
			}
			if c := cmp.Compare(debOrder(ca), debOrder(cb)); c != 0 {
				return c
			}
			if ca != 0 {
				a = a[1:]
			}
			if cb != 0 {
				b = b[1:]
			}
		}
		// Digit run, as a number.
		var na, nb string
		for a != "" && isDigit(a[0]) {
			na, a = na+a[:1], a[1:]
		}
		for b != "" && isDigit(b[0]) {
			nb, b = nb+b[:1], b[1:]
		}
		na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
		if c := cmp.Compare(len(na), len(nb)); c != 0 {
			return c
		}
		if c := strings.Compare(na, nb); c != 0 {
			return c
		}
	}
	return 0
}
