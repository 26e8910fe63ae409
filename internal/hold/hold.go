// Package hold keeps legal holds: marks that put a snapshot beyond the
// reach of forget until they are lifted (rewind protect and unprotect).
//
// A hold is a small sealed JSON file in the holds/ folder, named after its
// stored bytes like a snapshot, that names one snapshot. A snapshot is
// protected while any hold file names it. Holds are separate files, not a
// field of the snapshot, because snapshot files are immutable and named
// after their content: a hold can be added and removed without touching
// the snapshot.
//
// A hold file that cannot be read might protect any snapshot, so List
// reports it and the caller that removes snapshots must stop (see
// Set.CheckReadable) rather than treat it as absent.
package hold

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// ErrUnreadable: a hold file could not be read, so it is unknown which
// snapshot it protects.
var ErrUnreadable = errors.New("unreadable hold file")

// Hold puts one snapshot under legal hold.
type Hold struct {
	// Snapshot is the ID of the protected snapshot.
	Snapshot id.ID `json:"snapshot"`
	// Time is when the hold was made; Host and User who made it.
	Time time.Time `json:"time"`
	Host string    `json:"host"`
	User string    `json:"user"`
	// Reason is free text given with `rewind protect --reason`.
	Reason string `json:"reason"`

	// File is the hold's file name; it is not stored inside the file.
	File id.ID `json:"-"`
}

// Decode reads the JSON of a hold file. Fields it does not know are
// ignored (a newer rewind may add some; ignoring them can only keep a
// snapshot longer), but the snapshot must be named.
func Decode(plain []byte) (*Hold, error) {
	var h Hold
	if err := json.Unmarshal(plain, &h); err != nil {
		return nil, err
	}
	if h.Snapshot.IsNull() {
		return nil, errors.New("the hold names no snapshot")
	}
	return &h, nil
}

// Unreadable is a hold file that failed to load, decrypt or decode.
type Unreadable = repository.UnreadableFile

// Set is every hold of a repository.
type Set struct {
	// BySnapshot lists the holds of each protected snapshot, oldest
	// first.
	BySnapshot map[id.ID][]Hold
	// Unreadable lists the hold files that could not be read, by name.
	Unreadable []Unreadable
}

// Protected reports whether a readable hold names sn.
func (s *Set) Protected(sn id.ID) bool { return len(s.BySnapshot[sn]) > 0 }

// Reasons returns the reason of each hold of sn.
func (s *Set) Reasons(sn id.ID) []string {
	var out []string
	for _, h := range s.BySnapshot[sn] {
		out = append(out, h.Reason)
	}
	return out
}

// CheckReadable fails when any hold file could not be read: such a file
// may protect any snapshot, so nothing may be removed until it is dealt
// with. The error names the files and says what to do.
func (s *Set) CheckReadable() error {
	if len(s.Unreadable) == 0 {
		return nil
	}
	var b strings.Builder
	for _, u := range s.Unreadable {
		fmt.Fprintf(&b, "\n  holds/%s: %v", u.File, u.Err)
	}
	return fmt.Errorf("%w: hold files that cannot be read: %d; each may protect any snapshot, so no snapshot can be removed:%s\n"+
		"Restore these files from a copy of the repository, or, if you are sure they hold nothing that must be kept, delete them from the repository's holds folder by hand",
		ErrUnreadable, len(s.Unreadable), b.String())
}

// List reads every hold of r. Files that fail to decrypt, verify or
// decode are listed in Set.Unreadable; any other error (the storage
// failing) is returned.
func List(ctx context.Context, r *repository.Repository) (*Set, error) {
	s := &Set{BySnapshot: map[id.ID][]Hold{}}
	bad, err := r.LoadEach(ctx, backend.HoldFile, func(name id.ID, plain []byte) error {
		h, err := Decode(plain)
		if err != nil {
			return err
		}
		h.File = name
		s.BySnapshot[h.Snapshot] = append(s.BySnapshot[h.Snapshot], *h)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("holds: %w", err)
	}
	s.Unreadable = bad
	for _, hs := range s.BySnapshot {
		slices.SortFunc(hs, func(a, b Hold) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return bytes.Compare(a.File[:], b.File[:])
		})
	}
	return s, nil
}

// Protect puts h.Snapshot under legal hold unless s already shows a hold
// on it. It returns the hold in force and whether it made a new one.
func Protect(ctx context.Context, r *repository.Repository, s *Set, h Hold) (Hold, bool, error) {
	if h.Snapshot.IsNull() {
		return Hold{}, false, errors.New("protect: no snapshot named")
	}
	if old := s.BySnapshot[h.Snapshot]; len(old) > 0 {
		return old[0], false, nil
	}
	h.Time = h.Time.UTC()
	name, err := r.SaveJSON(ctx, backend.HoldFile, &h)
	if err != nil {
		return Hold{}, false, fmt.Errorf("protect snapshot %s: %w", h.Snapshot.Short(), err)
	}
	h.File = name
	s.BySnapshot[h.Snapshot] = []Hold{h}
	return h, true, nil
}

// Unprotect removes every hold of s on sn and returns the holds removed.
// Holds in s.Unreadable are not touched: whether they name sn is unknown.
func Unprotect(ctx context.Context, r *repository.Repository, s *Set, sn id.ID) ([]Hold, error) {
	var removed []Hold
	for _, h := range s.BySnapshot[sn] {
		hf := backend.Handle{Type: backend.HoldFile, Name: h.File.String()}
		err := r.Backend().Remove(ctx, hf)
		if err != nil && !backend.IsNotExist(err) {
			s.BySnapshot[sn] = slices.DeleteFunc(s.BySnapshot[sn], func(x Hold) bool {
				return slices.ContainsFunc(removed, func(y Hold) bool { return y.File == x.File })
			})
			return removed, fmt.Errorf("unprotect snapshot %s: %w", sn.Short(), backend.Wrap("remove", hf.String(), err))
		}
		removed = append(removed, h)
	}
	delete(s.BySnapshot, sn)
	return removed, nil
}
