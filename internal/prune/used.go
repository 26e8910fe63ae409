package prune

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// ErrMissing is wrapped by the error prune returns when a snapshot
// references a blob that the repository does not hold: prune then changes
// nothing, since what it would compute from a damaged repository cannot be
// trusted.
var ErrMissing = errors.New("snapshot references a blob the repository does not hold")

// usedSet is the set of blobs that snapshots reference, safe for
// concurrent use.
type usedSet struct {
	mu sync.Mutex
	m  map[id.ID]struct{}
}

func newUsedSet() *usedSet { return &usedSet{m: map[id.ID]struct{}{}} }

// add inserts i and reports whether it was new.
func (u *usedSet) add(i id.ID) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[i]; ok {
		return false
	}
	u.m[i] = struct{}{}
	return true
}

func (u *usedSet) has(i id.ID) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.m[i]
	return ok
}

func (u *usedSet) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}

// treeJob is one tree blob to read, with the path it was found at (for
// error messages).
type treeJob struct {
	id   id.ID
	path string
	snap id.ID
}

// markUsed adds to u every blob that the snapshots reference: their tree
// blobs, content-list blobs and data chunks. Trees already in u are not
// read again, since everything below them is in u already. Several
// workers read trees at once.
//
// A missing blob is an error (ErrMissing), except in the snapshots named in
// damaged: those have a damage record (rewind repair snapshots), their
// losses are known, and what of them is intact is kept.
func markUsed(ctx context.Context, r *repository.Repository, sns []*snapshot.Snapshot, u *usedSet, damaged map[id.ID]bool) error {
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		queue   []treeJob
		pending int
		failed  error
	)
	push := func(j treeJob) {
		if !u.add(j.id) {
			return
		}
		mu.Lock()
		queue = append(queue, j)
		pending++
		cond.Signal()
		mu.Unlock()
	}
	fail := func(err error) {
		mu.Lock()
		if failed == nil {
			failed = err
		}
		cond.Broadcast()
		mu.Unlock()
	}
	for _, sn := range sns {
		for _, t := range sn.Tree {
			push(treeJob{id: t, path: "/", snap: sn.ID})
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { fail(ctx.Err()) })
	defer stop()

	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				for len(queue) == 0 && pending > 0 && failed == nil {
					cond.Wait()
				}
				if failed != nil || pending == 0 {
					mu.Unlock()
					return
				}
				j := queue[len(queue)-1]
				queue = queue[:len(queue)-1]
				mu.Unlock()
				if err := walkTree(ctx, r, j, u, push, damaged[j.snap]); err != nil {
					fail(err)
				}
				mu.Lock()
				pending--
				if pending == 0 {
					cond.Broadcast()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

// walkTree reads one tree blob, adds the blobs its nodes reference to u
// and queues its subtrees.
func walkTree(ctx context.Context, r *repository.Repository, j treeJob, u *usedSet, push func(treeJob), damaged bool) error {
	if !r.Readable(j.id) {
		if damaged {
			return nil
		}
		return fmt.Errorf("%w: tree blob %s of %s in snapshot %s; run `rewind check`, then `rewind repair snapshots`",
			ErrMissing, j.id, j.path, j.snap.Short())
	}
	err := snapshot.EachNode(ctx, r, []id.ID{j.id}, func(n *tree.Node) error {
		p := joinPath(j.path, n.Name)
		for _, s := range n.Subtree {
			push(treeJob{id: s, path: p, snap: j.snap})
		}
		chunks := n.Content
		if len(n.ContentLists) > 0 {
			lost := false
			for _, l := range n.ContentLists {
				u.add(l)
				if !r.Readable(l) {
					lost = true
				}
			}
			if lost && damaged {
				return nil
			}
			for _, l := range n.ContentLists {
				if !r.Readable(l) {
					return fmt.Errorf("%w: content list %s of %s in snapshot %s; run `rewind check`, then `rewind repair snapshots`",
						ErrMissing, l, p, j.snap.Short())
				}
			}
			var err error
			if chunks, err = snapshot.LoadContent(ctx, r, n); err != nil {
				return fmt.Errorf("content of %s in snapshot %s: %w", p, j.snap.Short(), err)
			}
		}
		for _, c := range chunks {
			if c.IsHole() || !u.add(c.ID) {
				continue
			}
			if !r.Readable(c.ID) && !damaged {
				return fmt.Errorf("%w: data blob %s of %s in snapshot %s; run `rewind check`, then `rewind repair snapshots`",
					ErrMissing, c.ID, p, j.snap.Short())
			}
		}
		return nil
	})
	if err != nil && backend.IsNotExist(err) && !errors.Is(err, ErrMissing) {
		// The index lists the tree blob, but its pack is gone.
		if damaged {
			return nil
		}
		return fmt.Errorf("%w: tree blob %s of %s in snapshot %s (%w); run `rewind check`, then `rewind repair index` and `rewind repair snapshots`",
			ErrMissing, j.id, j.path, j.snap.Short(), err)
	}
	return err
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// walBlobs returns every blob that a WAL index file names (rewind pg
// wal-push) or a binlog index file does (rewind mysql binlog receive). Callers list WAL index files before they read the index, as
// they list snapshots: a wal-push stores its packs and their index before
// its WAL index file, so the index read next lists every blob named.
func walBlobs(ctx context.Context, r *repository.Repository) ([]id.ID, error) {
	var blobs []id.ID
	if err := wal.UsedBlobs(ctx, r, func(b id.ID) { blobs = append(blobs, b) }); err != nil {
		return nil, fmt.Errorf("prune changes nothing: %w", err)
	}
	// So is the binary log stored by rewind mysql binlog receive.
	if err := binlog.UsedBlobs(ctx, r, func(b id.ID) { blobs = append(blobs, b) }); err != nil {
		return nil, fmt.Errorf("prune changes nothing: %w", err)
	}
	return blobs, nil
}
