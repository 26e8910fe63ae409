package mount

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	rfs "github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/tree"
)

// A dir is any directory of the mount: a synthetic one (hosts/, a host,
// at/) or one stored in a snapshot. Its children are listed once, on the
// first lookup or readdir, by list.
type dir struct {
	fs.Inode
	m *Mount
	// meta is the stored directory's node; nil for a synthetic one.
	meta *tree.Node
	// mtime of a synthetic directory.
	mtime time.Time
	list  func(ctx context.Context) ([]kid, error)

	once  sync.Once
	kids  map[string]kid
	names []string
	ents  []fuse.DirEntry
	errno syscall.Errno
}

// A kid is one entry of a directory, not yet made an inode.
type kid struct {
	name string
	// make builds the entry's node; ino is its inode number (0: the
	// mount picks one), mode its type bits.
	make func() fs.InodeEmbedder
	ino  uint64
	mode uint32
}

var (
	_ fs.NodeLookuper    = (*dir)(nil)
	_ fs.NodeReaddirer   = (*dir)(nil)
	_ fs.NodeGetattrer   = (*dir)(nil)
	_ fs.NodeGetxattrer  = (*dir)(nil)
	_ fs.NodeListxattrer = (*dir)(nil)
	_ fs.NodeGetattrer   = (*leaf)(nil)
	_ fs.NodeReadlinker  = (*leaf)(nil)
	_ fs.NodeGetxattrer  = (*leaf)(nil)
	_ fs.NodeListxattrer = (*leaf)(nil)
	_ fs.NodeOpener      = (*file)(nil)
	_ fs.NodeReader      = (*file)(nil)
	_ fs.NodeLseeker     = (*file)(nil)
)

func (d *dir) load(ctx context.Context) syscall.Errno {
	d.once.Do(func() {
		ks, err := d.list(ctx)
		if err != nil {
			d.m.warn("listing", err)
			d.errno = syscall.EIO
			return
		}
		d.kids = make(map[string]kid, len(ks))
		for _, k := range ks {
			if _, dup := d.kids[k.name]; dup {
				continue
			}
			d.kids[k.name] = k
			d.names = append(d.names, k.name)
			d.ents = append(d.ents, fuse.DirEntry{Name: k.name, Mode: k.mode, Ino: k.ino})
		}
	})
	return d.errno
}

func (d *dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := d.load(ctx); errno != 0 {
		return nil, errno
	}
	k, ok := d.kids[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return d.m.child(ctx, &d.Inode, k, out)
}

func (d *dir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if errno := d.load(ctx); errno != 0 {
		return nil, errno
	}
	// The listing is built once: each READDIR opens it anew (noOpendir),
	// and a list stream only reads its entries.
	return fs.NewListDirStream(d.ents), 0
}

func (d *dir) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if d.meta != nil {
		fillAttr(&out.Attr, d.meta)
		return 0
	}
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = 2
	t := d.mtime
	out.SetTimes(&t, &t, &t)
	return 0
}

func (d *dir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(d.meta, attr, dest)
}

func (d *dir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(d.meta, dest)
}

// child makes k an inode below parent, or finds the one made before.
func (m *Mount) child(ctx context.Context, parent *fs.Inode, k kid, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if c := parent.GetChild(k.name); c != nil {
		if ga, ok := c.Operations().(fs.NodeGetattrer); ok {
			var a fuse.AttrOut
			ga.Getattr(ctx, nil, &a)
			out.Attr = a.Attr
		}
		out.Ino = c.StableAttr().Ino
		out.SetEntryTimeout(m.timeout)
		out.SetAttrTimeout(m.timeout)
		return c, 0
	}
	n := k.make()
	var a fuse.AttrOut
	if ga, ok := n.(fs.NodeGetattrer); ok {
		ga.Getattr(ctx, nil, &a)
	}
	ino := k.ino
	if ino == 0 {
		ino = m.newIno()
	}
	a.Attr.Ino = ino
	out.Attr = a.Attr
	out.SetEntryTimeout(m.timeout)
	out.SetAttrTimeout(m.timeout)
	return parent.NewInode(ctx, n, fs.StableAttr{Mode: k.mode, Ino: ino}), 0
}

// treeKid makes the directory entry for a stored node of snapshot snap.
// list lists a directory node's children; nil lists its stored subtree.
func (m *Mount) treeKid(snap id.ID, n *tree.Node, list func(ctx context.Context) ([]kid, error)) kid {
	k := kid{name: n.Name, mode: rfs.ModeBits(n.Type), ino: m.inoOf(snap, n)}
	switch n.Type {
	case tree.Dir:
		if list == nil {
			list = func(ctx context.Context) ([]kid, error) { return m.storedKids(ctx, snap, n.Subtree) }
		}
		k.make = func() fs.InodeEmbedder { return &dir{m: m, meta: n, list: list} }
	case tree.File:
		k.make = func() fs.InodeEmbedder { return &file{leaf: leaf{m: m, meta: n}} }
	default:
		k.make = func() fs.InodeEmbedder { return &leaf{m: m, meta: n} }
	}
	return k
}

