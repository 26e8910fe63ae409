package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// sweep is phase two of the protocol. It reads the stored index and marks
// afresh, finds the blobs that snapshots stored since each mark reference,
// revives the condemned packs that hold such a blob (with no other copy in
// the index) or that an index file lists again, and deletes the other
// condemned packs of every mark whose fence has passed.
//
// used holds the blobs referenced by the snapshots in seen; stored maps
// packs to their sizes.
func sweep(ctx context.Context, r *repository.Repository, used *usedSet, seen map[id.ID]bool, stored map[id.ID]int64, opt Options, res *Result) error {
	// Snapshots stored since phase one may reference condemned blobs:
	// a backup that read the index before the mark deduplicated against
	// them. They are listed before the index is read, as in phase one, so
	// that the index read lists every blob they reference, and after the
	// locks: a backup whose lock is not listed has stored its snapshot.
	live, err := opt.Locks(ctx)
	if err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	var fresh []*snapshot.Snapshot
	var unreadable error
	sns, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		if unreadable == nil {
			unreadable = fmt.Errorf("snapshot %s cannot be read, so nothing is deleted: %w", i.Short(), err)
		}
	})
	if err != nil {
		return err
	}
	if unreadable != nil {
		return unreadable
	}
	walUsed, err := walBlobs(ctx, r)
	if err != nil {
		return err
	}
	r.ResetIndex()
	if err := r.LoadIndex(ctx); err != nil {
		return err
	}
	if d := r.IndexDamage(); d != nil {
		return fmt.Errorf("nothing is deleted: %w", d.Err())
	}
	marks, bad, err := r.LoadMarks(ctx)
	if err != nil {
		return err
	}
	for name, err := range bad {
		res.BadMarks = append(res.BadMarks, fmt.Sprintf("gc/%s: %v", name, err))
	}
	if len(marks) == 0 {
		return nil
	}
	for _, sn := range sns {
		if !seen[sn.ID] {
			fresh = append(fresh, sn)
		}
	}
	if err := markUsed(ctx, r, fresh, used, opt.Damaged); err != nil {
		return err
	}
	for _, b := range walUsed {
		used.add(b)
	}

	held := map[string]string{}
	for _, l := range live {
		held[l.ID] = l.Desc
	}
	indexed := map[id.ID]bool{}
	for _, p := range r.Index().Packs() {
		indexed[p] = true
	}

	// Which packs to revive, and which marks may delete.
	revive := map[id.ID]index.PackEntry{}
	inIndex := map[id.ID]bool{}
	needed := func(p index.PackEntry) bool {
		for _, b := range p.Blobs {
			if used.has(b.ID) && !r.Index().Has(b.ID) {
				return true
			}
		}
		return false
	}
	clear := map[id.ID]bool{} // mark name -> its fence has passed
	waiting := map[string]bool{}
	for name, m := range marks {
		for _, p := range m.Packs {
			switch {
			case indexed[p.ID]:
				inIndex[p.ID] = true
			case needed(p):
				revive[p.ID] = p
			}
		}
		locks := m.Locks
		if !m.Fenced {
			// The prune that made this mark stopped before recording its
			// fence. The packs that an index file still lists are revived
			// above; the others are out of the index now, so the locks held
			// now are a valid fence for them.
			locks = lockIDs(live)
		}
		ok := true
		for _, l := range locks {
			if desc, h := held[l]; h {
				ok = false
				waiting[desc] = true
			}
		}
		clear[name] = ok
	}
	// A pack listed by several marks (a crash between a revival and the
	// shrinking of a mark) is deleted only when every one of them allows.
	deletable := map[id.ID]bool{}
	for name, m := range marks {
		for _, p := range m.Packs {
			if v, seen := deletable[p.ID]; !seen || v {
				deletable[p.ID] = clear[name]
			}
		}
	}

	res.PacksRevived = len(revive) + len(inIndex)
	for d := range waiting {
		res.WaitingFor = append(res.WaitingFor, d)
	}
	slices.Sort(res.WaitingFor)
	if opt.DryRun {
		for _, m := range marks {
			for _, p := range m.Packs {
				if revive[p.ID].ID.IsNull() && !inIndex[p.ID] {
					if deletable[p.ID] {
						res.PacksDeleted++
						res.BytesFreed += stored[p.ID]
					} else {
						res.PacksPending++
						res.BytesPending += stored[p.ID]
					}
				}
			}
		}
		return nil
	}

	// 1. Revived packs go back into the index before any mark forgets
	// them.
	if len(revive) > 0 {
		f := &index.File{}
		for _, p := range revive {
			f.Packs = append(f.Packs, p)
		}
		slices.SortFunc(f.Packs, func(a, b index.PackEntry) int { return slices.Compare(a.ID[:], b.ID[:]) })
		if _, err := r.SaveIndexFile(ctx, f); err != nil {
			return err
		}
		r.Index().AddFiles([]*index.File{f})
	}

	// 2. Per mark: delete what may be deleted, then drop or shrink it.
	var locked objectLocked
	for _, name := range sortedNames(marks) {
		m := marks[name]
		var keep []index.PackEntry
		deleted := map[id.ID]bool{}
		for _, p := range m.Packs {
			if !revive[p.ID].ID.IsNull() || inIndex[p.ID] {
				continue
			}
			if !deletable[p.ID] {
				keep = append(keep, p)
				continue
			}
			if !deleted[p.ID] {
				err := removePack(ctx, r, p.ID)
				if errors.Is(err, backend.ErrLocked) {
					keep = append(keep, p)
					locked.note(err)
					continue
				}
				if err != nil {
					return err
				}
				deleted[p.ID] = true
				if size, ok := stored[p.ID]; ok {
					res.PacksDeleted++
					res.BytesFreed += size
					delete(stored, p.ID)
				}
			}
		}
		for _, p := range keep {
			res.PacksPending++
			res.BytesPending += stored[p.ID]
		}
		switch {
		case len(keep) == 0:
			if err := removeMark(ctx, r, name); err != nil {
				return err
			}
		case !m.Fenced:
			// The prune that made this mark stopped before recording its
			// fence; the index no longer lists these packs, so the fence
			// can be recorded now.
			if err := replaceMark(ctx, r, name, m, keep, lockIDs(live)); err != nil {
				return err
			}
		case len(keep) < len(m.Packs):
			if err := replaceMark(ctx, r, name, m, keep, m.Locks); err != nil {
				return err
			}
		}
	}
	locked.report(res)
	return nil
}

