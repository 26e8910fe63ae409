package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// RepoCommitter saves batches as snapshots of a repository.
//
// Each capture takes its own shared lock and gives it back once the
// snapshot is stored, so that a prune's fence (docs/FORMAT.md §12) never
// waits on the watcher for longer than one capture. Since the lock must be
// taken before the index is read, every capture brings the in-memory index
// up to date after locking: it lists the index files and reads only the
// new ones. If any file it had read is gone or superseded (a prune or
// repair index ran), it reads the whole index again.
//
// A partial snapshot reuses the parent's subtrees without looking at the
// blobs below them, which is only safe if all of them are in the index
// (§12: a blob that a prune condemned must not be referenced again without
// a check). That holds for a parent made, or confirmed, by a full walk
// against an index that has only grown since: a full walk checks every
// chunk list it reuses and stores every listing the index lacks. So the
// first capture, and the first after the index was read again, walk
// everything; the others may be partial.
type RepoCommitter struct {
	Repo *repository.Repository
	// Lock takes a shared lock for one capture; check reports a lock
	// that can no longer be trusted, release gives it back.
	Lock func(ctx context.Context) (check func() error, release func(), err error)
	// Archive holds the options of every snapshot (host, tags, excludes,
	// logger, program version). Parent, Changes, InFlux and
	// SkipUnchanged are set per capture.
	Archive archiver.Options
	// Paths are the backup targets (the watched roots).
	Paths []string
	// Parent is the snapshot to compare the first capture with; then the
	// last one saved.
	Parent *snapshot.Snapshot
	Log    *slog.Logger

	indexFiles map[id.ID]bool // index files read so far
	verified   bool           // Parent's blobs are all in the index
}

// Commit captures one batch. It saves nothing (and returns a nil
// Snapshot) when nothing changed since the parent.
func (c *RepoCommitter) Commit(ctx context.Context, b Batch) (Result, error) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	check, release, err := c.Lock(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()
	reset, err := c.loadIndex(ctx, log)
	if err != nil {
		return Result{}, err
	}
	if reset {
		c.verified = false
	}
	full := b.Full || !c.verified || c.Parent == nil
	opt := c.Archive
	opt.Parent, opt.InFlux, opt.SkipUnchanged = c.Parent, b.InFlux, c.Parent != nil
	opt.Changes = nil
	if !full {
		opt.Changes = &archiver.Changes{Paths: b.Paths, Rescan: b.Rescan}
	}
	before := c.Archive.BeforeCommit
	opt.BeforeCommit = func(ctx context.Context) error {
		// A lock that may have been taken for stale lets a prune delete
		// data this snapshot refers to: do not commit it.
		if err := check(); err != nil {
			return fmt.Errorf("snapshot not saved: %w", err)
		}
		if before != nil {
			return before(ctx)
		}
		return nil
	}
	a, err := archiver.New(c.Repo, opt)
	if err != nil {
		return Result{}, err
	}
	sn, err := a.Snapshot(ctx, c.Paths)
	if err == nil || errors.Is(err, archiver.ErrUnchanged) {
		c.skipOwnIndexFiles(ctx, log)
	}
	switch {
	case errors.Is(err, archiver.ErrUnchanged):
		if full {
			c.verified = true
		}
		return Result{Full: full}, nil
	case err != nil:
		return Result{Full: full}, err
	}
	for _, e := range sn.Summary.Errors {
		log.Warn("file not backed up whole", "path", e.Path, "err", e.Error)
	}
	c.Parent, c.verified = sn, true
	return Result{Snapshot: sn, Full: full}, nil
}

// loadIndex brings the in-memory index up to date. reset is true when it
// was read again from scratch.
func (c *RepoCommitter) loadIndex(ctx context.Context, log *slog.Logger) (reset bool, err error) {
	r := c.Repo
	if c.indexFiles != nil {
		names, err := r.List(ctx, backend.IndexFile)
		if err != nil {
			return false, err
		}
		ok, err := c.addIndexFiles(ctx, names)
		if err != nil {
			return false, err
		}
		if ok {
			return false, nil
		}
		log.Info("index files were replaced (prune or repair): reading the index again; the next snapshot walks everything")
	}
	first := c.indexFiles == nil
	r.ResetIndex()
	names, _, err := r.LoadIndexFiles(ctx)
	if err != nil {
		return true, fmt.Errorf("load index: %w", err)
	}
	c.indexFiles = make(map[id.ID]bool, len(names))
	for _, n := range names {
		c.indexFiles[n] = true
	}
	if first {
		// Packs stored by a backup killed before it wrote its index are
		// listed now, as a backup does, so that their blobs are reused.
		recovered, skipped, err := r.IndexUnindexedPacks(ctx)
		if err != nil {
			return true, fmt.Errorf("index packs of interrupted backups: %w", err)
		}
		for _, p := range skipped {
			log.Warn("unreadable pack left out of the index", "pack", p.Pack.String(), "err", p.Err)
		}
		if recovered > 0 {
			log.Info("indexed packs left by an interrupted backup", "packs", recovered)
		}
	}
	return true, nil
}

// skipOwnIndexFiles counts the index files stored so far as read. Those
// this capture wrote list packs that are in memory already; reading them
// back, which the next capture would do, costs as much as the first read
// of the index after a capture that stored many packs. Files of others
// that appeared meanwhile are skipped too: the index then lacks their
// blobs, which costs only deduplication (a blob not found is stored
// again, a file whose chunks are not found is read again), never safety.
func (c *RepoCommitter) skipOwnIndexFiles(ctx context.Context, log *slog.Logger) {
	names, err := c.Repo.List(ctx, backend.IndexFile)
	if err != nil {
		log.Debug("list index files", "err", err)
		return
	}
	for _, n := range names {
		c.indexFiles[n] = true
	}
}

// addIndexFiles reads the index files of names not read yet into the
// index. ok is false when the index must be read again instead: a file
// read before is gone, or a new one supersedes others.
func (c *RepoCommitter) addIndexFiles(ctx context.Context, names []id.ID) (ok bool, err error) {
	listed := make(map[id.ID]bool, len(names))
	for _, n := range names {
		listed[n] = true
	}
	for n := range c.indexFiles {
		if !listed[n] {
			return false, nil
		}
	}
	var fresh []*index.File
	var added []id.ID
	for _, n := range names {
		if c.indexFiles[n] {
			continue
		}
		f, err := c.Repo.LoadIndexFile(ctx, n)
		if backend.IsNotExist(err) || errors.Is(err, repository.ErrCorrupt) {
			// Gone, or damaged: a full load copes with either.
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("load index file %s: %w", n.Short(), err)
		}
		if len(f.Supersedes) > 0 {
			return false, nil
		}
		added = append(added, n)
		// Most new files list this watcher's own packs, which are in
		// memory already; merging them again would cost a pass over the
		// whole index for nothing.
		var packs []index.PackEntry
		for _, p := range f.Packs {
			for _, bl := range p.Blobs {
				if !c.Repo.HasBlob(bl.ID) {
					packs = append(packs, p)
					break
				}
			}
		}
		if len(packs) > 0 {
			fresh = append(fresh, &index.File{Packs: packs})
		}
	}
	if len(fresh) > 0 {
		c.Repo.Index().AddFiles(fresh)
	}
	for _, n := range added {
		c.indexFiles[n] = true
	}
	return true, nil
}
