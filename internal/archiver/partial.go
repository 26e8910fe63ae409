package archiver

// Partial backups: continuous capture (internal/watch) knows which paths
// changed since the parent snapshot, so it asks for a snapshot that reads
// only those and takes everything else from the parent.
//
// The walk visits only the directories on the way from a backup target to
// a changed path. Each of them is not listed: its entries are the parent
// snapshot's listing, decoded from its tree blobs, in which only the
// changed names are looked at again (one fstatat each). Every other entry,
// files and whole subdirectories alike, is copied from the parent with its
// chunk list or subtree IDs and is never stat'ed. A changed file is read
// only if its size, times or inode differ from the parent's, as in a
// normal backup. A changed directory that is new, another inode than the
// parent's, or named in Changes.Rescan is walked whole by the normal
// walker. So the cost of a partial backup is the sum, over the directories
// on the way, of decoding and encoding their listings, plus the changed
// entries themselves: for one changed file in a tree of a million, a few
// listings and one stat.
//
// Safety: reusing a subtree by ID references every blob below it without
// looking at them. That is sound only when the parent's blobs are all in
// the index this backup deduplicates against (docs/FORMAT.md §12). The
// caller guarantees it: the parent was made by a full walk against an
// index that has since only grown (see internal/watch).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// Changes names what changed since Options.Parent, for a partial backup.
// Paths are absolute and clean; those outside the backup targets are
// ignored.
type Changes struct {
	// Paths whose own entry may have changed: created, removed, renamed
	// to or from, written, or given new metadata. Each is lstat'ed again.
	// A directory among them keeps the parent's listing apart from its
	// own changed entries, unless it is new or another inode than the
	// parent's, in which case it is walked whole.
	Paths []string
	// Rescan are directories walked whole, as a normal backup walks them
	// (new directories, or where change notifications were lost).
	Rescan []string
}

// ErrUnchanged is returned by Snapshot with Options.SkipUnchanged when the
// snapshot would have had the parent's tree: nothing was saved.
var ErrUnchanged = errors.New("nothing changed since the parent snapshot")

// cnode is a directory or entry on the way to a changed path.
type cnode struct {
	children map[string]*cnode
	rescan   bool // walk this directory whole
}

// partialState is an archiver's state for partial backups and in-flux
// marking; nil when neither is asked for.
type partialState struct {
	root   *cnode // nil: a normal (full) walk
	inFlux map[string]bool
	// prevFiles and prevBytes count the files of the parent that were
	// replaced by what this backup walked, so that the totals of the
	// summary can be derived from the parent's.
	prevFiles, prevBytes atomic.Int64
}

// newPartial builds the change tree. Without a parent there is nothing to
// reuse and the backup is a normal one.
func newPartial(opt Options) *partialState {
	if len(opt.InFlux) == 0 && (opt.Changes == nil || opt.Parent == nil) {
		return nil
	}
	ps := &partialState{}
	if len(opt.InFlux) > 0 {
		ps.inFlux = make(map[string]bool, len(opt.InFlux))
		for _, p := range opt.InFlux {
			ps.inFlux[p] = true
		}
	}
	if opt.Changes == nil || opt.Parent == nil {
		return ps
	}
	ps.root = &cnode{}
	for _, p := range opt.Changes.Rescan {
		if n := ps.add(p); n != nil {
			n.rescan, n.children = true, nil
		}
	}
	for _, p := range opt.Changes.Paths {
		ps.add(p)
	}
	for _, p := range sqliteBasesOf(opt) {
		ps.add(p)
	}
	return ps
}

// add inserts the path p and returns its node, or nil when a directory
// above it is walked whole anyway.
func (ps *partialState) add(p string) *cnode {
	cur := ps.root
	if cur.rescan {
		return nil
	}
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" || part == "." || part == ".." {
			continue
		}
		next := cur.children[part]
		if next == nil {
			if cur.children == nil {
				cur.children = map[string]*cnode{}
			}
			next = &cnode{}
			cur.children[part] = next
		}
		if next.rescan {
			return nil
		}
		cur = next
	}
	return cur
}

// find returns the node of the directory dir, and whether it is to be
// walked whole because it or a directory above it is in Rescan. A nil node
// with whole false means nothing changed below dir.
func (ps *partialState) find(dir string) (n *cnode, whole bool) {
	cur := ps.root
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if cur.rescan {
			return cur, true
		}
		if part == "" {
			continue
		}
		if cur = cur.children[part]; cur == nil {
			return nil, false
		}
	}
	return cur, cur.rescan
}

// markInFlux flags a file that continuous capture saw still being written
// when it gave up waiting for it (tree.FlagInFlux).
func (a *Archiver) markInFlux(n *tree.Node, p string) {
	if a.part != nil && n.Type == tree.File && a.part.inFlux[p] {
		n.Flags |= tree.FlagInFlux
	}
}

