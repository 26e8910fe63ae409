package archiver

// Copied files: a snapshot of single files whose content the caller has
// already copied somewhere else, consistently (a live SQLite database
// captured with its backup API), while their metadata is read from the
// files themselves. Each file is stored at its own absolute path with the
// original's mode, owner, times and xattrs, and the directories above it
// with theirs, as a walk of those paths would record them; only the
// content comes from the copy. A restore, dump or versions of the path
// sees an ordinary file.

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

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"github.com/rewind-backup/rewind/internal/ui"
	"golang.org/x/sys/unix"
)

// FileCopy is a file to store at Path (absolute) with the metadata of the
// file at Path and the content Open returns.
type FileCopy struct {
	Path string
	// Open makes the copy and returns its content, which is read to its
	// end and closed. An error leaves the file out of the snapshot.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// ErrNoFileCopied is SnapshotFiles' error when no file could be copied:
// no snapshot is stored. It wraps the files' errors.
var ErrNoFileCopied = errors.New("no file could be copied")

// SnapshotFiles stores one snapshot whose paths are the files' paths,
// copying them one at a time. A file whose Open fails is not stored and
// the summary lists it, as a walk lists files it could not read, but it
// is not one of the snapshot's paths: the snapshot says nothing of it,
// where covering its path would say it was absent. When
// every Open fails no snapshot is stored (ErrNoFileCopied). The
// archiver's Parent, if any, only counts files as new, changed or
// unchanged. A repository error stores no snapshot.
func (a *Archiver) SnapshotFiles(ctx context.Context, files []FileCopy) (*snapshot.Snapshot, error) {
	if a.opt.AfterWalk != nil {
		return nil, errors.New("internal error: late files (AfterWalk) do not apply to a snapshot of copied files")
	}
	start := time.Now()
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	targets, err := CleanTargets(paths)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 || len(targets) != len(files) {
		return nil, fmt.Errorf("snapshot of copied files: %s, %d distinct and not nested", ui.Count(int64(len(files)), "path", "paths"), len(targets))
	}
	statsBefore := a.store.stats()
	a.store.start(ctx)
	top := &graftDir{}
	var errs []error
	var stored []string
	for _, f := range files {
		p := path.Clean(f.Path)
		n, err := a.copiedNode(ctx, p, f.Open)
		var re *repoError
		switch {
		case errors.As(err, &re) || ctx.Err() != nil:
			a.store.flush(ctx)
			return nil, err
		case err != nil:
			a.fileError(p, err)
			errs = append(errs, err)
			continue
		}
		top.add(strings.Split(strings.TrimPrefix(p, "/"), "/"), n)
		stored = append(stored, p)
	}
	if len(errs) == len(files) {
		a.store.flush(ctx)
		return nil, fmt.Errorf("%w: %w", ErrNoFileCopied, errors.Join(errs...))
	}
	slices.Sort(stored)
	var prev *parentDir
	if a.opt.Parent != nil {
		prev = newParentDir(a.repo, a.opt.Parent.Tree)
	}
	root, err := a.encodeCopied(ctx, "/", top, prev)
	if ferr := a.store.flush(ctx); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	after := a.store.stats()
	sn := &snapshot.Snapshot{
		Time: start.UTC(), Tree: root, Paths: stored, Hostname: a.opt.Hostname,
		Username: a.names.User(uid), UID: uid, GID: gid, Tags: a.opt.Tags,
		ProgramVersion: a.opt.ProgramVersion,
		Summary: &snapshot.Summary{
			BackupStart: start.UTC(), BackupEnd: time.Now().UTC(),
			FilesNew: a.st.filesNew.Load(), FilesChanged: a.st.filesChanged.Load(), FilesUnchanged: a.st.filesUnchanged.Load(),
			DirsNew: a.st.dirsNew.Load(), DirsChanged: a.st.dirsChanged.Load(), DirsUnchanged: a.st.dirsUnchanged.Load(),
			TotalFiles: a.st.totalFiles.Load(), TotalBytes: a.st.totalBytes.Load(), BytesRead: a.st.bytesRead.Load(),
			DataBlobs: after.dataBlobs - statsBefore.dataBlobs, TreeBlobs: after.treeBlobs - statsBefore.treeBlobs,
			DataAdded: after.added - statsBefore.added, DataStored: after.stored - statsBefore.stored,
			Errors: a.errs,
		},
	}
	if a.opt.Parent != nil {
		p := a.opt.Parent.ID
		sn.Parent = &p
	}
	return a.commit(ctx, sn)
}

// copiedNode is the node of the file at p (its metadata) with the content
// open returns.
func (a *Archiver) copiedNode(ctx context.Context, p string, open func(context.Context) (io.ReadCloser, error)) (tree.Node, error) {
	rc, err := open(ctx)
	if err != nil {
		return tree.Node{}, err
	}
	defer rc.Close()
	var st unix.Stat_t
	if err := unix.Lstat(a.src(p), &st); err != nil {
		return tree.Node{}, fmt.Errorf("%s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return tree.Node{}, fmt.Errorf("%s: not a regular file", p)
	}
	n := a.nodeFromStat(p, path.Base(p), &st)
	a.names.SetNames(&n)
	if err := a.readMeta(&n, p, nil); err != nil {
		a.log.Debug("xattrs not read", "path", p, "err", err)
	}
	// The small-chunk profile, as for a large file rewritten in place:
	// a database changes a few pages between copies.
	chunks, total, err := a.storeStream(ctx, rc, repository.ProfileSmall)
	if err != nil {
		return tree.Node{}, &repoError{fmt.Errorf("the copy of %s: %w", p, err)}
	}
	if err := a.setContent(ctx, &n, chunks, total); err != nil {
		return tree.Node{}, err
	}
	a.st.totalFiles.Add(1)
	a.st.totalBytes.Add(total)
	return n, nil
}

// encodeCopied stores the listing of dir holding g's files and the
// directories on the way to the others, each with its metadata read from
// disk (or made, when it is gone), and counts them against the parent's
// listing prev.
func (a *Archiver) encodeCopied(ctx context.Context, dir string, g *graftDir, prev *parentDir) ([]id.ID, error) {
	var names []string
	for name := range g.files {
		names = append(names, name)
	}
	for name := range g.dirs {
		names = append(names, name)
	}
	slices.Sort(names)
	nodes := make([]tree.Node, 0, len(names))
	for _, name := range names {
		p := joinPath(dir, name)
		pn := prev.find(ctx, name)
		if n, ok := g.files[name]; ok {
			a.countCopied(&n, pn)
			nodes = append(nodes, n)
			continue
		}
		n := a.madeDir(name)
		var st unix.Stat_t
		if err := unix.Lstat(a.src(p), &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			n = a.nodeFromStat(p, name, &st)
			a.names.SetNames(&n)
			if err := a.readMeta(&n, p, pn); err != nil {
				a.log.Debug("xattrs not read", "path", p, "err", err)
			}
		}
		var sub *parentDir
		if pn != nil && pn.Type == tree.Dir {
			sub = newParentDir(a.repo, pn.Subtree)
		}
		ids, err := a.encodeCopied(ctx, p, g.dirs[name], sub)
		if err != nil {
			return nil, err
		}
		n.Subtree = ids
		switch {
		case pn == nil || pn.Type != tree.Dir:
			a.st.dirsNew.Add(1)
		case slices.Equal(pn.Subtree, ids):
			a.st.dirsUnchanged.Add(1)
		default:
			a.st.dirsChanged.Add(1)
		}
		nodes = append(nodes, n)
	}
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

// countCopied counts a copied file as new, changed or unchanged: by its
// content, since a copy is read whole each time.
func (a *Archiver) countCopied(n, prev *tree.Node) {
	switch {
	case prev == nil || prev.Type != tree.File:
		a.st.filesNew.Add(1)
	case prev.Size == n.Size && slices.Equal(prev.Content, n.Content) && slices.Equal(prev.ContentLists, n.ContentLists):
		a.st.filesUnchanged.Add(1)
	default:
		a.st.filesChanged.Add(1)
	}
}
