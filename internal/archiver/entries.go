package archiver

// Entries: a snapshot built from entries handed over one at a time, in
// any order, instead of from a walk of the filesystem. A tar stream (a
// PostgreSQL base backup sent over the replication protocol) is stored
// this way without a copy on disk: each file's content is chunked and
// saved as it is read from the stream, and only the nodes (metadata and
// chunk lists, no content) are held in memory until Commit encodes the
// listings bottom-up.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Entries collects the entries of a snapshot whose one path is Root.
// Make it with NewEntries, Add every entry, then Commit (or Abort).
type Entries struct {
	a     *Archiver
	root  string
	start time.Time
	top   *entryDir
	// prev holds the parent snapshot's files and directories below root,
	// by path relative to root ("" the root), to count new, changed and
	// unchanged ones.
	prev        map[string]*tree.Node
	statsBefore repoStats
	done        bool
}

type entryDir struct {
	node tree.Node // Name, metadata; Subtree is filled in by Commit
	seen bool      // node came from an Add, not made for a child
	dirs map[string]*entryDir
	// other are the entries that are not directories, by name.
	other map[string]tree.Node
}

// NewEntries starts a snapshot of entries below root (an absolute path,
// the snapshot's one path). The archiver's Options apply as for
// Snapshot: Parent (only to count files as new, changed or unchanged),
// hooks, tags, progress. Excludes do not: the producer of the entries
// chooses them.
func (a *Archiver) NewEntries(ctx context.Context, root string) (*Entries, error) {
	if a.opt.AfterWalk != nil {
		return nil, errors.New("internal error: late files (AfterWalk) do not apply to a snapshot of entries")
	}
	targets, err := CleanTargets([]string{root})
	if err != nil {
		return nil, err
	}
	if len(targets) != 1 || targets[0] == "/" {
		return nil, fmt.Errorf("snapshot of entries: root %q must be an absolute path below /", root)
	}
	e := &Entries{a: a, root: targets[0], start: time.Now(), top: &entryDir{node: a.madeDir(path.Base(targets[0]))}}
	if a.opt.Parent != nil {
		if e.prev, err = a.parentFiles(ctx, e.root); err != nil {
			return nil, fmt.Errorf("read the parent snapshot: %w", err)
		}
	}
	e.statsBefore = a.store.stats()
	a.store.start(ctx)
	return e, nil
}

// Root is the snapshot's one path.
func (e *Entries) Root() string { return e.root }

// Add stores the entry at rel (a path relative to the root, "/"
// separated; "" or "." is the root itself, which must be a directory)
// with the metadata of n (its Name is set from rel). A regular file's
// content is read from content to its end with the repository's
// small-chunk profile, the one base backups use for every file, and its
// Size set from what was read; content is ignored for other types. An
// entry added twice is an error. It returns the bytes read.
func (e *Entries) Add(ctx context.Context, rel string, n tree.Node, content io.Reader) (int64, error) {
	if e.done {
		return 0, errors.New("internal error: entry added after Commit or Abort")
	}
	parts, err := splitRel(rel)
	if err != nil {
		return 0, err
	}
	if len(parts) == 0 {
		if n.Type != tree.Dir {
			return 0, fmt.Errorf("entry %q: the root must be a directory", rel)
		}
		n.Name = e.top.node.Name
		e.top.node, e.top.seen = n, true
		return 0, nil
	}
	d := e.top
	for _, p := range parts[:len(parts)-1] {
		sub := d.dirs[p]
		if sub == nil {
			if _, ok := d.other[p]; ok {
				return 0, fmt.Errorf("entry %q: %s is not a directory", rel, p)
			}
			sub = &entryDir{node: e.a.madeDir(p)}
			if d.dirs == nil {
				d.dirs = map[string]*entryDir{}
			}
			d.dirs[p] = sub
		}
		d = sub
	}
	name := parts[len(parts)-1]
	n.Name = name
	_, isOther := d.other[name]
	sub := d.dirs[name]
	if isOther || (sub != nil && sub.seen) {
		return 0, fmt.Errorf("entry %q appears twice", rel)
	}
	if n.Type == tree.Dir {
		if sub == nil {
			sub = &entryDir{}
			if d.dirs == nil {
				d.dirs = map[string]*entryDir{}
			}
			d.dirs[name] = sub
		}
		sub.node, sub.seen = n, true
		return 0, nil
	}
	if sub != nil {
		return 0, fmt.Errorf("entry %q: both a directory and a %s", rel, n.Type)
	}
	var total int64
	if n.Type == tree.File {
		e.a.prog.Scanned(1, int64(n.Size))
		chunks, got, err := e.a.storeStream(ctx, content, repository.ProfileSmall)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", rel, err)
		}
		if err := e.a.setContent(ctx, &n, chunks, got); err != nil {
			return 0, err
		}
		total = got
		e.count(strings.Join(parts, "/"), &n)
		e.a.prog.Done(1, 0)
	}
	if d.other == nil {
		d.other = map[string]tree.Node{}
	}
	d.other[name] = n
	return total, nil
}

// count classifies a stored file against the parent snapshot's.
func (e *Entries) count(rel string, n *tree.Node) {
	st := &e.a.st
	st.totalFiles.Add(1)
	st.totalBytes.Add(int64(n.Size))
	prev := e.prev[rel]
	switch {
	case prev == nil || prev.Type != tree.File:
		st.filesNew.Add(1)
	case prev.Size == n.Size && slices.Equal(prev.Content, n.Content) && slices.Equal(prev.ContentLists, n.ContentLists) && tree.SameMeta(prev, n):
		st.filesUnchanged.Add(1)
	default:
		st.filesChanged.Add(1)
	}
}

