package archiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// vnode is a directory on the way from / to the backup targets. Target
// directories are walked whole; other vnodes only hold the path to them.
type vnode struct {
	target   bool
	children map[string]*vnode
}

func buildVTree(targets []string) *vnode {
	root := &vnode{children: map[string]*vnode{}}
	for _, t := range targets {
		if t == "/" {
			root.target = true
			continue
		}
		cur := root
		for _, part := range strings.Split(strings.TrimPrefix(t, "/"), "/") {
			next, ok := cur.children[part]
			if !ok {
				next = &vnode{children: map[string]*vnode{}}
				cur.children[part] = next
			}
			cur = next
		}
		cur.target = true
	}
	return root
}

// afterList is a test hook, nil outside tests: it is called with each
// directory the walker has listed and lstat'ed, before any of its entries
// is read, so a test can make entries vanish or change type in between.
// Tests set it before Snapshot starts and clear it after it returns.
var afterList func(dir string)

// walkVirtual fills d with the children of a vnode at dir.
func (a *Archiver) walkVirtual(ctx context.Context, d *dirState, dir string, v *vnode, prev *parentDir) error {
	if v.target {
		// The target is "/": its device is the limit for
		// --one-file-system, as any target's is.
		var st unix.Stat_t
		if err := unix.Lstat(a.src(dir), &st); err != nil {
			return fmt.Errorf("backup path %q: %w", dir, err)
		}
		return a.walkTarget(ctx, d, dir, prev, a.devOf(dir, st.Dev))
	}
	names := make([]string, 0, len(v.children))
	for name := range v.children {
		names = append(names, name)
	}
	slices.Sort(names)
	d.pending.Store(1)
	type sub struct {
		slot int
		v    *vnode
	}
	var subs []sub
	for _, name := range names {
		p := path.Join(dir, name)
		var st unix.Stat_t
		if err := unix.Lstat(a.src(p), &st); err != nil {
			return fmt.Errorf("backup path %q: %w", p, err)
		}
		n := a.nodeFromStat(p, name, &st)
		a.names.SetNames(&n)
		child := v.children[name]
		if !child.target && n.Type != tree.Dir {
			return fmt.Errorf("backup path below %q: not a directory", p)
		}
		if a.tooLarge(p, &n) {
			continue
		}
		d.nodes = append(d.nodes, n)
		subs = append(subs, sub{len(d.nodes) - 1, child})
	}
	for _, s := range subs {
		n := &d.nodes[s.slot]
		p := path.Join(dir, n.Name)
		pn := prev.find(ctx, n.Name)
		if s.v.target && n.Type != tree.Dir {
			if err := a.addEntry(ctx, d, s.slot, p, pn, -1); err != nil {
				return err
			}
			continue
		}
		if err := a.readMeta(n, p, pn); err != nil {
			a.entryError(p, tree.Dir, err)
		}
		child := &dirState{path: p, parent: d, slot: s.slot, prev: pn}
		d.pending.Add(1)
		var prevIDs *parentDir
		if pn != nil && pn.Type == tree.Dir {
			prevIDs = newParentDir(a.repo, pn.Subtree)
		}
		if s.v.target {
			if err := a.walkTarget(ctx, child, p, prevIDs, n.DeviceID); err != nil {
				return err
			}
		} else if err := a.walkVirtual(ctx, child, p, s.v, prevIDs); err != nil {
			return err
		}
	}
	return a.childDone(ctx, d)
}

