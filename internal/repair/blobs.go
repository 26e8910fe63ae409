package repair

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sync/errgroup"
)

// blobState answers whether a blob is lost. It is built once per run and
// read without locks afterwards.
type blobState struct {
	r *repository.Repository
	// stored holds the packs the backend lists.
	stored map[id.ID]bool
	// missing lists the packs the index names that are not stored, sorted.
	missing []id.ID
	// corrupt holds the blobs that failed verification (ReadData only).
	corrupt map[id.ID]bool
}

// newBlobState lists the stored packs and, with readData, reads every
// indexed pack in full and verifies each blob the index places in it.
func newBlobState(ctx context.Context, r *repository.Repository, readData bool) (*blobState, error) {
	s := &blobState{r: r, stored: map[id.ID]bool{}, corrupt: map[id.ID]bool{}}
	packs, err := r.List(ctx, backend.PackFile)
	if err != nil {
		return nil, err
	}
	for _, p := range packs {
		s.stored[p] = true
	}
	for _, p := range r.Index().Packs() {
		if !s.stored[p] {
			s.missing = append(s.missing, p)
		}
	}
	slices.SortFunc(s.missing, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
	if readData {
		if err := s.verifyPacks(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// lost reports whether blob i cannot be read back: the index does not
// list it, its pack is not stored, or it failed verification. Tree blobs
// may still turn out to be lost when they are loaded (see lostErr).
func (s *blobState) lost(i id.ID) bool {
	loc, ok := s.r.Index().Lookup(i)
	return !ok || !s.stored[loc.Pack] || s.corrupt[i]
}

// indexed reports whether the index lists blob i at all.
func (s *blobState) indexed(i id.ID) bool { return s.r.Index().Has(i) }

// verifyPacks reads each stored pack that the index names, once and in
// full, and marks every blob the index places in it that does not decrypt
// and verify, or lies beyond the end of the pack. It is the same reading
// as check --read-data, so data not referenced by the snapshots being
// repaired is read too.
func (s *blobState) verifyPacks(ctx context.Context) error {
	byPack := map[id.ID][]pack.Blob{}
	s.r.Index().Each(func(l index.Location) {
		if s.stored[l.Pack] {
			byPack[l.Pack] = append(byPack[l.Pack], l.Blob)
		}
	})
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for p, blobs := range byPack {
		g.Go(func() error {
			bad, err := s.verifyPack(gctx, p, blobs)
			if err != nil {
				return err
			}
			mu.Lock()
			for _, b := range bad {
				s.corrupt[b] = true
			}
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// verifyPack returns the blobs of one pack that cannot be read back.
func (s *blobState) verifyPack(ctx context.Context, p id.ID, blobs []pack.Blob) ([]id.ID, error) {
	h := backend.Handle{Type: backend.PackFile, Name: p.String()}
	var data []byte
	err := s.r.Backend().Load(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	})
	var bad []id.ID
	if err != nil {
		if !backend.IsNotExist(err) {
			return nil, backend.Wrap("load", h.String(), err)
		}
		// Removed since it was listed: all of it is lost.
		for _, b := range blobs {
			bad = append(bad, b.ID)
		}
		return bad, nil
	}
	var buf []byte
	for _, b := range blobs {
		end := int64(b.Offset) + int64(b.Length)
		if end > int64(len(data)) {
			bad = append(bad, b.ID)
			continue
		}
		out, err := s.r.OpenBlob(b, data[b.Offset:end], buf)
		if err != nil {
			bad = append(bad, b.ID)
			continue
		}
		buf = out
	}
	return bad, nil
}

// lostErr reports whether an error from loading or decoding a blob means
// the blob is lost, rather than a failure that may pass (a network error,
// a cancelled context), which must stop the repair instead of being
// recorded as loss.
func lostErr(err error) bool {
	return errors.Is(err, repository.ErrBlobNotFound) || errors.Is(err, repository.ErrCorrupt) ||
		backend.IsNotExist(err) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, tree.ErrCorrupt) || errors.Is(err, pack.ErrCorrupt)
}
