package repository

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"golang.org/x/sync/errgroup"
)

// saveIndexFile compresses, seals and stores one index file.
func (r *Repository) saveIndexFile(ctx context.Context, f *index.File) error {
	plain := r.compress(nil, f.Encode())
	if _, err := r.saveSealed(ctx, backend.IndexFile, plain); err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	return nil
}

// LoadIndexFile reads and decodes one index file.
func (r *Repository) LoadIndexFile(ctx context.Context, name id.ID) (*index.File, error) {
	compressed, err := r.LoadFile(ctx, backend.IndexFile, name)
	if err != nil {
		return nil, err
	}
	plain, err := r.zdec.DecodeAll(compressed, nil)
	if err != nil {
		return nil, &CorruptError{Op: "decompress", Object: "index/" + name.String(), Err: err}
	}
	f, err := index.Decode(plain)
	if err != nil {
		return nil, &CorruptError{Op: "decode", Object: "index/" + name.String(), Err: err}
	}
	return f, nil
}

// LoadIndex reads every index file into memory. Index files superseded by
// another one are skipped.
func (r *Repository) LoadIndex(ctx context.Context) error {
	names, err := r.List(ctx, backend.IndexFile)
	if err != nil {
		return fmt.Errorf("list index files: %w", err)
	}
	files := make([]*index.File, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	var mu sync.Mutex
	for i, name := range names {
		g.Go(func() error {
			f, err := r.LoadIndexFile(gctx, name)
			if err != nil {
				return err
			}
			mu.Lock()
			files[i] = f
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	superseded := map[id.ID]bool{}
	for _, f := range files {
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	live := files[:0]
	for i, f := range files {
		if !superseded[names[i]] {
			live = append(live, f)
		}
	}
	r.idx.AddFiles(live)
	return nil
}