// walkDir lists the real directory dir into d and walks below it. dev is
// the device of dir, for --one-file-system (0: no limit).
func (a *Archiver) walkDir(ctx context.Context, d *dirState, dir string, prev *parentDir, dev uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.pending.Store(1)
	dirfd, err := openDirNoAtime(a.src(dir))
	if errors.Is(err, unix.ENOENT) && d.parent != nil {
		// Removed since its parent was listed: left out, like a file.
		d.parent.nodes[d.slot].Type = removed
		a.vanishedEntry(dir)
		return a.childDone(ctx, d)
	}
	if err != nil {
		// The directory's own node is kept; its content is missing.
		a.entryError(dir, tree.Dir, fmt.Errorf("open directory: %w", err))
		return a.childDone(ctx, d)
	}
	f := os.NewFile(uintptr(dirfd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		a.entryError(dir, tree.Dir, fmt.Errorf("list directory: %w", err))
	}
	if len(a.markers) > 0 {
		if tags := markedBy(dirfd, a.markers); tags != nil {
			// Keep the marker files themselves so a restored tree is
			// still marked, and the directory, empty otherwise.
			names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(tags, n) })
			a.log.Info("excluded the content of a marked directory", "path", dir, "markers", tags)
		}
	}
	slices.Sort(names)
	d.nodes = make([]tree.Node, 0, len(names))
	for _, name := range names {
		p := joinPath(dir, name)
		if a.match.Match(p, name) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				a.vanishedEntry(p)
				continue
			}
			a.entryError(p, 0, fmt.Errorf("lstat: %w", err))
			continue
		}
		n := a.nodeFromStat(p, name, &st)
		if n.Type == tree.Socket {
			a.skip(p, "socket")
			continue
		}
		if a.opt.ExcludeNodump && nodump(dirfd, name) {
			a.skip(p, "nodump flag")
			continue
		}
		if a.tooLarge(p, &n) {
			continue
		}
		a.names.SetNames(&n)
		d.nodes = append(d.nodes, n)
	}
	if afterList != nil {
		afterList(dir)
	}
	a.sqliteGates(d)
	// The listing is final: from here on workers may fill in slots.
	for slot := range d.nodes {
		n := &d.nodes[slot]
		p := joinPath(dir, n.Name)
		pn := prev.find(ctx, n.Name)
		if n.Type != tree.Dir {
			a.markInFlux(n, p)
			if err := a.addEntry(ctx, d, slot, p, pn, dirfd); err != nil {
				return err
			}
			continue
		}
		if err := a.readMeta(n, p, pn); err != nil {
			if errors.Is(err, unix.ENOENT) {
				n.Type = removed
				a.vanishedEntry(p)
				continue
			}
			a.entryError(p, tree.Dir, err)
		}
		child := &dirState{path: p, parent: d, slot: slot, prev: pn}
		d.pending.Add(1)
		if !a.crosses(p, n, dev) {
			// A mount point or subvolume: keep the directory, not what
			// is mounted on it.
			child.pending.Store(1)
			if err := a.childDone(ctx, child); err != nil {
				return err
			}
			continue
		}
		var pd *parentDir
		if pn != nil && pn.Type == tree.Dir {
			pd = newParentDir(a.repo, pn.Subtree)
		}
		// Walk the subdirectory on another walker if one is free, so that
		// a metadata-bound backup (an unchanged one, or many small files)
		// uses every core; else walk it here.
		walk := func() error { return a.walkDir(ctx, child, p, pd, n.DeviceID) }
		if a.walkers == nil || !a.walkers.TryGo(walk) {
			if err := walk(); err != nil {
				return err
			}
		}
	}
	return a.childDone(ctx, d)
}

