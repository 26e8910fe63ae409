package repository

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"golang.org/x/sync/errgroup"
)

// SaveIndexFile stores an index file and returns its name. The in-memory
// index is not changed.
func (r *Repository) SaveIndexFile(ctx context.Context, f *index.File) (id.ID, error) {
	plain := r.compress(nil, f.Encode())
	name, err := r.saveSealed(ctx, backend.IndexFile, plain)
	if err != nil {
		return id.ID{}, err
	}
	return name, nil
}

// ResetIndex empties the in-memory index and the condemned table, so that
// LoadIndex can read the stored state afresh.
func (r *Repository) ResetIndex() {
	r.idx = index.New()
	r.indexDamage = nil
	r.setCondemned(nil)
}

// saveIndexFile compresses, seals and stores one index file.
func (r *Repository) saveIndexFile(ctx context.Context, f *index.File) error {
	plain := r.compress(nil, f.Encode())
	if _, err := r.saveSealed(ctx, backend.IndexFile, plain); err != nil {
		return err
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

// LoadIndex reads every index file into memory, then the prune marks
// (see LoadMarks). Index files superseded by another one are skipped.
func (r *Repository) LoadIndex(ctx context.Context) error {
	_, _, err := r.LoadIndexFiles(ctx)
	return err
}

// LoadIndexFiles is LoadIndex returning, for prune, the names of all index
// files it read (superseded and damaged ones included) and the files in
// force.
//
// An index file that fails verification or does not decode does not stop
// the load: the packs it listed are indexed from their headers instead,
// and IndexDamage says so (a warning is logged). Whoever replaces index
// files must refuse while IndexDamage is not nil.
//
// A listed index file that is gone when it is read was superseded and
// removed meanwhile (by prune or repair index, which store its
// replacement first); the listing is then read again.
func (r *Repository) LoadIndexFiles(ctx context.Context) ([]id.ID, []*index.File, error) {
	for attempt := 1; ; attempt++ {
		names, files, err := r.loadIndexFiles(ctx)
		if err == nil || !backend.IsNotExist(err) || attempt == 5 {
			return names, files, err
		}
	}
}

func (r *Repository) loadIndexFiles(ctx context.Context) ([]id.ID, []*index.File, error) {
	r.indexDamage = nil
	names, err := r.List(ctx, backend.IndexFile)
	if err != nil {
		return nil, nil, err
	}
	files := make([]*index.File, len(names))
	damaged := map[id.ID]error{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	var mu sync.Mutex
	for i, name := range names {
		g.Go(func() error {
			f, err := r.LoadIndexFile(gctx, name)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrCorrupt):
				// Damage to one index file must not hide the packs:
				// they describe themselves (see coverDamagedIndex).
				damaged[name] = err
			case err != nil:
				return err
			default:
				files[i] = f
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	superseded := map[id.ID]bool{}
	for _, f := range files {
		if f == nil {
			continue
		}
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	var live []*index.File
	for i, f := range files {
		if f != nil && !superseded[names[i]] {
			live = append(live, f)
		}
	}
	r.idx.AddFiles(live)
	// Marks are read after the index files: a prune stores a mark before
	// it supersedes the index files that list the condemned packs, so a
	// reader that misses those packs in the index finds them here.
	if err := r.loadCondemned(ctx); err != nil {
		return nil, nil, err
	}
	// A damaged file that an intact one supersedes was replaced already;
	// it only waits for removal.
	maps.DeleteFunc(damaged, func(n id.ID, _ error) bool { return superseded[n] })
	if len(damaged) > 0 {
		if err := r.coverDamagedIndex(ctx, damaged); err != nil {
			return nil, nil, err
		}
	}
	return names, live, nil
}
