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

// Unreadable is the status of a snapshot whose file cannot be read: it
// does not verify, decrypt or decode. Nothing of it can be kept, since
// the file was the record of its trees; a damage record says so.
const Unreadable Status = "unreadable"

// UnreadableSnapshot is a snapshot file that failed to load with
// repository.ErrCorrupt.
type UnreadableSnapshot struct {
	ID  id.ID
	Err error
}

// UnreadableResult is what RecordUnreadable did for one snapshot file.
type UnreadableResult struct {
	Snapshot id.ID
	// Err is why the file cannot be read.
	Err error
	// Record is the damage record's name: stored by this call, or by an
	// earlier one (Before). Nil in a dry run without an earlier record.
	Record *id.ID
	// Before is true when an earlier run had stored the record.
	Before bool
	// Forgotten is true when the snapshot file was removed.
	Forgotten bool
}

// ListSnapshots loads every snapshot like snapshot.List and returns the
// files that fail verification or decoding apart, sorted by ID, instead of
// only reporting them. Any other failure (the storage) is an error.
func ListSnapshots(ctx context.Context, r *repository.Repository) ([]*snapshot.Snapshot, []UnreadableSnapshot, error) {
	var bad []UnreadableSnapshot
	var other error
	sns, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		switch {
		case errors.Is(err, repository.ErrCorrupt):
			bad = append(bad, UnreadableSnapshot{ID: i, Err: err})
		case backend.IsNotExist(err): // forgotten since the listing
		case other == nil:
			other = fmt.Errorf("read snapshot %s: %w", i.Short(), err)
		}
	})
	if err == nil {
		err = other
	}
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(bad, func(a, b UnreadableSnapshot) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return sns, bad, nil
}

// RecordUnreadable stores a damage record for each unreadable snapshot
// file that has none yet, and with opt.Forget then removes the file. With
// opt.DryRun it only says what it would do. The record is stored before
// the file is removed, so that the loss stays on file whatever happens.
func RecordUnreadable(ctx context.Context, r *repository.Repository, bad []UnreadableSnapshot, opt Options) ([]UnreadableResult, []string, error) {
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	var warnings []string
	records, err := ListDamaged(ctx, r)
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("damage records: %v", err))
	}
	out := make([]UnreadableResult, 0, len(bad))
	for _, u := range bad {
		res := UnreadableResult{Snapshot: u.ID, Err: u.Err}
		if rec, ok := records[u.ID]; ok {
			i := rec.ID
			res.Record, res.Before = &i, true
		} else if !opt.DryRun {
			rec := &Record{Snapshot: u.ID, Time: now().UTC(), Unreadable: u.Err.Error()}
			if err := saveRecord(ctx, r, rec); err != nil {
				return out, warnings, err
			}
			res.Record = &rec.ID
		}
		if opt.Forget && !opt.DryRun {
			h := backend.Handle{Type: backend.SnapshotFile, Name: u.ID.String()}
			if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
				return out, warnings, fmt.Errorf("forget unreadable snapshot %s: %w", u.ID.Short(), err)
			}
			res.Forgotten = true
		}
		out = append(out, res)
	}
	return out, warnings, nil
}