// openDirNoAtime opens a directory for listing without updating its
// access time: the walker records directories' atimes, so a listing that
// moved them would make the next backup store every listing anew. As with
// files, O_NOATIME is dropped where the kernel refuses it (a directory
// the user does not own). O_NOFOLLOW: dir was lstat'ed as a directory, and
// a symlink put in its place since must not be walked under its name.
func openDirNoAtime(dir string) (int, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(dir, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(dir, flags, 0)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// vanishedEntry counts an entry that disappeared between the listing of
// its directory and the reading of its metadata or content.
func (a *Archiver) vanishedEntry(p string) {
	a.st.vanished.Add(1)
	a.log.Info("vanished before it was read", "path", p)
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// readMeta fills in what lstat does not give: xattrs and link targets.
// Xattrs are taken from the parent snapshot when the inode and ctime are
// unchanged, since setting an xattr changes the ctime.
func (a *Archiver) readMeta(n *tree.Node, p string, prev *tree.Node) error {
	if prev != nil && prev.Type == n.Type && prev.Inode == n.Inode && prev.CTime == n.CTime && prev.DeviceID == n.DeviceID &&
		(n.Type != tree.Dir || prev.HasInodeFlags) {
		// A symlink's target cannot change without a new inode, and
		// reading it would move its atime. A folder's inode flags are
		// read again when the parent snapshot predates them.
		n.Xattrs, n.LinkTarget = prev.Xattrs, prev.LinkTarget
		n.InodeFlags, n.HasInodeFlags = prev.InodeFlags, prev.HasInodeFlags
		return nil
	}
	if n.Type == tree.Dir {
		// A folder that cannot be opened is reported when it is listed;
		// its flags stay unknown.
		if err := fs.ReadDirInodeFlags(n, a.src(p)); err != nil {
			a.log.Debug("inode flags not read", "path", p, "err", err)
		}
	}
	if n.Type == tree.Symlink {
		t, err := os.Readlink(a.src(p))
		if err != nil {
			return fmt.Errorf("readlink: %w", err)
		}
		n.LinkTarget = t
	}
	x, err := fs.ReadXattrs(a.src(p))
	if err != nil {
		return err
	}
	n.Xattrs = x
	return nil
}

// addEntry handles a non-directory entry: special files are complete after
// readMeta; regular files are compared with the parent snapshot and queued
// for reading when they changed.
func (a *Archiver) addEntry(ctx context.Context, d *dirState, slot int, p string, prev *tree.Node, dirfd int) error {
	n := &d.nodes[slot]
	if n.Type != tree.File {
		if err := a.readMeta(n, p, prev); err != nil {
			if errors.Is(err, unix.ENOENT) {
				// Without it a symlink would be kept with no target.
				n.Type = removed
				a.vanishedEntry(p)
				return nil
			}
			a.entryError(p, n.Type, err)
		}
		return nil
	}
	a.st.totalFiles.Add(1)
	a.st.totalBytes.Add(int64(n.Size))
	a.prog.Scanned(1, int64(n.Size))
	var gate, sibling *dbGate
	if d.gates != nil {
		gate, sibling = d.gates[n.Name], d.sqliteSibling(n)
	}
	keep := false
	var kept *snapshot.SQLiteCapture
	switch c, same := a.sqliteUnchanged(p, prev, n); {
	case sibling != nil:
		// Its job decides, once its database is done (doFile).
	case c != nil:
		if keep = same && a.contentIndexed(ctx, prev); keep {
			kept = c
		}
	default:
		keep = unchanged(prev, n) && a.contentIndexed(ctx, prev)
	}
	if keep {
		a.keepFile(n, prev, p)
		if kept != nil {
			// The stored copy's size, not the database file's.
			n.Size = prev.Size
			a.keepSQLite(kept)
		}
		if gate != nil {
			gate.close(kept != nil)
		}
		if n.Links > 1 {
			ls := &linkState{done: make(chan struct{}), node: n}
			if _, loaded := a.links.LoadOrStore(devIno{n.DeviceID, n.Inode}, ls); !loaded {
				close(ls.done)
			}
		}
		return nil
	}
	job := &fileJob{dir: d, slot: slot, path: p, prev: prev, gate: gate, sibOf: sibling}
	if n.Links > 1 {
		ls := &linkState{done: make(chan struct{})}
		if v, loaded := a.links.LoadOrStore(devIno{n.DeviceID, n.Inode}, ls); loaded {
			job.linkOf = v.(*linkState)
		} else {
			job.first = ls
		}
	}
	d.pending.Add(1)
	select {
	case a.files <- job:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// keepFile gives the file n the parent's content prev, unread.
func (a *Archiver) keepFile(n, prev *tree.Node, p string) {
	n.Content, n.ContentLists, n.Xattrs, n.Flags = prev.Content, prev.ContentLists, prev.Xattrs, 0
	n.InodeFlags, n.HasInodeFlags = prev.InodeFlags, prev.HasInodeFlags
	if !prev.HasInodeFlags {
		// The parent snapshot predates inode flags: read them once.
		a.readFileInodeFlags(n, p)
	}
	a.st.filesUnchanged.Add(1)
	a.prog.Done(1, int64(n.Size))
}

// contentIndexed reports whether every blob of a parent's file node is in
// the index. A blob that is not (lost, or in a pack that a prune condemned)
// must not be referenced again: the file is read and stored afresh. For the
// rare file whose chunk list is stored in content-list blobs, those lists
// are read to check the chunks they name.
func (a *Archiver) contentIndexed(ctx context.Context, prev *tree.Node) bool {
	for _, l := range prev.ContentLists {
		if !a.repo.HasBlob(l) {
			return false
		}
	}
	chunks := prev.Content
	if len(prev.ContentLists) > 0 {
		var err error
		if chunks, err = snapshot.LoadContent(ctx, a.repo, prev); err != nil {
			return false
		}
	}
	for _, c := range chunks {
		if !c.IsHole() && !a.repo.HasBlob(c.ID) {
			return false
		}
	}
	return true
}

// unchanged reports whether a file can keep the parent snapshot's content.
func unchanged(prev, n *tree.Node) bool {
	return prev != nil && prev.Type == tree.File && prev.Flags == 0 &&
		prev.Size == n.Size && prev.MTime == n.MTime && prev.CTime == n.CTime &&
		prev.Inode == n.Inode && prev.DeviceID == n.DeviceID
}

// nodump reports whether the entry name of the directory open as dirfd
// is flagged nodump (chattr +d), as statx tells without opening it.
func nodump(dirfd int, name string) bool {
	var stx unix.Statx_t
	if err := unix.Statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW, 0, &stx); err != nil {
		return false
	}
	return stx.Attributes_mask&unix.STATX_ATTR_NODUMP != 0 && stx.Attributes&unix.STATX_ATTR_NODUMP != 0
}
