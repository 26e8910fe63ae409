package repository

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"golang.org/x/sync/errgroup"
)

// PackError names a pack whose header could not be read. Such packs are
// left in place and out of the index: nothing here deletes data.
type PackError struct {
	Pack id.ID
	Err  error
}

func (e PackError) Error() string { return fmt.Sprintf("pack %s: %v", e.Pack, e.Err) }

// RebuildResult says what RebuildIndex did.
type RebuildResult struct {
	// PacksIndexed is the number of packs the new index file lists.
	PacksIndexed int
	// IndexFilesRemoved is the number of old index files replaced.
	IndexFilesRemoved int
	// Skipped lists the packs whose headers could not be read.
	Skipped []PackError
}

// IndexUnindexedPacks finds the packs stored in the backend that no loaded
// index file lists (left by a backup killed before it wrote its index),
// reads their headers, adds their blobs to the in-memory index and writes
// one index file for them. The index must be loaded first. It costs one
// List of the packs plus one header read per unindexed pack. Packs whose
// header cannot be read are skipped and returned, never deleted. It must
// not be called between StartWriting and Flush.
func (r *Repository) IndexUnindexedPacks(ctx context.Context) (packs int, skipped []PackError, err error) {
	stored, err := r.List(ctx, backend.PackFile)
	if err != nil {
		return 0, nil, err
	}
	known := make(map[id.ID]struct{})
	for _, p := range r.idx.Packs() {
		known[p] = struct{}{}
	}
	var missing []id.ID
	for _, p := range stored {
		// A condemned pack is out of the index on purpose; indexing it
		// again would let new backups deduplicate against data that is
		// about to be deleted.
		if _, ok := known[p]; !ok && !r.Condemned(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return 0, nil, nil
	}
	entries, skipped, err := r.readPackHeaders(ctx, missing)
	if err != nil {
		return 0, skipped, err
	}
	if len(entries) == 0 {
		return 0, skipped, nil
	}
	f := &index.File{Packs: entries}
	if err := r.saveIndexFile(ctx, f); err != nil {
		return 0, skipped, err
	}
	r.idx.AddFiles([]*index.File{f})
	return len(entries), skipped, nil
}

// RebuildIndex replaces every index file by one built from the headers of
// all stored packs. The new index file supersedes the old ones and is
// written before they are removed, so that a crash at any point leaves a
// complete index. Packs whose header cannot be read are skipped and
// reported; their blobs are then missing from the index, which check
// reports. The in-memory index is replaced by the rebuilt one.
func (r *Repository) RebuildIndex(ctx context.Context) (*RebuildResult, error) {
	old, err := r.List(ctx, backend.IndexFile)
	if err != nil {
		return nil, err
	}
	stored, err := r.List(ctx, backend.PackFile)
	if err != nil {
		return nil, err
	}
	entries, skipped, err := r.readPackHeaders(ctx, stored)
	if err != nil {
		return nil, err
	}
	res := &RebuildResult{PacksIndexed: len(entries), Skipped: skipped}
	slices.SortFunc(old, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
	f := &index.File{Supersedes: old, Packs: entries}
	if err := r.saveIndexFile(ctx, f); err != nil {
		return res, err
	}
	idx := index.New()
	idx.AddFiles([]*index.File{f})
	r.idx = idx
	for _, name := range old {
		h := backend.Handle{Type: backend.IndexFile, Name: name.String()}
		if err := r.be.Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
			return res, fmt.Errorf("remove a superseded index file: %w", backend.Wrap("remove", h.String(), err))
		}
		res.IndexFilesRemoved++
	}
	return res, nil
}

// readPackHeaders reads the headers of packs concurrently. It returns the
// packs that could be read, sorted by ID, and the ones that could not.
func (r *Repository) readPackHeaders(ctx context.Context, packs []id.ID) ([]index.PackEntry, []PackError, error) {
	var (
		mu      sync.Mutex
		entries []index.PackEntry
		skipped []PackError
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	for _, p := range packs {
		g.Go(func() error {
			blobs, err := r.ReadPackHeader(gctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				skipped = append(skipped, PackError{Pack: p, Err: err})
				return nil
			}
			entries = append(entries, index.PackEntry{ID: p, Blobs: blobs})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, fmt.Errorf("read pack headers: %w", err)
	}
	slices.SortFunc(entries, func(a, b index.PackEntry) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	slices.SortFunc(skipped, func(a, b PackError) int { return bytes.Compare(a.Pack[:], b.Pack[:]) })
	return entries, skipped, nil
}
