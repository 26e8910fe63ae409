package copier

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"golang.org/x/sync/errgroup"
)

// Mode says how blobs are named in the destination (see the package doc).
type Mode string

// Modes of a Copier.
const (
	ModeByID   Mode = "by_id"
	ModeRehash Mode = "rehash"
)

// Options tune a Copier. Zero values take the defaults.
type Options struct {
	// Workers is how many blobs are read from the source and stored in
	// the destination at once, and how many trees are read at once.
	// Default: twice the CPUs, at least 4.
	Workers int
	// Progress, when set, is told about the files of a snapshot as its
	// trees are walked.
	Progress Progress
	// BeforeCommit, when set, is called after all the data of a snapshot
	// is stored in the destination (packs and index files) and right
	// before its snapshot file is: an error from it leaves the snapshot
	// unsaved and is returned by Copy. The CLI checks its lock there.
	BeforeCommit func(ctx context.Context) error
}

// Progress receives events during a copy. Methods are called from many
// goroutines and must be cheap.
type Progress interface {
	// Walked counts files met in the trees, with their sizes.
	Walked(files, bytes int64)
}

// Result says what Copy did with one snapshot.
type Result struct {
	// Source is the snapshot in the source repository.
	Source *snapshot.Snapshot
	// CopyID names its copy in the destination.
	CopyID id.ID
	// Skipped is true when the destination had a copy already: then
	// nothing was transferred and CopyID is that copy.
	Skipped bool
	// New blobs stored in the destination for this snapshot.
	DataBlobs, TreeBlobs int64
	// BytesAdded is the plain size of those blobs, BytesStored what they
	// take in packs after compression and encryption.
	BytesAdded, BytesStored int64
	// InventoryError is set when the source snapshot names an inventory
	// that could not be read or stored: the copy is saved without one.
	InventoryError error
}

// Copier copies snapshots from src to dst. Both must have their index
// loaded; Copy calls must not run concurrently.
type Copier struct {
	src, dst *repository.Repository
	opt      Options
	mode     Mode

	// copies maps source snapshot IDs to their copies in dst; inDst holds
	// the IDs of dst's snapshots.
	copies map[id.ID]id.ID
	inDst  map[id.ID]bool
	// invCopies maps source inventory files to the destination's;
	// invInDst holds the destination's inventories once read.
	invCopies map[id.ID]id.ID
	invInDst  map[id.ID]*inventory.Document

	// What earlier, successful Copy calls did: trees walked and, in
	// ModeRehash, source blob IDs with their destination IDs. Only read
	// during a Copy; a failed Copy adds nothing, since the blobs it stored
	// may not have reached the destination.
	walked map[id.ID]struct{}
	data   map[id.ID]id.ID
	trees  map[id.ID]id.ID
}