// walkTarget walks a backup target: whole in a normal backup, else only
// on the way to what changed below it.
func (a *Archiver) walkTarget(ctx context.Context, d *dirState, dir string, prev *parentDir, dev uint64) error {
	if a.part == nil || a.part.root == nil {
		return a.walkDir(ctx, d, dir, prev, dev)
	}
	c, whole := a.part.find(dir)
	if !whole && d.parent != nil {
		cur := &d.parent.nodes[d.slot]
		whole = d.prev == nil || d.prev.Type != tree.Dir || d.prev.Inode != cur.Inode || d.prev.DeviceID != cur.DeviceID
	}
	if whole || prev == nil || len(prev.ids) == 0 {
		a.countReplaced(ctx, d.prev, prev)
		return a.walkDir(ctx, d, dir, prev, dev)
	}
	return a.walkPartial(ctx, d, dir, prev.ids, c, dev)
}

// countReplaced adds the parent's files that a walk replaces to the
// partial counters: a file node, or every file below a directory whose
// listing is prev.
func (a *Archiver) countReplaced(ctx context.Context, n *tree.Node, prev *parentDir) {
	switch {
	case n != nil && n.Type == tree.File:
		a.part.prevFiles.Add(1)
		a.part.prevBytes.Add(int64(n.Size))
		return
	case n != nil && n.Type != tree.Dir:
		return
	case prev == nil || len(prev.ids) == 0:
		return
	}
	var files, bytes int64
	err := snapshot.Walk(ctx, a.repo, "/", prev.ids, func(_ string, c *tree.Node) error {
		if c.Type == tree.File {
			files++
			bytes += int64(c.Size)
		}
		return nil
	})
	if err != nil {
		a.log.Warn("parent listing unreadable; the snapshot's totals will be off", "err", err)
	}
	a.part.prevFiles.Add(files)
	a.part.prevBytes.Add(bytes)
}

// partialItem is a changed entry of a directory walked partially.
type partialItem struct {
	slot int
	c    *cnode
	prev *tree.Node // the parent's node of that name, nil if new
}

// walkPartial fills d with the parent's listing of dir (the tree blobs
// prevIDs), in which only the entries named in c are looked at again.
func (a *Archiver) walkPartial(ctx context.Context, d *dirState, dir string, prevIDs []id.ID, c *cnode, dev uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c == nil {
		c = &cnode{} // nothing changed below dir
	}
	// A changed marker file changes what the directory keeps: walk it
	// whole.
	if a.markerChanged(c) {
		a.countReplaced(ctx, nil, newParentDir(a.repo, prevIDs))
		return a.walkDir(ctx, d, dir, newParentDir(a.repo, prevIDs), dev)
	}
	base, err := a.loadListing(ctx, prevIDs)
	if err != nil {
		// The parent's listing cannot be reused: list the directory.
		a.log.Warn("parent listing unreadable; walking the directory whole", "dir", dir, "err", err)
		return a.walkDir(ctx, d, dir, nil, dev)
	}
	d.pending.Store(1)
	names := make([]string, 0, len(c.children))
	for name := range c.children {
		names = append(names, name)
	}
	slices.Sort(names)
	dirfd := -1
	if len(names) > 0 {
		dirfd, err = openDirNoAtime(a.src(dir))
		switch {
		case errors.Is(err, unix.ENOENT) && d.parent != nil:
			d.parent.nodes[d.slot].Type = removed
			a.vanishedEntry(dir)
			a.countReplaced(ctx, nil, newParentDir(a.repo, prevIDs))
			return a.childDone(ctx, d)
		case err != nil:
			// Keep the parent's listing: its entries are the best known.
			a.entryError(dir, tree.Dir, fmt.Errorf("open directory: %w", err))
			names = nil
		default:
			defer unix.Close(dirfd)
		}
	}
	d.nodes = make([]tree.Node, 0, len(base)+len(names))
	var items []partialItem
	i := 0
	for _, name := range names {
		for ; i < len(base) && base[i].Name < name; i++ {
			a.keepEntry(ctx, d, dir, &base[i])
		}
		var pn *tree.Node
		if i < len(base) && base[i].Name == name {
			pn = &base[i]
			i++
		}
		p := joinPath(dir, name)
		if a.match.Match(p, name) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				a.countReplaced(ctx, pn, a.subtreeOf(pn)) // removed
				continue
			}
			a.entryError(p, 0, fmt.Errorf("lstat: %w", err))
			if pn != nil {
				d.nodes = append(d.nodes, *pn)
			}
			continue
		}
		n := a.nodeFromStat(p, name, &st)
		if n.Type == tree.Socket {
			a.skip(p, "socket")
			a.countReplaced(ctx, pn, a.subtreeOf(pn))
			continue
		}
		if a.tooLarge(p, &n) {
			a.countReplaced(ctx, pn, a.subtreeOf(pn))
			continue
		}
		a.names.SetNames(&n)
		d.nodes = append(d.nodes, n)
		items = append(items, partialItem{slot: len(d.nodes) - 1, c: c.children[name], prev: pn})
	}
	for ; i < len(base); i++ {
		a.keepEntry(ctx, d, dir, &base[i])
	}
	// The listing is final: from here on workers may fill in slots.
	a.sqliteGates(d)
	for _, it := range items {
		if err := a.partialEntry(ctx, d, dir, dirfd, it, dev); err != nil {
			return err
		}
	}
	return a.childDone(ctx, d)
}

