package repair

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// LostFile names a file left out of a repaired snapshot because its
// content is lost.
type LostFile struct {
	// Path is absolute inside the snapshot. Names that are not valid UTF-8
	// read as U+FFFD in JSON.
	Path string `json:"path"`
	// Size is the file's size: all of it is missing from the repaired
	// snapshot.
	Size uint64 `json:"size"`
}

// Record is a damage record: the sealed JSON file in damaged/ that marks
// a snapshot referencing lost data, and says what repair made of it.
// docs/FORMAT.md specifies it.
type Record struct {
	// Snapshot is the damaged snapshot, which stays in the repository.
	Snapshot id.ID `json:"snapshot"`
	// RepairedAs is the snapshot written in its place; nil when nothing
	// of it could be kept (its root listing is lost).
	RepairedAs *id.ID `json:"repaired_as,omitempty"`
	// Time is when the repair ran.
	Time time.Time `json:"time"`
	// LostFiles and LostDirs name the losses, sorted by path; LostDirs
	// are directories whose listing is lost in whole or in part.
	LostFiles []LostFile `json:"lost_files"`
	LostDirs  []string   `json:"lost_dirs"`
	// LostBlobs counts the distinct lost blobs the snapshot referenced and
	// that were found (blobs named only by a lost listing are not known).
	LostBlobs int `json:"lost_blobs"`
	// Unreadable, when set, says why the snapshot file itself could not be
	// read: what the snapshot held is unknown, nothing of it was kept, and
	// the lists above are empty.
	Unreadable string `json:"unreadable,omitempty"`

	// ID is the record's file name; it is not stored inside the file.
	ID id.ID `json:"-"`
}

// saveRecord stores rec and sets its ID.
func saveRecord(ctx context.Context, r *repository.Repository, rec *Record) error {
	if rec.LostFiles == nil {
		rec.LostFiles = []LostFile{}
	}
	if rec.LostDirs == nil {
		rec.LostDirs = []string{}
	}
	i, err := r.SaveJSON(ctx, backend.DamageFile, rec)
	if err != nil {
		return fmt.Errorf("save damage record of snapshot %s: %w", rec.Snapshot.Short(), err)
	}
	rec.ID = i
	return nil
}

// ListDamaged reads every damage record, by the damaged snapshot's ID.
// Records outlive the snapshots they name (a damaged snapshot may have
// been forgotten since). When a snapshot has several records (two repairs
// that ran at once), the oldest is returned. Records that cannot be read
// are left out and named in the error, which comes with the map of the
// readable ones, never nil.
func ListDamaged(ctx context.Context, r *repository.Repository) (map[id.ID]Record, error) {
	out := map[id.ID]Record{}
	names, err := r.List(ctx, backend.DamageFile)
	if err != nil {
		return out, err
	}
	var errs []error
	for _, name := range names {
		var rec Record
		if err := r.LoadJSON(ctx, backend.DamageFile, name, &rec); err != nil {
			errs = append(errs, err)
			continue
		}
		if rec.Snapshot.IsNull() {
			errs = append(errs, &repository.CorruptError{Op: "decode", Object: "damaged/" + name.String(), Err: errors.New("record names no snapshot")})
			continue
		}
		rec.ID = name
		if old, ok := out[rec.Snapshot]; ok && !older(&rec, &old) {
			continue
		}
		out[rec.Snapshot] = rec
	}
	return out, errors.Join(errs...)
}

// older orders records by time, then by ID.
func older(a, b *Record) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	return strings.Compare(a.ID.String(), b.ID.String()) < 0
}