// New returns a Copier from src to dst. existing are dst's snapshots,
// from which it learns what was copied already.
func New(src, dst *repository.Repository, existing []*snapshot.Snapshot, opt Options) *Copier {
	if opt.Workers <= 0 {
		opt.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	c := &Copier{
		src: src, dst: dst, opt: opt, mode: ModeRehash,
		copies: map[id.ID]id.ID{}, inDst: map[id.ID]bool{}, invCopies: map[id.ID]id.ID{},
		walked: map[id.ID]struct{}{}, data: map[id.ID]id.ID{}, trees: map[id.ID]id.ID{},
	}
	if src.SharesBlobIDs(dst) {
		c.mode = ModeByID
	}
	for _, sn := range existing {
		c.inDst[sn.ID] = true
		if sn.CopiedFrom != nil {
			c.copies[*sn.CopiedFrom] = sn.ID
		}
	}
	return c
}

// Mode tells how blobs are carried over.
func (c *Copier) Mode() Mode { return c.mode }

// CopyOf returns the destination's copy of a source snapshot: a
// snapshot whose CopiedFrom names sn, or, when sn was itself copied from
// the destination, that original.
func (c *Copier) CopyOf(sn *snapshot.Snapshot) (id.ID, bool) {
	if d, ok := c.copies[sn.ID]; ok {
		return d, true
	}
	if sn.CopiedFrom != nil && c.inDst[*sn.CopiedFrom] {
		return *sn.CopiedFrom, true
	}
	return id.ID{}, false
}

// run is the state of one Copy: what it walked and mapped, merged into
// the Copier when the snapshot is saved.
type run struct {
	mu     sync.Mutex // guards the maps
	walked map[id.ID]struct{}
	data   map[id.ID]id.ID // ModeRehash; the null ID while being stored
	trees  map[id.ID]id.ID // ModeRehash
}

// Copy copies sn into the destination unless it has a copy already. The
// snapshot file is stored last, after Flush, so that a copy that fails or
// is killed leaves no snapshot (see the package doc).
func (c *Copier) Copy(ctx context.Context, sn *snapshot.Snapshot) (Result, error) {
	res := Result{Source: sn}
	if d, ok := c.CopyOf(sn); ok {
		res.CopyID, res.Skipped = d, true
		return res, nil
	}
	st := c.dst.Stats()
	dataBlobs, treeBlobs := st.DataBlobs.Load(), st.TreeBlobs.Load()
	added, stored := st.DataAdded.Load()+st.TreeAdded.Load(), st.BlobsStored.Load()

	ru := &run{walked: map[id.ID]struct{}{}, data: map[id.ID]id.ID{}, trees: map[id.ID]id.ID{}}
	c.dst.StartWriting(ctx)
	root, err := c.transfer(ctx, ru, sn.Tree)
	if ferr := c.dst.Flush(ctx); err == nil {
		err = ferr
	}
	if err != nil {
		return res, fmt.Errorf("copy snapshot %s: %w", sn.ID.Short(), err)
	}

	cp := *sn
	cp.ID = id.ID{}
	cp.Tree = root
	from := sn.ID
	cp.CopiedFrom = &from
	// The parent, the original of a repair and the snapshot a tag change
	// replaced are snapshots of the source;
	// they are kept only as the IDs of their copies. An original that
	// named a snapshot missing here would look like a repair interrupted
	// before its damage record (docs/FORMAT.md §14).
	cp.Parent, cp.Original, cp.TaggedFrom = nil, nil, nil
	if sn.Parent != nil {
		if d, ok := c.copies[*sn.Parent]; ok {
			cp.Parent = &d
		}
	}
	// The inventory is carried over under the destination's name for it.
	cp.Inventory = nil
	if sn.Inventory != nil {
		d, err := c.copyInventory(ctx, *sn.Inventory)
		switch {
		case err != nil && ctx.Err() != nil:
			return res, ctx.Err()
		case err != nil:
			res.InventoryError = fmt.Errorf("inventory %s of snapshot %s not copied: %w", sn.Inventory.Short(), sn.ID.Short(), err)
		default:
			cp.Inventory = &d
		}
	}
	if c.opt.BeforeCommit != nil {
		if err := c.opt.BeforeCommit(ctx); err != nil {
			return res, err
		}
	}
	if err := snapshot.Save(ctx, c.dst, &cp); err != nil {
		return res, fmt.Errorf("save the copy of snapshot %s: %w", sn.ID.Short(), err)
	}
	c.copies[sn.ID] = cp.ID
	c.inDst[cp.ID] = true
	for t := range ru.walked {
		c.walked[t] = struct{}{}
	}
	for s, d := range ru.data {
		c.data[s] = d
	}
	for s, d := range ru.trees {
		c.trees[s] = d
	}
	res.CopyID = cp.ID
	res.DataBlobs = st.DataBlobs.Load() - dataBlobs
	res.TreeBlobs = st.TreeBlobs.Load() - treeBlobs
	res.BytesAdded = st.DataAdded.Load() + st.TreeAdded.Load() - added
	res.BytesStored = st.BlobsStored.Load() - stored
	return res, nil
}

// blobRef is a data blob found by the walk.
type blobRef struct {
	id id.ID
}

// transfer stores in the destination everything below the tree blobs
// root and returns the destination's IDs of root. It must run between
// StartWriting and Flush.
func (c *Copier) transfer(ctx context.Context, ru *run, root []id.ID) ([]id.ID, error) {
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan blobRef, 4*c.opt.Workers)
	g.Go(func() error {
		defer close(jobs)
		return c.walk(gctx, ru, root, jobs)
	})
	for range c.opt.Workers {
		g.Go(func() error { return c.copyBlobs(gctx, ru, jobs) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if c.mode == ModeByID {
		return root, nil
	}
	return c.rewriteDir(ctx, ru, root)
}

// copyBlobs stores the data blobs of jobs that the destination lacks.
func (c *Copier) copyBlobs(ctx context.Context, ru *run, jobs <-chan blobRef) error {
	var buf []byte
	for j := range jobs {
		var err error
		if c.mode == ModeByID {
			buf, err = c.copyByID(ctx, j.id, buf)
		} else {
			buf, err = c.copyRehash(ctx, ru, j.id, buf)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// copyByID stores one blob under its own ID, unless the destination holds
// it or another worker is storing it.
func (c *Copier) copyByID(ctx context.Context, i id.ID, buf []byte) ([]byte, error) {
	ok, err := c.dst.Reserve(i)
	if err != nil || !ok {
		return buf, err
	}
	buf, err = c.src.LoadBlob(ctx, pack.DataBlob, i, buf)
	if err != nil {
		return buf, fmt.Errorf("read from the source: %w", err)
	}
	if err := c.dst.SaveReserved(ctx, pack.DataBlob, i, buf); err != nil {
		return buf, fmt.Errorf("store data blob %s: %w", i.Short(), err)
	}
	return buf, nil
}

// copyRehash reads one data blob, hashes it with the destination's ID
// key and stores it unless the destination holds that ID.
func (c *Copier) copyRehash(ctx context.Context, ru *run, s id.ID, buf []byte) ([]byte, error) {
	ru.mu.Lock()
	_, claimed := ru.data[s]
	if !claimed {
		ru.data[s] = id.ID{}
	}
	ru.mu.Unlock()
	if claimed {
		return buf, nil
	}
	buf, err := c.src.LoadBlob(ctx, pack.DataBlob, s, buf)
	if err != nil {
		return buf, fmt.Errorf("read from the source: %w", err)
	}
	d, _, err := c.dst.SaveBlob(ctx, pack.DataBlob, buf)
	if err != nil {
		return buf, fmt.Errorf("store data blob %s: %w", s.Short(), err)
	}
	ru.mu.Lock()
	ru.data[s] = d
	ru.mu.Unlock()
	return buf, nil
}

// dataFor returns the destination ID of source data blob s, in
// ModeRehash.
func (c *Copier) dataFor(ru *run, s id.ID) (id.ID, bool) {
	if d, ok := c.data[s]; ok {
		return d, true
	}
	ru.mu.Lock()
	defer ru.mu.Unlock()
	d, ok := ru.data[s]
	return d, ok && !d.IsNull()
}

// errInternal marks a broken invariant of the copier.
var errInternal = errors.New("internal error")