// subtreeOf returns the parent's listing of a directory node, nil for
// other nodes.
func (a *Archiver) subtreeOf(n *tree.Node) *parentDir {
	if n == nil || n.Type != tree.Dir {
		return nil
	}
	return newParentDir(a.repo, n.Subtree)
}

// loadListing decodes every node of a parent's directory listing.
func (a *Archiver) loadListing(ctx context.Context, ids []id.ID) ([]tree.Node, error) {
	p := newParentDir(a.repo, ids)
	var out []tree.Node
	for p.advance(ctx); p.cur != nil; p.advance(ctx) {
		out = append(out, *p.cur)
	}
	return out, p.err
}

// keepEntry copies an unchanged entry of the parent's listing, unless an
// exclude pattern now matches it.
func (a *Archiver) keepEntry(ctx context.Context, d *dirState, dir string, n *tree.Node) {
	if a.match.Match(joinPath(dir, n.Name), n.Name) {
		a.countReplaced(ctx, n, a.subtreeOf(n))
		return
	}
	d.nodes = append(d.nodes, *n)
}

// partialEntry handles one changed entry of a partially walked directory.
func (a *Archiver) partialEntry(ctx context.Context, d *dirState, dir string, dirfd int, it partialItem, dev uint64) error {
	n := &d.nodes[it.slot]
	p := joinPath(dir, n.Name)
	pn := it.prev
	if n.Type != tree.Dir {
		a.countReplaced(ctx, pn, a.subtreeOf(pn))
		a.markInFlux(n, p)
		return a.addEntry(ctx, d, it.slot, p, pn, dirfd)
	}
	if err := a.readMeta(n, p, pn); err != nil {
		if errors.Is(err, unix.ENOENT) {
			n.Type = removed
			a.vanishedEntry(p)
			a.countReplaced(ctx, pn, a.subtreeOf(pn))
			return nil
		}
		a.entryError(p, tree.Dir, err)
	}
	same := pn != nil && pn.Type == tree.Dir && pn.Inode == n.Inode && pn.DeviceID == n.DeviceID
	if same && !it.c.rescan && len(it.c.children) == 0 {
		// Only the directory's own metadata changed: keep its listing.
		n.Subtree = pn.Subtree
		a.countDir(n, pn)
		return nil
	}
	child := &dirState{path: p, parent: d, slot: it.slot, prev: pn}
	d.pending.Add(1)
	if !a.crosses(p, n, dev) {
		// A mount point or subvolume: keep the directory, not what is
		// mounted on it.
		a.countReplaced(ctx, pn, a.subtreeOf(pn))
		child.pending.Store(1)
		return a.childDone(ctx, child)
	}
	if same && !it.c.rescan {
		return a.walkPartial(ctx, child, p, pn.Subtree, it.c, n.DeviceID)
	}
	a.countReplaced(ctx, pn, a.subtreeOf(pn))
	pd := a.subtreeOf(pn)
	walk := func() error { return a.walkDir(ctx, child, p, pd, n.DeviceID) }
	if a.walkers == nil || !a.walkers.TryGo(walk) {
		return walk()
	}
	return nil
}

// finishPartialSummary derives the totals of a partial snapshot from the
// parent's: the files it did not look at are the parent's files less
// those it replaced, and count as unchanged.
func (a *Archiver) finishPartialSummary(s *snapshot.Summary) {
	if a.part == nil || a.part.root == nil || a.opt.Parent == nil || a.opt.Parent.Summary == nil {
		return
	}
	ps := a.opt.Parent.Summary
	keptFiles := max(0, ps.TotalFiles-a.part.prevFiles.Load())
	keptBytes := max(0, ps.TotalBytes-a.part.prevBytes.Load())
	s.TotalFiles += keptFiles
	s.TotalBytes += keptBytes
	s.FilesUnchanged += keptFiles
}

// sameAsParent reports whether the snapshot with root tree rootIDs holds
// the same backup targets as the parent: same paths, and for each the
// same node and listing. Directories above the targets are not compared:
// their times move whenever anything else happens in them (/tmp, /home).
func (a *Archiver) sameAsParent(ctx context.Context, rootIDs []id.ID, targets []string) bool {
	prev := a.opt.Parent
	if prev == nil || !slices.Equal(prev.Paths, targets) {
		return false
	}
	if slices.Equal(prev.Tree, rootIDs) {
		return true
	}
	cur := &snapshot.Snapshot{Tree: rootIDs}
	for _, t := range targets {
		n, err := snapshot.Lookup(ctx, a.repo, cur, t)
		if err != nil {
			return false
		}
		o, err := snapshot.Lookup(ctx, a.repo, prev, t)
		if err != nil {
			return false
		}
		if n.Type != o.Type || n.Inode != o.Inode || n.CTime != o.CTime || n.Flags != o.Flags || !tree.SameMeta(n, o) ||
			!slices.Equal(n.Subtree, o.Subtree) || !slices.Equal(n.Content, o.Content) || !slices.Equal(n.ContentLists, o.ContentLists) {
			return false
		}
	}
	return true
}
