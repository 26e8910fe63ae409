package archiver

// Late files: a database's online backup knows some of its files only
// once the walk is over. PostgreSQL hands out backup_label and
// tablespace_map when the backup stops, and the WAL written during the
// walk is complete only then; both must sit in the snapshot beside the
// files that were walked, at the place PostgreSQL looks for them on
// restore. Options.AfterWalk names them, and they are grafted into the
// finished tree: the blobs of the walk are flushed, so that its listings
// can be read back, then each directory on the way from the root to a
// late file is decoded, given the new entries and encoded again. Only
// those directories are rewritten; the listings they replace stay in the
// repository as unreferenced tree blobs (a few, small) until prune.

import (
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// LateFile is a regular file added to a snapshot after its walk.
type LateFile struct {
	// Path is the file's absolute path in the snapshot; it must be below a
	// backup target. An entry of that name from the walk is replaced, and
	// directories missing on the way (or not directories in the walk, such
	// as a symlink) are made as directories of mode 0700 owned by the
	// user running the backup.
	Path string
	// Source is the file on disk its content and metadata are read from.
	Source string
}

// graftLate stores the late files and returns the root tree with them in
// place. The store must be started; graftLate flushes it first and leaves
// it started.
func (a *Archiver) graftLate(ctx context.Context, root []id.ID, targets []string, late []LateFile) ([]id.ID, error) {
	if err := a.store.flush(ctx); err != nil {
		return nil, err
	}
	a.store.start(ctx)
	top := &graftDir{}
	for _, lf := range late {
		p := path.Clean(lf.Path)
		if !slices.ContainsFunc(targets, func(t string) bool { return t == "/" || strings.HasPrefix(p, t+"/") }) {
			return nil, fmt.Errorf("late file %s: not below a backup target", lf.Path)
		}
		n, err := a.lateNode(ctx, path.Base(p), lf.Source)
		if err != nil {
			return nil, err
		}
		top.add(strings.Split(strings.TrimPrefix(p, "/"), "/"), n)
	}
	return a.graftDir(ctx, root, top)
}

// graftDir is a directory on the way to late files: the files to put in
// it and the subdirectories to go into.
type graftDir struct {
	files map[string]tree.Node
	dirs  map[string]*graftDir
}

func (g *graftDir) add(parts []string, n tree.Node) {
	if len(parts) == 1 {
		if g.files == nil {
			g.files = map[string]tree.Node{}
		}
		g.files[parts[0]] = n
		return
	}
	if g.dirs == nil {
		g.dirs = map[string]*graftDir{}
	}
	sub := g.dirs[parts[0]]
	if sub == nil {
		sub = &graftDir{}
		g.dirs[parts[0]] = sub
	}
	sub.add(parts[1:], n)
}

// graftDir rewrites the listing ids (nil: a new, empty directory) with
// g's files and subdirectories in it, and returns the new listing.
func (a *Archiver) graftDir(ctx context.Context, ids []id.ID, g *graftDir) ([]id.ID, error) {
	var nodes []tree.Node
	if len(ids) > 0 {
		var err error
		if nodes, err = a.loadListing(ctx, ids); err != nil {
			return nil, fmt.Errorf("read back a listing to add late files: %w", err)
		}
	}
	byName := make(map[string]int, len(nodes))
	for i := range nodes {
		byName[nodes[i].Name] = i
	}
	put := func(n tree.Node) {
		if i, ok := byName[n.Name]; ok {
			nodes[i] = n
			return
		}
		byName[n.Name] = len(nodes)
		nodes = append(nodes, n)
	}
	for _, n := range g.files {
		put(n)
	}
	for name, sub := range g.dirs {
		var n tree.Node
		if i, ok := byName[name]; ok && nodes[i].Type == tree.Dir {
			n = nodes[i]
		} else {
			n = a.madeDir(name)
		}
		sids, err := a.graftDir(ctx, n.Subtree, sub)
		if err != nil {
			return nil, err
		}
		n.Subtree = sids
		put(n)
	}
	slices.SortFunc(nodes, func(x, y tree.Node) int { return strings.Compare(x.Name, y.Name) })
	b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
		return a.store.saveBlob(ctx, pack.TreeBlob, blob)
	}}
	for i := range nodes {
		if err := b.Add(&nodes[i]); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// madeDir is a directory a late file needs that the walk did not record.
func (a *Archiver) madeDir(name string) tree.Node {
	now := time.Now().UnixNano()
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	return tree.Node{Name: name, Type: tree.Dir, Mode: 0o700, UID: uid, GID: gid,
		User: a.names.User(uid), Group: a.names.Group(gid), Links: 2, MTime: now, CTime: now, ATime: now}
}

// lateNode reads a late file's metadata and content into a node named
// name. Late files are read once: they are written by the caller and do
// not change while read.
func (a *Archiver) lateNode(ctx context.Context, name, src string) (tree.Node, error) {
	f, err := os.Open(src)
	if err != nil {
		return tree.Node{}, fmt.Errorf("late file: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return tree.Node{}, fmt.Errorf("late file %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return tree.Node{}, fmt.Errorf("late file %s: not a regular file", src)
	}
	n := a.nodeFromStat(src, name, &st)
	a.names.SetNames(&n)
	// Late files are WAL segments and labels: rewritten whole next time,
	// mostly the same, so the small-chunk profile finds more of them again.
	chunks, total, err := a.storeStream(ctx, f, repository.ProfileSmall)
	if err != nil {
		return tree.Node{}, fmt.Errorf("late file %s: %w", src, err)
	}
	if total != st.Size {
		return tree.Node{}, fmt.Errorf("late file %s: changed while read (%d bytes read, %d expected)", src, total, st.Size)
	}
	if err := a.setContent(ctx, &n, chunks, total); err != nil {
		return tree.Node{}, err
	}
	a.st.totalFiles.Add(1)
	a.st.totalBytes.Add(total)
	a.st.filesNew.Add(1)
	return n, nil
}
