package prune

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"golang.org/x/sync/errgroup"
)

// repackWorkers is how many packs are read at once while repacking.
const repackWorkers = 4

// repack copies the blobs to keep out of the packs in pl.repack into new
// packs, and writes index files for the new packs (Flush). A pack with a
// blob to keep that fails verification is not condemned: it moves to
// pl.keep and is reported, so that nothing readable is lost and the damage
// stays visible to check. It returns the bytes copied.
func repack(ctx context.Context, r *repository.Repository, pl *plan, res *Result, progress func(done int)) (int64, error) {
	if len(pl.repack) == 0 {
		return 0, nil
	}
	r.StartWriting(ctx)
	failed := make([]error, len(pl.repack))
	var copied int64
	sizes := make([]int64, len(pl.repack))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(repackWorkers)
	for k, pi := range pl.repack {
		g.Go(func() error {
			n, bad, err := repackOne(gctx, r, pi)
			if err != nil {
				return err
			}
			failed[k], sizes[k] = bad, n
			if progress != nil {
				progress(1)
			}
			return nil
		})
	}
	err := g.Wait()
	if ferr := r.Flush(ctx); err == nil {
		err = ferr
	}
	if err != nil {
		return 0, fmt.Errorf("repack: %w", err)
	}
	var ok []*packInfo
	for k, pi := range pl.repack {
		if failed[k] != nil {
			res.Damaged = append(res.Damaged, failed[k].Error())
			pl.keep = append(pl.keep, pi)
			continue
		}
		copied += sizes[k]
		ok = append(ok, pi)
	}
	pl.repack = ok
	return copied, nil
}

// repackOne reads one pack and copies its blobs to keep. A blob that fails
// verification is returned as bad (the pack is then kept); other errors
// end the prune.
func repackOne(ctx context.Context, r *repository.Repository, pi *packInfo) (copied int64, bad error, err error) {
	keep := slices.Clone(pi.keepBlobs)
	slices.SortFunc(keep, func(a, b pack.Blob) int { return int(a.Offset) - int(b.Offset) })
	if len(keep) == 0 {
		return 0, nil, nil
	}
	h := backend.Handle{Type: backend.PackFile, Name: pi.entry.ID.String()}
	last := keep[len(keep)-1]
	end := int64(last.Offset) + int64(last.Length)
	start := int64(keep[0].Offset)
	var data []byte
	err = r.Backend().Load(ctx, h, int(end-start), start, func(rd io.Reader) error {
		data = make([]byte, end-start)
		_, err := io.ReadFull(rd, data)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, fmt.Errorf("%s: cannot be read (%v); kept as it is", h, err), nil
	}
	var scratch []byte
	for _, b := range keep {
		sealed := data[int64(b.Offset)-start : int64(b.Offset)-start+int64(b.Length)]
		if scratch, err = r.OpenBlob(b, sealed, scratch); err != nil {
			return 0, fmt.Errorf("%s: %s blob %s fails verification (%v); kept as it is, run `rewind check --read-data`", h, b.Type, b.ID, err), nil
		}
	}
	for _, b := range keep {
		sealed := data[int64(b.Offset)-start : int64(b.Offset)-start+int64(b.Length)]
		if err := r.CopySealed(ctx, b, sealed); err != nil {
			return 0, nil, err
		}
		copied += int64(b.Length)
	}
	return copied, nil, nil
}
