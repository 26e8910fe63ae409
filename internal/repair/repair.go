package repair

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// RepairedTag is added to the tags of every snapshot a repair writes.
const RepairedTag = "repaired"

// Options control a repair.
type Options struct {
	// ReadData reads every pack in full and treats blobs that fail to
	// verify as lost. Without it, data blobs count as lost only when the
	// index does not list them or their pack is not stored (tree blobs are
	// always read).
	ReadData bool
	// DryRun finds what is lost and writes nothing.
	DryRun bool
	// Forget removes each damaged snapshot once its repaired snapshot and
	// damage record are stored (also one repaired by an earlier run). The
	// damage record stays.
	Forget bool
	// ProgramVersion, when set, replaces the damaged snapshot's in the
	// repaired one, since this program wrote its trees.
	ProgramVersion string
	// Now gives the time recorded in damage records; nil means time.Now.
	Now func() time.Time
}

// Status says what a repair did with one snapshot.
type Status string

// The statuses.
const (
	// Intact: nothing the snapshot references is lost. Nothing written.
	Intact Status = "intact"
	// Repaired: a repaired snapshot (when anything could be kept) and a
	// damage record are stored.
	Repaired Status = "repaired"
	// AlreadyRepaired: a damage record for the snapshot was stored by an
	// earlier run; the snapshot was not examined again.
	AlreadyRepaired Status = "already_repaired"
	// Damaged: losses were found and nothing was written for them: in a
	// dry run, or when the repair stopped on an error before it got to
	// this snapshot.
	Damaged Status = "damaged"
	// Failed: the snapshot is damaged but could not be repaired (Err says
	// why); nothing was written for it.
	Failed Status = "failed"
)

// SnapshotResult is the outcome for one snapshot.
type SnapshotResult struct {
	Snapshot *snapshot.Snapshot
	Status   Status
	// RepairedAs is the snapshot that replaces it: written by this run, or
	// by an earlier one for AlreadyRepaired. nil when nothing could be
	// kept, and for Intact, Damaged and Failed.
	RepairedAs *id.ID
	// Record is the damage record's file name (Repaired, AlreadyRepaired).
	Record *id.ID
	// RecordTime is when the record was written (Repaired,
	// AlreadyRepaired).
	RecordTime time.Time
	// LostFiles, LostDirs and LostBlobs describe the losses, as in Record.
	LostFiles []LostFile
	LostDirs  []string
	LostBlobs int
	// Forgotten is true when the damaged snapshot was removed (Forget).
	Forgotten bool
	// Err is why a snapshot Failed.
	Err error
}

// Result is what a repair found and did.
type Result struct {
	// Snapshots has one entry per snapshot given, oldest first.
	Snapshots []SnapshotResult
	// MissingPacks are packs the index lists that are not stored. Their
	// blobs are lost; until `rewind repair index` drops them from the
	// index, backups take those blobs for stored and do not store them
	// again.
	MissingPacks []id.ID
	// Warnings are problems that did not stop the repair, such as damage
	// records that cannot be read.
	Warnings []string
	// Unreadable are the snapshot files that cannot be read, as
	// RecordUnreadable left them.
	Unreadable []UnreadableResult
}

// plan is a damaged snapshot to finish after the new trees are flushed.
type plan struct {
	res      *SnapshotResult
	newTree  []id.ID            // nil: nothing kept
	existing *snapshot.Snapshot // stored by an interrupted earlier run
}