// storedKids lists a stored directory, leaving out the names restore
// refuses (fs.Listing), as ls and find do. Its tree blobs come through
// the tree cache, and the subdirectories' blobs are loaded ahead: a find
// or ls -R that opens them next finds them decoded-ready.
func (m *Mount) storedKids(ctx context.Context, snap id.ID, subtree []id.ID) ([]kid, error) {
	var out []kid
	var names rfs.Listing
	var next []id.ID
	for _, i := range subtree {
		blob, err := m.trees.get(ctx, i)
		if err != nil {
			return nil, err
		}
		d, err := tree.NewDecoder(blob)
		if err != nil {
			return nil, fmt.Errorf("tree %s: %w", i.Short(), err)
		}
		for {
			n, ok, err := d.Next()
			if err != nil {
				return nil, fmt.Errorf("tree %s: %w", i.Short(), err)
			}
			if !ok {
				break
			}
			if names.Check(n.Name) != nil {
				continue
			}
			if n.Type == tree.Dir {
				next = append(next, n.Subtree...)
			}
			out = append(out, m.treeKid(snap, &n, nil))
		}
	}
	m.prefetchTrees(next)
	return out, nil
}

// prefetchTrees loads tree blobs in the background, as many at once as
// the prefetch slots allow; the rest are loaded when asked for.
func (m *Mount) prefetchTrees(ids []id.ID) {
	for _, i := range ids {
		if m.trees.has(i) {
			continue
		}
		select {
		case m.treeSlots <- struct{}{}:
		default:
			return
		}
		go func() {
			defer func() { <-m.treeSlots }()
			m.trees.get(m.ctx, i)
		}()
	}
}

// A leaf is a stored symlink, device, FIFO or socket.
type leaf struct {
	fs.Inode
	m    *Mount
	meta *tree.Node
}

func (l *leaf) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, l.meta)
	return 0
}

func (l *leaf) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if l.meta.Type != tree.Symlink {
		return nil, syscall.EINVAL
	}
	return []byte(l.meta.LinkTarget), 0
}

func (l *leaf) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(l.meta, attr, dest)
}

func (l *leaf) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(l.meta, dest)
}

// fillAttr sets what stat shows of a stored node: mode, owner, size,
// times, link count, device number, and the blocks its data (not its
// holes) takes.
func fillAttr(a *fuse.Attr, n *tree.Node) {
	a.Mode = rfs.ModeBits(n.Type) | n.Mode&0o7777
	a.Uid, a.Gid = n.UID, n.GID
	a.Size = n.Size
	if n.Type == tree.Symlink {
		a.Size = uint64(len(n.LinkTarget))
	}
	a.Nlink = uint32(max(n.Links, 1))
	a.Rdev = uint32(n.Rdev)
	a.Atime, a.Atimensec = split(n.ATime)
	a.Mtime, a.Mtimensec = split(n.MTime)
	a.Ctime, a.Ctimensec = split(n.CTime)
	a.Blksize = 4096
	if n.Type == tree.File {
		var data uint64
		for _, c := range n.Content {
			if !c.IsHole() {
				data += c.Size
			}
		}
		if len(n.ContentLists) > 0 {
			data = n.Size
		}
		a.Blocks = (data + 511) / 512
	}
}

func split(ns int64) (uint64, uint32) {
	if ns < 0 {
		return 0, 0
	}
	return uint64(ns / 1e9), uint32(ns % 1e9)
}

func getxattr(n *tree.Node, attr string, dest []byte) (uint32, syscall.Errno) {
	if n == nil {
		return 0, syscall.ENODATA
	}
	for _, x := range n.Xattrs {
		if x.Name == attr {
			if len(dest) < len(x.Value) {
				return uint32(len(x.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.Value)), 0
		}
	}
	return 0, syscall.ENODATA
}

func listxattr(n *tree.Node, dest []byte) (uint32, syscall.Errno) {
	if n == nil {
		return 0, 0
	}
	var b []byte
	for _, x := range n.Xattrs {
		b = append(append(b, x.Name...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// OpendirHandle opens the listing for one READDIR(PLUS) (noOpendir: the
// kernel itself opens no directory). The cache flags would let a kernel
// handle keep the listing, were OPENDIR passed on.
func (d *dir) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	ds, errno := d.Readdir(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	return ds, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}
