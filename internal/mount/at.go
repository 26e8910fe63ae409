package mount

import (
	"context"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/tree"
)

// atRoot is at/: it lists the moments the host's snapshots show, and
// looks up any name Options.Moment reads as a moment.
type atRoot struct {
	dir
}

func (m *Mount) atKids(ctx context.Context) ([]kid, error) { return nil, nil }

// hostFiles are the host's snapshots that hold files, in AsOf order.
func (m *Mount) hostFiles() []*snapshot.Snapshot {
	f := snapshot.Filter{Hosts: []string{m.opt.Host}}
	return timeline.FileSnapshots(timeline.Select(m.opt.Snapshots, f, ""))
}

func (a *atRoot) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if c := a.GetChild(name); c != nil {
		return a.m.child(ctx, &a.Inode, kid{name: name}, out)
	}
	if a.m.opt.Moment == nil {
		return nil, syscall.ENOENT
	}
	t, ok := a.m.opt.Moment(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	v := a.m.atView(t)
	if len(v.entries) == 0 {
		return nil, syscall.ENOENT
	}
	r := v.root()
	return a.m.child(ctx, &a.Inode, kid{name: name, mode: syscall.S_IFDIR, ino: a.m.newIno(),
		make: func() fs.InodeEmbedder { return r }}, out)
}

func (a *atRoot) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var es []fuse.DirEntry
	seen := map[string]bool{}
	for _, sn := range a.m.hostFiles() {
		n := sn.AsOf().Local().Format(TimeLayout)
		if !seen[n] {
			seen[n] = true
			es = append(es, fuse.DirEntry{Name: n, Mode: syscall.S_IFDIR})
		}
	}
	return fs.NewListDirStream(es), 0
}

// atView is everything the host backed up as it was at one moment.
type atView struct {
	m       *Mount
	entries []timeline.PathAt
}

func (m *Mount) atView(t time.Time) *atView {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.ats[t]; ok {
		return v
	}
	v := &atView{m: m, entries: timeline.AtEvery(m.hostFiles(), t)}
	m.ats[t] = v
	return v
}

// root is the view's "/".
func (v *atView) root() fs.InodeEmbedder {
	n, sn, cover, err := v.resolve(v.m.ctx, "/")
	if err != nil || n == nil {
		if err != nil {
			v.m.warn("at/", err)
		}
		return &dir{m: v.m, list: func(context.Context) ([]kid, error) { return nil, nil }}
	}
	if n.MTime == 0 {
		// "/" is no stored directory when the host backed up paths
		// below it: it takes the time of the newest snapshot shown.
		c := *n
		for _, e := range v.entries {
			c.MTime = max(c.MTime, e.Snapshot.AsOf().UnixNano())
		}
		c.ATime, c.CTime, c.Links = c.MTime, c.MTime, 2
		n = &c
	}
	return &dir{m: v.m, meta: n, list: v.lister("/", n, sn, cover)}
}

// cover is the deepest entry that answers p: its path is p or above it.
func (v *atView) cover(p string) *timeline.PathAt {
	var best *timeline.PathAt
	for i := range v.entries {
		e := &v.entries[i]
		if e.Path == p || e.Path == "/" || strings.HasPrefix(p, e.Path+"/") {
			best = e
		}
	}
	return best
}

// under returns the entries at p or below it.
func (v *atView) under(p string) []*timeline.PathAt {
	var out []*timeline.PathAt
	for i := range v.entries {
		e := &v.entries[i]
		if e.Path == p || p == "/" || strings.HasPrefix(e.Path, p+"/") {
			out = append(out, e)
		}
	}
	return out
}

// resolve finds what p was at the view's moment: its node in the snapshot
// of the entry that answers it (cover true), or, for a directory above
// the paths backed up, its node in the snapshot of a path below it. A nil
// node: p did not exist then.
func (v *atView) resolve(ctx context.Context, p string) (*tree.Node, *snapshot.Snapshot, bool, error) {
	if e := v.cover(p); e != nil {
		n, err := timeline.Lookup(ctx, v.m.r, e.Snapshot, p)
		if err != nil || n != nil {
			return n, e.Snapshot, true, err
		}
	}
	for _, e := range v.under(p) {
		if e.Path == p {
			continue
		}
		n, err := timeline.Lookup(ctx, v.m.r, e.Snapshot, p)
		if err != nil || n != nil {
			return n, e.Snapshot, false, err
		}
	}
	return nil, nil, false, nil
}

// lister lists the directory p, whose node n came from sn (answering p
// when cover): its stored entries that the same entry answers as stored,
// and the others, and the names leading to entries below p, resolved one
// by one.
func (v *atView) lister(p string, n *tree.Node, sn *snapshot.Snapshot, cover bool) func(ctx context.Context) ([]kid, error) {
	return func(ctx context.Context) ([]kid, error) {
		var out []kid
		seen := map[string]bool{}
		var slow []string
		if n.Type == tree.Dir {
			stored, err := v.m.storedKids(ctx, sn.ID, n.Subtree)
			if err != nil {
				return nil, err
			}
			for _, k := range stored {
				q := path.Join(p, k.name)
				seen[k.name] = true
				if !cover || len(v.under(q)) > 0 {
					slow = append(slow, k.name)
					continue
				}
				// Nothing below q is answered by another entry: it
				// lists itself as stored.
				out = append(out, k)
			}
		}
		for _, e := range v.under(p) {
			if e.Path == p {
				continue
			}
			rest := strings.TrimPrefix(e.Path, p)
			name, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
			if !seen[name] {
				seen[name] = true
				slow = append(slow, name)
			}
		}
		for _, name := range slow {
			q := path.Join(p, name)
			c, csn, ccover, err := v.resolve(ctx, q)
			if err != nil {
				return nil, err
			}
			if c == nil || c.Type == 0 {
				continue
			}
			cc := *c
			cc.Name = name
			var list func(context.Context) ([]kid, error)
			if cc.Type == tree.Dir {
				list = v.lister(q, &cc, csn, ccover)
			}
			out = append(out, v.m.treeKid(csn.ID, &cc, list))
		}
		slices.SortFunc(out, func(a, b kid) int { return strings.Compare(a.name, b.name) })
		return out, nil
	}
}

// OpendirHandle lists the moments; not cached by the kernel, since any
// name may be looked up beside them.
func (a *atRoot) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	ds, errno := a.Readdir(ctx)
	return ds, 0, errno
}
