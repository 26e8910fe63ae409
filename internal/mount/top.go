package mount

import (
	"context"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// top is the root: hosts/, ids/, tags/, latest/ and at/.
func (m *Mount) top() *dir {
	newest := time.Time{}
	for _, sn := range m.opt.Snapshots {
		if sn.Time.After(newest) {
			newest = sn.Time
		}
	}
	static := func(name string, list func(context.Context) ([]kid, error)) kid {
		return m.dirKid(name, newest, list)
	}
	return &dir{m: m, mtime: newest, list: func(context.Context) ([]kid, error) {
		return []kid{
			{name: "at", mode: syscall.S_IFDIR, ino: m.newIno(), make: func() fs.InodeEmbedder {
				return &atRoot{dir{m: m, mtime: newest, list: m.atKids}}
			}},
			static("hosts", m.hostsKids),
			static("ids", m.idsKids),
			static("latest", m.latestKids),
			static("tags", m.tagsKids),
		}, nil
	}}
}

// dirKid is a synthetic directory.
func (m *Mount) dirKid(name string, mtime time.Time, list func(context.Context) ([]kid, error)) kid {
	return kid{name: name, mode: syscall.S_IFDIR, ino: m.newIno(), make: func() fs.InodeEmbedder {
		return &dir{m: m, mtime: mtime, list: list}
	}}
}

// snapKid is the directory of one snapshot: its root tree.
func (m *Mount) snapKid(name string, sn *snapshot.Snapshot) kid {
	root := &tree.Node{Name: name, Type: tree.Dir, Mode: 0o755, Subtree: sn.Tree,
		MTime: sn.Time.UnixNano(), ATime: sn.Time.UnixNano(), CTime: sn.Time.UnixNano(), Links: 2}
	return m.treeKid(sn.ID, root, nil)
}

// snapName is TIME-ID, in local time.
func snapName(sn *snapshot.Snapshot) string {
	return sn.Time.Local().Format(TimeLayout) + "-" + sn.ID.Short()
}

// sorted returns the snapshots oldest first.
func (m *Mount) sorted(keep func(*snapshot.Snapshot) bool) []*snapshot.Snapshot {
	var out []*snapshot.Snapshot
	for _, sn := range m.opt.Snapshots {
		if keep(sn) {
			out = append(out, sn)
		}
	}
	snapshot.SortByTime(out)
	return out
}

// group makes one directory per key, each listing its snapshots as
// TIME-ID.
func (m *Mount) group(keys func(*snapshot.Snapshot) []string) []kid {
	by := map[string][]*snapshot.Snapshot{}
	for _, sn := range m.sorted(func(*snapshot.Snapshot) bool { return true }) {
		for _, k := range keys(sn) {
			by[k] = append(by[k], sn)
		}
	}
	var out []kid
	for _, k := range slices.Sorted(maps.Keys(by)) {
		if !validName(k) {
			continue
		}
		sns := by[k]
		out = append(out, m.dirKid(k, sns[len(sns)-1].Time, func(context.Context) ([]kid, error) {
			ks := make([]kid, 0, len(sns))
			for _, sn := range sns {
				ks = append(ks, m.snapKid(snapName(sn), sn))
			}
			return ks, nil
		}))
	}
	return out
}

func (m *Mount) hostsKids(context.Context) ([]kid, error) {
	return m.group(func(sn *snapshot.Snapshot) []string { return []string{sn.Hostname} }), nil
}

func (m *Mount) tagsKids(context.Context) ([]kid, error) {
	return m.group(func(sn *snapshot.Snapshot) []string { return sn.Tags }), nil
}

func (m *Mount) idsKids(context.Context) ([]kid, error) {
	var out []kid
	for _, sn := range m.sorted(func(*snapshot.Snapshot) bool { return true }) {
		out = append(out, m.snapKid(sn.ID.Short(), sn))
	}
	return out, nil
}

// latestKids is latest/HOST: the newest snapshot of each host.
func (m *Mount) latestKids(context.Context) ([]kid, error) {
	newest := map[string]*snapshot.Snapshot{}
	for _, sn := range m.sorted(func(*snapshot.Snapshot) bool { return true }) {
		newest[sn.Hostname] = sn
	}
	var out []kid
	for _, h := range slices.Sorted(maps.Keys(newest)) {
		if validName(h) {
			out = append(out, m.snapKid(h, newest[h]))
		}
	}
	return out, nil
}

// validName reports whether s can be a directory entry's name.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}
