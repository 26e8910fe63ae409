// Package retention keeps the object lock retention of a repository's
// files in step with its snapshots (docs/OBJECT-LOCK.md).
//
// The promise of object lock is that a snapshot cannot be destroyed for D
// (the repository's retention) after it was taken, not even with the
// credentials that wrote it. Every file is written locked until D plus a
// slack of D/4 after its upload, which covers the files a backup uploads.
// Deduplication is what breaks that: a new snapshot also references packs
// uploaded long ago, whose locks may end before the new snapshot's. Extend
// finds, for every snapshot taken less than D ago, the packs that hold the
// blobs it references, and makes sure each file it needs (its snapshot
// file, those packs, and the index files, keys and config of the
// repository) is locked until at least D after the snapshot was taken.
// A file locked too briefly gets D + D/4 from that snapshot, so a file
// referenced by every daily backup is extended once per D/4, not daily.
//
// Which dates the files have is remembered in a Cache, and so are the
// snapshots whose files were all seen locked long enough, which later runs
// do not walk again (dates only move forward). So a run reads only the
// trees of new snapshots, asks the server (one GetObjectRetention each)
// only about files it has not seen before, and sends one
// PutObjectRetention per file it extends (a file the cache knows to be due
// is extended without asking first).
package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Store reads and extends the retention of stored files; the S3 backend
// (package backend/s3) is one.
type Store interface {
	// Retention returns the retain-until date of h's current version, the
	// zero time if it has none.
	Retention(ctx context.Context, h backend.Handle) (time.Time, error)
	// ExtendRetention sets it to until, which is later.
	ExtendRetention(ctx context.Context, h backend.Handle, until time.Time) error
}

// Options tune Extend.
type Options struct {
	// Retention is D, how long a snapshot stays locked after it is taken.
	Retention time.Duration
	// Slack is added to the dates Extend sets (D/4 when zero).
	Slack time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Cache holds the dates known from earlier runs; nil: none.
	Cache *Cache
	// Requests is how many requests to the store run at once (16 when
	// zero).
	Requests int
}

// Result is what Extend did. Its JSON form is documented in docs/JSON.md.
type Result struct {
	// Snapshots taken less than the retention ago, whose files must stay
	// locked; of those, the ones not walked because an earlier run saw
	// all their files locked long enough; the files needed by the others
	// and by the repository as a whole (index files, keys, config).
	Snapshots int `json:"snapshots"`
	Done      int `json:"snapshots_done"`
	Files     int `json:"files"`
	// Cached counts the files whose date the cache showed to be late
	// enough; Lookups the GetObjectRetention requests for the others;
	// Extended the PutObjectRetention requests.
	Cached   int `json:"cached"`
	Lookups  int `json:"lookups"`
	Extended int `json:"extended"`
	// Failed counts the files whose date could not be read or extended.
	Failed int `json:"failed"`
	// Missing counts blobs that the snapshots reference and the index
	// does not hold (`rewind check` says more).
	Missing int `json:"missing_blobs"`
	// LockedUntil is the latest date a file needs to be locked until.
	LockedUntil time.Time `json:"locked_until"`
}