// Snapshots examines sns and repairs the damaged ones, as the package
// documentation describes. The index must be loaded. The returned error is
// for failures to run at all (the backend failing, the context ending);
// a snapshot that cannot be repaired is reported in its result.
func Snapshots(ctx context.Context, r *repository.Repository, sns []*snapshot.Snapshot, opt Options) (*Result, error) {
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	res := &Result{}
	records, err := ListDamaged(ctx, r)
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("damage records: %v", err))
	}
	// A repaired snapshot whose record was never written (a crash between
	// the two) is found by its Original field, so that it is not written
	// a second time.
	all, err := snapshot.List(ctx, r, func(id.ID, error) {})
	if err != nil {
		return nil, err
	}
	repairedFrom := map[id.ID]*snapshot.Snapshot{}
	for _, sn := range all {
		if sn.Original != nil {
			if _, ok := repairedFrom[*sn.Original]; !ok {
				repairedFrom[*sn.Original] = sn
			}
		}
	}
	state, err := newBlobState(ctx, r, opt.ReadData)
	if err != nil {
		return nil, err
	}
	res.MissingPacks = state.missing

	sns = slices.Clone(sns)
	snapshot.SortByTime(sns)
	res.Snapshots = make([]SnapshotResult, len(sns))
	w := newRewriter(r, state, !opt.DryRun)
	if !opt.DryRun {
		r.StartWriting(ctx)
	}
	var plans []plan
	for n, sn := range sns {
		sr := &res.Snapshots[n]
		sr.Snapshot = sn
		if rec, ok := records[sn.ID]; ok {
			sr.Status = AlreadyRepaired
			fromRecord(sr, &rec)
			continue
		}
		d, err := w.dir(ctx, sn.Tree)
		if errors.Is(err, ErrUnstorable) {
			sr.Status, sr.Err = Failed, err
			continue
		}
		if err != nil {
			abandon(ctx, r, opt)
			return nil, fmt.Errorf("snapshot %s: %w", sn.ID.Short(), err)
		}
		if !d.changed {
			sr.Status = Intact
			continue
		}
		for _, f := range d.files {
			sr.LostFiles = append(sr.LostFiles, LostFile{Path: "/" + f.Path, Size: f.Size})
		}
		for _, p := range d.dirs {
			sr.LostDirs = append(sr.LostDirs, "/"+p)
		}
		slices.SortFunc(sr.LostFiles, func(a, b LostFile) int { return strings.Compare(a.Path, b.Path) })
		slices.Sort(sr.LostDirs)
		sr.LostBlobs = len(d.blobs)
		// Damaged until finish has stored what replaces it.
		sr.Status = Damaged
		if opt.DryRun {
			continue
		}
		p := plan{res: sr, existing: repairedFrom[sn.ID]}
		if d.entries > 0 {
			p.newTree = d.ids
		}
		plans = append(plans, p)
	}
	if opt.DryRun {
		return res, nil
	}
	// The new trees are in packs listed by an index file before any
	// snapshot refers to them.
	if err := r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("store new trees: %w", err)
	}
	for _, p := range plans {
		if err := finish(ctx, r, p, opt, now); err != nil {
			return res, err
		}
	}
	if opt.Forget {
		for n := range res.Snapshots {
			sr := &res.Snapshots[n]
			if sr.Status == AlreadyRepaired {
				if err := forget(ctx, r, sr); err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

// abandon ends a write session after a failure; what it stored is left
// for prune, as after an interrupted backup.
func abandon(ctx context.Context, r *repository.Repository, opt Options) {
	if !opt.DryRun {
		_ = r.Flush(ctx)
	}
}

// finish stores the repaired snapshot of one plan (unless an earlier run
// stored it), then its damage record, then with Forget removes the
// damaged snapshot.
func finish(ctx context.Context, r *repository.Repository, p plan, opt Options, now func() time.Time) error {
	sr := p.res
	sn := sr.Snapshot
	switch {
	case p.existing != nil:
		i := p.existing.ID
		sr.RepairedAs = &i
	case p.newTree != nil:
		rs := repairedSnapshot(sn, p.newTree, sr, opt.ProgramVersion)
		if err := snapshot.Save(ctx, r, rs); err != nil {
			return fmt.Errorf("save repaired snapshot of %s: %w", sn.ID.Short(), err)
		}
		i := rs.ID
		sr.RepairedAs = &i
	}
	rec := &Record{
		Snapshot:   sn.ID,
		RepairedAs: sr.RepairedAs,
		Time:       now().UTC(),
		LostFiles:  sr.LostFiles,
		LostDirs:   sr.LostDirs,
		LostBlobs:  sr.LostBlobs,
	}
	if err := saveRecord(ctx, r, rec); err != nil {
		return err
	}
	sr.Status = Repaired
	sr.Record = &rec.ID
	sr.RecordTime = rec.Time
	if opt.Forget {
		return forget(ctx, r, sr)
	}
	return nil
}

// repairedSnapshot returns the snapshot that replaces sn: the same
// snapshot with tree, tag "repaired" and Original. The summary's totals
// lose the lost files; the rest of it describes the original backup.
func repairedSnapshot(sn *snapshot.Snapshot, root []id.ID, sr *SnapshotResult, version string) *snapshot.Snapshot {
	rs := *sn
	rs.ID = id.ID{}
	rs.Tree = root
	orig := sn.ID
	rs.Original = &orig
	rs.Paths = slices.Clone(sn.Paths)
	rs.Excludes = slices.Clone(sn.Excludes)
	rs.Tags = slices.Clone(sn.Tags)
	if !slices.Contains(rs.Tags, RepairedTag) {
		rs.Tags = append(rs.Tags, RepairedTag)
	}
	if version != "" {
		rs.ProgramVersion = version
	}
	if sn.Summary != nil {
		sum := *sn.Summary
		sum.Errors = slices.Clone(sn.Summary.Errors)
		for _, f := range sr.LostFiles {
			sum.TotalFiles = max(0, sum.TotalFiles-1)
			sum.TotalBytes = max(0, sum.TotalBytes-int64(f.Size))
		}
		rs.Summary = &sum
	}
	return &rs
}

// forget removes a damaged snapshot whose record is stored, provided the
// snapshot that replaces it (if any) is still there.
func forget(ctx context.Context, r *repository.Repository, sr *SnapshotResult) error {
	if sr.RepairedAs != nil {
		h := backend.Handle{Type: backend.SnapshotFile, Name: sr.RepairedAs.String()}
		if _, err := r.Backend().Stat(ctx, h); err != nil {
			if backend.IsNotExist(err) {
				return nil // its replacement is gone: keep what is left
			}
			return fmt.Errorf("stat repaired snapshot: %w", err)
		}
	}
	h := backend.Handle{Type: backend.SnapshotFile, Name: sr.Snapshot.ID.String()}
	if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
		return fmt.Errorf("forget damaged snapshot %s: %w", sr.Snapshot.ID.Short(), err)
	}
	sr.Forgotten = true
	return nil
}

// fromRecord fills a result from a stored damage record.
func fromRecord(sr *SnapshotResult, rec *Record) {
	sr.RepairedAs = rec.RepairedAs
	i := rec.ID
	sr.Record = &i
	sr.RecordTime = rec.Time
	sr.LostFiles = rec.LostFiles
	sr.LostDirs = rec.LostDirs
	sr.LostBlobs = rec.LostBlobs
}
