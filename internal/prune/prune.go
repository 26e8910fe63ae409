package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// LockRef names a lock held on the repository.
type LockRef struct {
	ID   string // stable lock ID
	Desc string // for messages: who holds it
}

// Options tune a prune.
type Options struct {
	// DryRun computes and reports what would be done, changing nothing.
	DryRun bool
	// MaxUnused is the fraction of the repository size that may stay
	// unused in kept packs before packs are repacked (restic's
	// --max-unused). 0 repacks every pack holding unused data.
	MaxUnused float64
	// MaxRepackBytes bounds the live bytes copied by repacking; 0: none.
	MaxRepackBytes int64
	// Host names this host in marks.
	Host string
	// Locks returns the locks held on the repository by others (not the
	// caller's own prune lock, and not stale ones). It is the fence of the
	// protocol and must not be nil.
	Locks func(ctx context.Context) ([]LockRef, error)
	// Progress, if set, is told about each stage: its name, and units done
	// out of total (total 0: unknown).
	Progress func(stage string, done, total int)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Damaged names the snapshots with a damage record (rewind repair
	// snapshots): the blobs they lack are known lost and do not stop the
	// prune.
	Damaged map[id.ID]bool
}

// Result is what a prune did, or would do with DryRun. Its JSON form is
// documented in docs/JSON.md.
type Result struct {
	DryRun         bool     `json:"dry_run"`
	Snapshots      int      `json:"snapshots"`
	Packs          int      `json:"packs"`
	TotalBytes     int64    `json:"total_bytes"`
	UsedBlobs      int      `json:"used_blobs"`
	UsedBytes      int64    `json:"used_bytes"`
	UnusedBytes    int64    `json:"unused_bytes"`
	PacksRepacked  int      `json:"packs_repacked"`
	BytesRepacked  int64    `json:"bytes_repacked"`
	PacksCondemned int      `json:"packs_condemned"`
	BytesCondemned int64    `json:"bytes_condemned"`
	PacksRevived   int      `json:"packs_revived"`
	PacksDeleted   int      `json:"packs_deleted"`
	BytesFreed     int64    `json:"bytes_freed"`
	PacksPending   int      `json:"packs_pending"`
	BytesPending   int64    `json:"bytes_pending"`
	WaitingFor     []string `json:"waiting_for"`
	MissingPacks   []string `json:"missing_packs"`
	Damaged        []string `json:"damaged"`
	BadMarks       []string `json:"unreadable_marks"`
	// InventoriesDeleted counts the inventory files no snapshot names
	// that were deleted (would be, with DryRun); InventoriesPending
	// those left for a later prune because other locks were held.
	InventoriesDeleted int `json:"inventories_deleted"`
	InventoriesPending int `json:"inventories_pending"`
}

// Run prunes the repository r, opened with its index not loaded (Run loads
// it in the order the protocol needs). The caller holds a Prune lock.
//
// Phase one marks: it finds the blobs every snapshot references, copies
// the used blobs out of packs that are mostly unused, and condemns the
// packs that hold nothing in use in a mark, replacing the index by one
// without them. Phase two sweeps: for every mark whose fence has passed
// (every lock held when the mark was made is gone), it revives condemned
// packs that a newer snapshot references and deletes the rest. See
// docs/FORMAT.md §12 for the protocol and why it is safe.
func Run(ctx context.Context, r *repository.Repository, opt Options) (*Result, error) {
	if opt.Locks == nil {
		return nil, errors.New("internal error: prune without a lock fence")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	res := &Result{DryRun: opt.DryRun, WaitingFor: []string{}, MissingPacks: []string{}, Damaged: []string{}, BadMarks: []string{}}
	stage := func(name string, done, total int) {
		if opt.Progress != nil {
			opt.Progress(name, done, total)
		}
	}

	// Snapshots first, then the index: every blob a listed snapshot
	// references is in an index file stored before the snapshot.
	stage("snapshots", 0, 0)
	var unreadable error
	sns, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		if unreadable == nil {
			unreadable = fmt.Errorf("snapshot %s cannot be read, so what it references is unknown: %w; prune changes nothing until it is repaired or forgotten", i.Short(), err)
		}
	})
	if err != nil {
		return nil, err
	}
	if unreadable != nil {
		return nil, unreadable
	}
	res.Snapshots = len(sns)
	walUsed, err := walBlobs(ctx, r)
	if err != nil {
		return nil, err
	}
	names, files, err := r.LoadIndexFiles(ctx)
	if err != nil {
		return nil, err
	}
	// A damaged index file may list packs no other file does; their
	// blobs were found from the pack headers, but prune replaces index
	// files and must not drop one it could not read.
	if d := r.IndexDamage(); d != nil {
		return nil, fmt.Errorf("prune changes nothing: %w", d.Err())
	}
	// Packs that no index lists (left by a killed backup or prune) are
	// indexed first, so that what they hold is reused or pruned like the
	// rest. A running backup's packs may be among them: that is safe, as
	// its lock fences any mark made now.
	if !opt.DryRun {
		n, skipped, err := r.IndexUnindexedPacks(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range skipped {
			res.Damaged = append(res.Damaged, s.Error())
		}
		if n > 0 {
			r.ResetIndex()
			if names, files, err = r.LoadIndexFiles(ctx); err != nil {
				return nil, err
			}
		}
	}
	stored, err := storedPacks(ctx, r)
	if err != nil {
		return nil, err
	}

	stage("used blobs", 0, 0)
	used := newUsedSet()
	if err := markUsed(ctx, r, sns, used, opt.Damaged); err != nil {
		return nil, err
	}
	// WAL stored by rewind pg wal-push is named by WAL index files, not
	// by snapshots: every blob they name is in use.
	for _, b := range walUsed {
		used.add(b)
	}
	seen := make(map[id.ID]bool, len(sns))
	for _, sn := range sns {
		seen[sn.ID] = true
	}
	res.UsedBlobs = used.len()

	pl := makePlan(files, r.Index(), used, stored, opt.MaxUnused, opt.MaxRepackBytes)
	res.Packs = len(pl.keep) + len(pl.repack) + len(pl.condemn)
	res.TotalBytes = pl.totalSize
	for _, p := range pl.missing {
		res.MissingPacks = append(res.MissingPacks, p.String())
	}
	if len(pl.missing) > 0 {
		return res, fmt.Errorf("%w: packs the index lists that are not stored: %d (first: data/%s); run `rewind check`, then `rewind repair index` and `rewind repair snapshots`",
			ErrMissing, len(pl.missing), pl.missing[0])
	}
	for _, set := range [][]*packInfo{pl.keep, pl.repack, pl.condemn} {
		for _, pi := range set {
			res.UsedBytes += pi.usedBytes
			res.UnusedBytes += pi.unusedSize
		}
	}

	if opt.DryRun {
		for _, pi := range pl.repack {
			res.PacksRepacked++
			res.BytesRepacked += pi.usedBytes
		}
		for _, set := range [][]*packInfo{pl.repack, pl.condemn} {
			for _, pi := range set {
				res.PacksCondemned++
				res.BytesCondemned += pi.size
			}
		}
		if err := sweep(ctx, r, used, seen, stored, opt, res); err != nil {
			return res, err
		}
		if err := pruneInventories(ctx, r, opt, res); err != nil {
			return res, err
		}
		// What this run would condemn is deleted at its end if no other
		// lock is held now.
		live, err := opt.Locks(ctx)
		if err != nil {
			return res, err
		}
		if len(live) == 0 {
			res.PacksDeleted += res.PacksCondemned
			res.BytesFreed += res.BytesCondemned
		} else {
			res.PacksPending += res.PacksCondemned
			res.BytesPending += res.BytesCondemned
			for _, l := range live {
				res.WaitingFor = append(res.WaitingFor, l.Desc)
			}
			slices.Sort(res.WaitingFor)
			res.WaitingFor = slices.Compact(res.WaitingFor)
		}
		return res, nil
	}

	stage("repack", 0, len(pl.repack))
	done := 0
	copied, err := repack(ctx, r, pl, res, func(n int) {
		done += n
		stage("repack", done, len(pl.repack))
	})
	if err != nil {
		return res, err
	}
	res.PacksRepacked, res.BytesRepacked = len(pl.repack), copied

	condemned := append(append([]*packInfo{}, pl.condemn...), pl.repack...)
	if len(condemned) > 0 {
		stage("mark", 0, 0)
		if err := condemn(ctx, r, names, files, condemned, sns, opt); err != nil {
			return res, err
		}
		for _, pi := range condemned {
			res.PacksCondemned++
			res.BytesCondemned += pi.size
		}
	}

	stage("sweep", 0, 0)
	if err := sweep(ctx, r, used, seen, stored, opt, res); err != nil {
		return res, err
	}
	stage("inventories", 0, 0)
	if err := pruneInventories(ctx, r, opt, res); err != nil {
		return res, err
	}
	return res, nil
}

// condemn stores the mark for the condemned packs, replaces the index
// files read by one that leaves those packs out, and then records the
// fence: the locks held at that moment. The order is what makes a crash
// at any point safe (docs/FORMAT.md §12).
func condemn(ctx context.Context, r *repository.Repository, names []id.ID, files []*index.File, condemned []*packInfo, sns []*snapshot.Snapshot, opt Options) error {
	gone := make(map[id.ID]bool, len(condemned))
	m := &index.Mark{Time: opt.Now().UTC(), Host: opt.Host, Snapshots: make([]id.ID, 0, len(sns)), Locks: []string{}}
	for _, sn := range sns {
		m.Snapshots = append(m.Snapshots, sn.ID)
	}
	for _, pi := range condemned {
		gone[pi.entry.ID] = true
		m.Packs = append(m.Packs, pi.entry)
	}
	// 1. The mark, so that anyone who misses the packs in the index finds
	// them here.
	first, err := r.SaveMark(ctx, m)
	if err != nil {
		return err
	}
	// 2. One index file with every other pack, superseding all read.
	f := &index.File{Supersedes: names}
	listed := map[id.ID]bool{}
	for _, file := range files {
		for _, e := range file.Packs {
			if !gone[e.ID] && !listed[e.ID] {
				listed[e.ID] = true
				f.Packs = append(f.Packs, e)
			}
		}
	}
	if _, err := r.SaveIndexFile(ctx, f); err != nil {
		return err
	}
	for _, n := range names {
		h := backend.Handle{Type: backend.IndexFile, Name: n.String()}
		if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
			return fmt.Errorf("remove a superseded index file: %w", backend.Wrap("remove", h.String(), err))
		}
	}
	// 3. The fence: whoever holds a lock now may have read the old index.
	locks, err := opt.Locks(ctx)
	if err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	m.Fenced = true
	for _, l := range locks {
		m.Locks = append(m.Locks, l.ID)
	}
	if _, err := r.SaveMark(ctx, m); err != nil {
		return err
	}
	return removeMark(ctx, r, first)
}

func removeMark(ctx context.Context, r *repository.Repository, name id.ID) error {
	h := backend.Handle{Type: backend.GCFile, Name: name.String()}
	if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
		return backend.Wrap("remove", h.String(), err)
	}
	return nil
}

// storedPacks lists the packs in the backend with their sizes.
func storedPacks(ctx context.Context, r *repository.Repository) (map[id.ID]int64, error) {
	stored := map[id.ID]int64{}
	err := r.Backend().List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		if i, err := id.Parse(fi.Name); err == nil {
			stored[i] = fi.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	return stored, nil
}