func splitRel(rel string) ([]string, error) {
	clean := path.Clean("/" + rel)
	if strings.HasPrefix(rel, "/") || slices.Contains(strings.Split(rel, "/"), "..") {
		return nil, fmt.Errorf("entry %q: not a relative path inside the snapshot", rel)
	}
	if clean == "/" {
		return nil, nil
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	for _, p := range parts {
		if err := fs.ValidName(p); err != nil {
			return nil, fmt.Errorf("entry %q: %w", rel, err)
		}
	}
	return parts, nil
}

// Commit encodes the listings, stores the snapshot (running the
// BeforeCommit and BeforeSave hooks) and returns it.
func (e *Entries) Commit(ctx context.Context) (*snapshot.Snapshot, error) {
	if e.done {
		return nil, errors.New("internal error: Commit after Commit or Abort")
	}
	e.done = true
	a := e.a
	ids, err := e.encode(ctx, e.top, "")
	var root []id.ID
	if err == nil {
		root, err = e.above(ctx, e.top.node, ids)
	}
	if ferr := a.store.flush(ctx); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	uid := uint32(os.Getuid())
	sn := &snapshot.Snapshot{
		Time: e.start.UTC(), Tree: root, Paths: []string{e.root}, Hostname: a.opt.Hostname,
		Username: a.names.User(uid), UID: uid, GID: uint32(os.Getgid()), Tags: a.opt.Tags,
		ProgramVersion: a.opt.ProgramVersion,
	}
	if a.opt.Parent != nil {
		p := a.opt.Parent.ID
		sn.Parent = &p
	}
	after := a.store.stats()
	sn.Summary = &snapshot.Summary{
		BackupStart: e.start.UTC(), BackupEnd: time.Now().UTC(),
		FilesNew: a.st.filesNew.Load(), FilesChanged: a.st.filesChanged.Load(), FilesUnchanged: a.st.filesUnchanged.Load(),
		DirsNew: a.st.dirsNew.Load(), DirsChanged: a.st.dirsChanged.Load(), DirsUnchanged: a.st.dirsUnchanged.Load(),
		TotalFiles: a.st.totalFiles.Load(), TotalBytes: a.st.totalBytes.Load(), BytesRead: a.st.bytesRead.Load(),
		DataBlobs: after.dataBlobs - e.statsBefore.dataBlobs, TreeBlobs: after.treeBlobs - e.statsBefore.treeBlobs,
		DataAdded: after.added - e.statsBefore.added, DataStored: after.stored - e.statsBefore.stored,
	}
	return a.commit(ctx, sn)
}

// Abort ends a snapshot that will not be committed: the data stored so
// far is flushed, so that the next backup reuses it, and no snapshot is
// saved.
func (e *Entries) Abort(ctx context.Context) error {
	if e.done {
		return nil
	}
	e.done = true
	return e.a.store.flush(ctx)
}

// encode stores d, at rel, its listing, its subdirectories first, and
// returns it.
func (e *Entries) encode(ctx context.Context, d *entryDir, rel string) ([]id.ID, error) {
	nodes := make([]tree.Node, 0, len(d.dirs)+len(d.other))
	for name, sub := range d.dirs {
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		ids, err := e.encode(ctx, sub, p)
		if err != nil {
			return nil, err
		}
		n := sub.node
		n.Subtree = ids
		e.a.countDir(&n, e.prev[p])
		nodes = append(nodes, n)
	}
	for _, n := range d.other {
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(x, y tree.Node) int { return strings.Compare(x.Name, y.Name) })
	b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
		return e.a.store.saveBlob(ctx, pack.TreeBlob, blob)
	}}
	for i := range nodes {
		if err := b.Add(&nodes[i]); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// above stores the root's node and the directories above it up to /, and
// returns the snapshot's tree. Directories above the root get mode 0700
// and the user running the backup as owner, as a stream's do.
func (e *Entries) above(ctx context.Context, rootNode tree.Node, ids []id.ID) ([]id.ID, error) {
	n := rootNode
	n.Subtree = ids
	e.a.countDir(&n, e.prev[""])
	for dir := e.root; ; dir = path.Dir(dir) {
		b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
			return e.a.store.saveBlob(ctx, pack.TreeBlob, blob)
		}}
		if err := b.Add(&n); err != nil {
			return nil, err
		}
		listing, err := b.Finish()
		if err != nil {
			return nil, err
		}
		up := path.Dir(dir)
		if up == "/" {
			return listing, nil
		}
		n = e.a.madeDir(path.Base(up))
		n.Subtree = listing
	}
}

// parentFiles reads the parent snapshot's files and directories below
// root.
func (a *Archiver) parentFiles(ctx context.Context, root string) (map[string]*tree.Node, error) {
	ids := a.opt.Parent.Tree
	var rootNode *tree.Node
	for _, el := range strings.Split(strings.TrimPrefix(root, "/"), "/") {
		nodes, err := a.loadListing(ctx, ids)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(nodes, func(n tree.Node) bool { return n.Name == el && n.Type == tree.Dir })
		if i < 0 {
			return map[string]*tree.Node{}, nil
		}
		rootNode = &nodes[i]
		ids = nodes[i].Subtree
	}
	out := map[string]*tree.Node{"": rootNode}
	var walk func(ids []id.ID, prefix string) error
	walk = func(ids []id.ID, prefix string) error {
		nodes, err := a.loadListing(ctx, ids)
		if err != nil {
			return err
		}
		for i := range nodes {
			n := &nodes[i]
			switch n.Type {
			case tree.Dir:
				out[prefix+n.Name] = n
				if err := walk(n.Subtree, prefix+n.Name+"/"); err != nil {
					return err
				}
			case tree.File:
				out[prefix+n.Name] = n
			}
		}
		return nil
	}
	return out, walk(ids, "")
}