// replaceMark stores a copy of m with only the packs in keep, fenced by
// locks, and then removes the old mark.
func replaceMark(ctx context.Context, r *repository.Repository, old id.ID, m *index.Mark, keep []index.PackEntry, locks []string) error {
	n := *m
	n.Packs = keep
	n.Fenced = true
	n.Locks = locks
	if _, err := r.SaveMark(ctx, &n); err != nil {
		return err
	}
	return removeMark(ctx, r, old)
}

func removePack(ctx context.Context, r *repository.Repository, p id.ID) error {
	h := backend.Handle{Type: backend.PackFile, Name: p.String()}
	if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
		return fmt.Errorf("delete a condemned pack: %w", backend.Wrap("remove", h.String(), err))
	}
	return nil
}

func lockIDs(ls []LockRef) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func sortedNames(marks map[id.ID]*index.Mark) []id.ID {
	names := make([]id.ID, 0, len(marks))
	for n := range marks {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b id.ID) int { return strings.Compare(a.String(), b.String()) })
	return names
}

// objectLocked gathers the condemned packs whose deletion S3 object lock
// refused (an error wrapping backend.ErrLocked, docs/OBJECT-LOCK.md). They
// stay condemned in their mark, and a prune after their retention deletes
// them; the prune reports them among what it waits for.
type objectLocked struct {
	n     int
	until time.Time // the latest end of retention known
}

func (o *objectLocked) note(err error) {
	o.n++
	var lu interface{ RetainUntil() time.Time }
	if errors.As(err, &lu) && lu.RetainUntil().After(o.until) {
		o.until = lu.RetainUntil()
	}
}

func (o *objectLocked) report(res *Result) {
	if o.n == 0 {
		return
	}
	s := fmt.Sprintf("S3 object lock, which keeps %d of them until their retention ends", o.n)
	if !o.until.IsZero() {
		s += " (" + o.until.UTC().Format(time.RFC3339) + " at the latest)"
	}
	res.WaitingFor = append(res.WaitingFor, s)
}
