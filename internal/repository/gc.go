package repository

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"golang.org/x/sync/errgroup"
)

// gcState holds what the prune marks condemn (docs/FORMAT.md §12).
// Condemned blobs are not used for deduplication (a new backup stores its
// own copy), but they can still be read: a backup that loaded the index
// before the mark was made may have referenced them, and the next prune
// revives such packs.
type gcState struct {
	mu    sync.RWMutex
	idx   *index.Index
	packs map[id.ID]struct{}
	marks map[id.ID]*index.Mark
}

// SaveMark stores a prune mark and returns its name.
func (r *Repository) SaveMark(ctx context.Context, m *index.Mark) (id.ID, error) {
	plain := r.compress(nil, m.Encode())
	name, err := r.saveSealed(ctx, backend.GCFile, plain)
	if err != nil {
		return id.ID{}, err
	}
	return name, nil
}

// LoadMark reads and decodes one prune mark.
func (r *Repository) LoadMark(ctx context.Context, name id.ID) (*index.Mark, error) {
	compressed, err := r.LoadFile(ctx, backend.GCFile, name)
	if err != nil {
		return nil, err
	}
	plain, err := r.zdec.DecodeAll(compressed, nil)
	if err != nil {
		return nil, &CorruptError{Op: "decompress", Object: "gc/" + name.String(), Err: err}
	}
	m, err := index.DecodeMark(plain)
	if err != nil {
		return nil, &CorruptError{Op: "decode", Object: "gc/" + name.String(), Err: err}
	}
	return m, nil
}

// LoadMarks reads every prune mark. Marks that cannot be read are returned
// in bad rather than failing the load: nothing deletes their packs while
// they are unreadable.
func (r *Repository) LoadMarks(ctx context.Context) (marks map[id.ID]*index.Mark, bad map[id.ID]error, err error) {
	marks = map[id.ID]*index.Mark{}
	bad = map[id.ID]error{}
	// A prune stores a mark's replacement before it removes the mark, so
	// when a listed mark is gone, the listing is read again.
	for pass := 1; ; pass++ {
		names, err := r.List(ctx, backend.GCFile)
		if err != nil {
			return nil, nil, err
		}
		vanished := false
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(runtime.GOMAXPROCS(0) * 2)
		for _, name := range names {
			mu.Lock()
			_, done := marks[name]
			_, failed := bad[name]
			mu.Unlock()
			if done || failed {
				continue
			}
			g.Go(func() error {
				m, err := r.LoadMark(gctx, name)
				if gctx.Err() != nil {
					return gctx.Err()
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case backend.IsNotExist(err):
					vanished = true
				case err != nil:
					bad[name] = err
				default:
					marks[name] = m
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
		}
		if !vanished || pass == 8 {
			listed := map[id.ID]bool{}
			for _, n := range names {
				listed[n] = true
			}
			maps.DeleteFunc(marks, func(n id.ID, _ *index.Mark) bool { return !listed[n] })
			maps.DeleteFunc(bad, func(n id.ID, _ error) bool { return !listed[n] })
			if vanished {
				return nil, nil, fmt.Errorf("list prune marks: marks keep disappearing")
			}
			return marks, bad, nil
		}
	}
}

// loadCondemned loads the prune marks into the condemned table.
func (r *Repository) loadCondemned(ctx context.Context) error {
	marks, bad, err := r.LoadMarks(ctx)
	if err != nil {
		return err
	}
	for name, err := range bad {
		slog.Warn("prune mark cannot be read; its packs are kept", "mark", "gc/"+name.String(), "err", err)
	}
	r.setCondemned(marks)
	return nil
}

func (r *Repository) setCondemned(marks map[id.ID]*index.Mark) {
	idx := index.New()
	packs := map[id.ID]struct{}{}
	for _, m := range marks {
		for _, p := range m.Packs {
			idx.AddPack(p.ID, p.Blobs)
			packs[p.ID] = struct{}{}
		}
	}
	idx.Merge()
	r.gc.mu.Lock()
	r.gc.idx, r.gc.packs, r.gc.marks = idx, packs, marks
	r.gc.mu.Unlock()
}

// Marks returns the prune marks loaded with the index.
func (r *Repository) Marks() map[id.ID]*index.Mark {
	r.gc.mu.RLock()
	defer r.gc.mu.RUnlock()
	return r.gc.marks
}

// Condemned reports whether a pack is condemned by a loaded prune mark.
func (r *Repository) Condemned(p id.ID) bool {
	r.gc.mu.RLock()
	defer r.gc.mu.RUnlock()
	_, ok := r.gc.packs[p]
	return ok
}

// lookupCondemned finds a blob in a condemned pack.
func (r *Repository) lookupCondemned(i id.ID) (index.Location, bool) {
	r.gc.mu.RLock()
	defer r.gc.mu.RUnlock()
	if r.gc.idx == nil {
		return index.Location{}, false
	}
	return r.gc.idx.Lookup(i)
}

// Readable reports whether a blob can be loaded: it is in the index, or in
// a pack that a prune mark condemned but that is not deleted yet.
func (r *Repository) Readable(i id.ID) bool {
	if r.idx.Has(i) {
		return true
	}
	_, ok := r.lookupCondemned(i)
	return ok
}
