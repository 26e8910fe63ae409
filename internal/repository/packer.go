package repository

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
	"golang.org/x/sync/errgroup"
)

// packUploaders is how many finished packs are stored at once. Finished
// packs wait in spool files, so this bounds disk use, not memory.
const packUploaders = 2

// indexEvery is how many new packs are listed before an index file is
// written, so that a killed backup leaves most of its work indexed.
const indexEvery = 32

// writer is the write side of a repository between StartWriting and Flush.
type writer struct {
	mu       sync.Mutex // guards open, inflight, newPacks
	open     [3]*spool  // by pack.BlobType
	inflight map[id.ID]struct{}
	newPacks []index.PackEntry

	queue chan *spool
	group *errgroup.Group
	gctx  context.Context
}

// StartWriting starts the pack uploaders. Every SaveBlob must happen between
// StartWriting and Flush, with the ctx given here governing the uploads.
func (r *Repository) StartWriting(ctx context.Context) {
	g, gctx := errgroup.WithContext(ctx)
	w := &writer{
		inflight: make(map[id.ID]struct{}),
		queue:    make(chan *spool),
		group:    g,
		gctx:     gctx,
	}
	for range packUploaders {
		g.Go(func() error {
			for s := range w.queue {
				if err := r.storePack(gctx, w, s); err != nil {
					// Drain so that senders never block on a dead uploader.
					for s := range w.queue {
						s.close()
					}
					return err
				}
			}
			return nil
		})
	}
	r.w = w
}

// Reserve claims a blob ID for the caller to store with SaveReserved. It
// returns false when the blob is stored already or another caller has
// claimed it, so that each new blob is compressed and sealed once however
// many files hold it. Reservations end when the blob's pack is stored.
func (r *Repository) Reserve(i id.ID) (bool, error) {
	w := r.w
	if w == nil {
		return false, errors.New("internal error: blob saved outside StartWriting/Flush")
	}
	// Callers look the ID up in the index first (the common case of a
	// known blob costs no lock); the lookup under mu settles races.
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.inflight[i]; dup || r.idx.Has(i) {
		return false, nil
	}
	w.inflight[i] = struct{}{}
	return true, nil
}

// addSealed appends a sealed, reserved blob to the open pack of its type
// and hands full packs to the uploaders.
func (r *Repository) addSealed(ctx context.Context, t pack.BlobType, i id.ID, sealed []byte, rawLen int, compressed bool) error {
	w := r.w
	w.mu.Lock()
	s := w.open[t]
	if s == nil {
		var err error
		if s, err = newSpool(r.be, t); err != nil {
			w.mu.Unlock()
			return err
		}
		w.open[t] = s
	}
	if err := s.pw.Add(t, i, sealed, rawLen, compressed); err != nil {
		w.mu.Unlock()
		return fmt.Errorf("spool pack: %w", err)
	}
	var full *spool
	if s.pw.Size() >= int64(r.cfg.PackSize) {
		full = s
		w.open[t] = nil
	}
	w.mu.Unlock()
	if full != nil {
		return r.enqueue(ctx, full)
	}
	return nil
}

func (r *Repository) enqueue(ctx context.Context, s *spool) error {
	select {
	case r.w.queue <- s:
		return nil
	case <-r.w.gctx.Done():
		s.close()
		return fmt.Errorf("store pack: %w", context.Cause(r.w.gctx))
	case <-ctx.Done():
		s.close()
		return ctx.Err()
	}
}

// storePack finishes, names and stores one pack, then makes its blobs
// visible in the index.
func (r *Repository) storePack(ctx context.Context, w *writer, s *spool) error {
	defer s.close()
	pid, blobs, size, err := s.finish(r.key)
	if err != nil {
		return err
	}
	h := backend.Handle{Type: backend.PackFile, Name: pid.String()}
	if err := s.store(ctx, r.be, h, size); err != nil {
		return fmt.Errorf("store pack %s: %w", pid.Short(), err)
	}
	r.stats.addPack(size)
	r.idx.AddPack(pid, blobs)
	w.mu.Lock()
	for _, b := range blobs {
		delete(w.inflight, b.ID)
	}
	w.newPacks = append(w.newPacks, index.PackEntry{ID: pid, Blobs: blobs})
	var batch []index.PackEntry
	if len(w.newPacks) >= indexEvery {
		batch, w.newPacks = w.newPacks, nil
	}
	w.mu.Unlock()
	r.idx.MergeIfLarge()
	if batch != nil {
		return r.saveIndexFile(ctx, &index.File{Packs: batch})
	}
	return nil
}

// Flush stores every open pack, waits for the uploads, and writes an index
// file for the packs not yet listed. After Flush, StartWriting may be called
// again.
func (r *Repository) Flush(ctx context.Context) error {
	w := r.w
	if w == nil {
		return nil
	}
	var err error
	for t := range w.open {
		if s := w.open[t]; s != nil {
			w.open[t] = nil
			if err == nil {
				err = r.enqueue(ctx, s)
			} else {
				s.close()
			}
		}
	}
	close(w.queue)
	if gerr := w.group.Wait(); err == nil {
		err = gerr
	}
	r.w = nil
	if err != nil {
		return err
	}
	if len(w.newPacks) > 0 {
		if err := r.saveIndexFile(ctx, &index.File{Packs: w.newPacks}); err != nil {
			return err
		}
	}
	r.idx.Merge()
	return nil
}