// Extend makes sure every file that a snapshot taken less than
// opt.Retention ago needs is locked until opt.Retention after that
// snapshot (see the package documentation). r must have its index loaded.
// The error says how many files failed; Result counts what was done
// anyway.
func Extend(ctx context.Context, r *repository.Repository, st Store, opt Options) (*Result, error) {
	if opt.Retention <= 0 {
		return nil, errors.New("extend retention: no retention given")
	}
	if opt.Slack == 0 {
		opt.Slack = opt.Retention / 4
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Requests <= 0 {
		opt.Requests = 16
	}
	if opt.Cache == nil {
		opt.Cache = NewCache()
	}
	now := opt.Now()
	res := &Result{}

	sns, err := snapshot.List(ctx, r, nil)
	if err != nil {
		return nil, err
	}
	// Newest first: a blob reached from a newer snapshot needs the later
	// date, and is not walked again for an older one.
	type due struct {
		sn   *snapshot.Snapshot
		need time.Time
	}
	var recent []due
	for _, sn := range sns {
		t := sn.Time
		if t.After(now) {
			// A snapshot dated in the future does not lock the
			// repository beyond D from now.
			t = now
		}
		if need := t.Add(opt.Retention); need.After(now) {
			recent = append(recent, due{sn, need})
		}
	}
	slices.SortFunc(recent, func(a, b due) int { return b.need.Compare(a.need) })
	res.Snapshots = len(recent)
	if len(recent) == 0 {
		return res, nil
	}

	need := map[backend.Handle]time.Time{}
	var mu sync.Mutex // guards need while walking
	mark := func(h backend.Handle, t time.Time) {
		mu.Lock()
		if t.After(need[h]) {
			need[h] = t
		}
		mu.Unlock()
	}
	w := &walker{r: r, seen: map[id.ID]bool{}}
	var walked []due
	for _, d := range recent {
		if opt.Cache.isDone(d.sn.ID, d.need) {
			// An earlier run saw every file of it locked long enough.
			res.Done++
			continue
		}
		walked = append(walked, d)
		mark(backend.Handle{Type: backend.SnapshotFile, Name: d.sn.ID.String()}, d.need)
		if d.sn.Inventory != nil {
			// The machine's inventory is what bare-metal recovery
			// rebuilds from: as needed as the snapshot itself.
			mark(backend.Handle{Type: backend.InventoryFile, Name: d.sn.Inventory.String()}, d.need)
		}
		if err := w.walk(ctx, d.sn, func(b id.ID) {
			if loc, ok := r.Index().Lookup(b); ok {
				mark(backend.Handle{Type: backend.PackFile, Name: loc.Pack.String()}, d.need)
			}
		}); err != nil {
			return nil, err
		}
	}
	res.Missing = int(w.missing.Load())
	// The files every snapshot needs, until the newest one's date.
	latest := recent[0].need
	res.LockedUntil = latest
	mark(backend.Handle{Type: backend.ConfigFile}, latest)
	for _, t := range []backend.FileType{backend.KeyFile, backend.IndexFile} {
		ids, err := r.List(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", t, err)
		}
		for _, i := range ids {
			mark(backend.Handle{Type: t, Name: i.String()}, latest)
		}
	}
	res.Files = len(need)

	var cached, lookups, extended, failed atomic.Int64
	var firstErr error
	var errMu sync.Mutex
	fail := func(err error) {
		failed.Add(1)
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Requests)
	for h, t := range need {
		g.Go(func() error {
			known, ok := opt.Cache.get(h)
			if ok && !known.Before(t) {
				cached.Add(1)
				return nil
			}
			to := t.Add(opt.Slack)
			if ok {
				// The cache says the date is too early: extend at once.
				// If another host extended it beyond to, the server
				// refuses to shorten it, and the date is looked up.
				extended.Add(1)
				err := st.ExtendRetention(gctx, h, to)
				if err == nil {
					opt.Cache.set(h, to)
					return nil
				}
				if backend.IsNotExist(err) {
					return nil
				}
			}
			lookups.Add(1)
			until, err := st.Retention(gctx, h)
			switch {
			case backend.IsNotExist(err):
				return nil // removed meanwhile (a superseded index file)
			case err != nil:
				fail(err)
				return gctx.Err()
			case !until.Before(t):
				opt.Cache.set(h, until)
				return nil
			}
			extended.Add(1)
			if err := st.ExtendRetention(gctx, h, to); err != nil {
				if !backend.IsNotExist(err) {
					fail(err)
				}
				return gctx.Err()
			}
			opt.Cache.set(h, to)
			return nil
		})
	}
	err = g.Wait()
	res.Cached, res.Lookups, res.Extended, res.Failed = int(cached.Load()), int(lookups.Load()), int(extended.Load()), int(failed.Load())
	if err != nil {
		return res, err
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("the retention of some files could not be checked or extended (%d of %d); the first error: %w", res.Failed, res.Files, firstErr)
	}
	if res.Missing == 0 {
		for _, d := range walked {
			opt.Cache.setDone(d.sn.ID, d.need)
		}
	}
	return res, nil
}

// walker finds the blobs that snapshots reference. Trees it has seen are
// not read again: everything below them was found already.
type walker struct {
	r       *repository.Repository
	mu      sync.Mutex
	seen    map[id.ID]bool // mu
	missing atomic.Int64
}

// add reports whether i is new, and records it.
func (w *walker) add(i id.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[i] {
		return false
	}
	w.seen[i] = true
	return true
}

// walk calls fn for every blob that sn references and that no earlier
// walk found: tree blobs, content lists and data chunks. Blobs the
// repository cannot read are counted as missing and skipped. Several trees
// are read at once.
func (w *walker) walk(ctx context.Context, sn *snapshot.Snapshot, fn func(id.ID)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	var errMu sync.Mutex
	var inlineErr error
	var tree1 func(i id.ID)
	tree1 = func(i id.ID) {
		if !w.add(i) {
			return
		}
		fn(i)
		if !w.r.Readable(i) {
			w.missing.Add(1)
			return
		}
		job := func() error {
			return snapshot.EachNode(gctx, w.r, []id.ID{i}, func(n *tree.Node) error {
				for _, s := range n.Subtree {
					tree1(s)
				}
				chunks := n.Content
				if len(n.ContentLists) > 0 {
					readable := true
					for _, l := range n.ContentLists {
						if w.add(l) {
							fn(l)
						}
						readable = readable && w.r.Readable(l)
					}
					if !readable {
						w.missing.Add(1)
						return nil
					}
					var err error
					if chunks, err = snapshot.LoadContent(gctx, w.r, n); err != nil {
						return err
					}
				}
				for _, c := range chunks {
					if c.IsHole() || !w.add(c.ID) {
						continue
					}
					fn(c.ID)
					if !w.r.Readable(c.ID) {
						w.missing.Add(1)
					}
				}
				return nil
			})
		}
		// When every worker is busy the tree is read here, by the caller:
		// a walk never waits for a worker while holding one.
		if !g.TryGo(job) {
			if err := job(); err != nil {
				errMu.Lock()
				if inlineErr == nil {
					inlineErr = err
				}
				errMu.Unlock()
			}
		}
	}
	for _, t := range sn.Tree {
		tree1(t)
	}
	err := g.Wait()
	if err == nil {
		err = inlineErr
	}
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", sn.ID.Short(), err)
	}
	return nil
}
