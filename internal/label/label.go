// Package label keeps labels: named points in time recorded with
// `rewind mark`, such as "before nginx upgrade". A label can be given
// wherever a time can (`--at LABEL`), and forget keeps the snapshot that
// held each labelled moment until the label is removed (`rewind unmark`).
//
// A label is a small sealed JSON file in the labels/ folder, named after
// its stored bytes like a snapshot or a legal hold. Labels are separate
// files because snapshot files are immutable: a label can be added to any
// moment and removed again without touching the snapshots.
//
// A label file that cannot be read might keep any snapshot, so List
// reports it and a caller that removes snapshots must stop (see
// Set.CheckReadable) rather than treat it as absent.
package label

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Errors of this package.
var (
	// ErrUnreadable: a label file could not be read, so it is unknown
	// which moment it names.
	ErrUnreadable = errors.New("unreadable label file")
	// ErrExists: Mark was asked for a name that is already in use.
	ErrExists = errors.New("label already exists")
	// ErrNotFound: no label has the name asked for.
	ErrNotFound = errors.New("no such label")
	// ErrBadName: a name that cannot be a label.
	ErrBadName = errors.New("invalid label")
)

// MaxNameLen is the longest label name, in bytes.
const MaxNameLen = 200

// Label names one moment. Its JSON form is the content of a label file
// (docs/CONTINUOUS.md).
type Label struct {
	// Name is what the user calls the moment: "before nginx upgrade".
	Name string `json:"label"`
	// Time is the moment itself, in UTC.
	Time time.Time `json:"time"`
	// Note is free text given with `rewind mark --note`.
	Note string `json:"note"`
	// Host and User made the label.
	Host string `json:"host"`
	User string `json:"user"`

	// File is the label's file name; it is not stored inside the file.
	File id.ID `json:"-"`
}

// ValidName checks that name can be a label: not empty, at most
// MaxNameLen bytes of valid UTF-8 without control characters, no space at
// either end, and not starting with "-" (which reads as a flag or a
// relative time).
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrBadName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: the name is longer than %d bytes", ErrBadName, MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrBadName, name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: %q starts or ends with a space", ErrBadName, name)
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("%w: %q starts with \"-\"", ErrBadName, name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %q holds a control character", ErrBadName, name)
	}
	return nil
}

// Decode reads the JSON of a label file. Fields it does not know are
// ignored (a newer rewind may add some), but the name and time must be
// set.
func Decode(plain []byte) (*Label, error) {
	var l Label
	if err := json.Unmarshal(plain, &l); err != nil {
		return nil, err
	}
	if l.Name == "" {
		return nil, errors.New("the label has no name")
	}
	if l.Time.IsZero() {
		return nil, errors.New("the label has no time")
	}
	return &l, nil
}

// Unreadable is a label file that failed to load, decrypt or decode.
type Unreadable = repository.UnreadableFile

// Set is every label of a repository.
type Set struct {
	// Labels are sorted by time, oldest first (then by name and file).
	Labels []Label
	// Unreadable lists the label files that could not be read, by name.
	Unreadable []Unreadable
}

// Named returns the labels called name, oldest first. There is more than
// one only when two clients marked the same name at once.
func (s *Set) Named(name string) []Label {
	var out []Label
	for _, l := range s.Labels {
		if l.Name == name {
			out = append(out, l)
		}
	}
	return out
}

// Lookup returns the label called name; if there are several, the newest.
func (s *Set) Lookup(name string) (Label, bool) {
	ls := s.Named(name)
	if len(ls) == 0 {
		return Label{}, false
	}
	return ls[len(ls)-1], true
}

// CheckReadable fails when any label file could not be read: such a file
// may keep any snapshot, so none may be removed by a policy until it is
// dealt with. The error names the files and says what to do.
func (s *Set) CheckReadable() error {
	if len(s.Unreadable) == 0 {
		return nil
	}
	var b strings.Builder
	for _, u := range s.Unreadable {
		fmt.Fprintf(&b, "\n  labels/%s: %v", u.File, u.Err)
	}
	return fmt.Errorf("%w: label files that cannot be read: %d; each may keep any snapshot, so no snapshot can be removed by a policy:%s\n"+
		"Restore these files from a copy of the repository, or, if you are sure they name no moment you need, delete them from the repository's labels folder by hand",
		ErrUnreadable, len(s.Unreadable), b.String())
}

// List reads every label of r. Files that fail to decrypt, verify or
// decode are listed in Set.Unreadable; any other error (the storage
// failing) is returned.
func List(ctx context.Context, r *repository.Repository) (*Set, error) {
	s := &Set{}
	bad, err := r.LoadEach(ctx, backend.LabelFile, func(name id.ID, plain []byte) error {
		l, err := Decode(plain)
		if err != nil {
			return err
		}
		l.File = name
		s.Labels = append(s.Labels, *l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	s.Unreadable = bad
	sortLabels(s.Labels)
	return s, nil
}

func sortLabels(ls []Label) {
	slices.SortFunc(ls, func(a, b Label) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return bytes.Compare(a.File[:], b.File[:])
	})
}

// Mark stores l as a new label and adds it to s. It refuses a name that
// is not valid or that s already holds: a label names one moment, so an
// old label must be unmarked before its name is used again.
func Mark(ctx context.Context, r *repository.Repository, s *Set, l Label) (Label, error) {
	if err := ValidName(l.Name); err != nil {
		return Label{}, err
	}
	if l.Time.IsZero() {
		return Label{}, errors.New("mark: no time given")
	}
	if old, ok := s.Lookup(l.Name); ok {
		return Label{}, fmt.Errorf("%w: %q marks %s", ErrExists, l.Name, old.Time.Local().Format("2006-01-02 15:04:05"))
	}
	l.Time = l.Time.UTC()
	name, err := r.SaveJSON(ctx, backend.LabelFile, &l)
	if err != nil {
		return Label{}, fmt.Errorf("mark %q: %w", l.Name, err)
	}
	l.File = name
	s.Labels = append(s.Labels, l)
	sortLabels(s.Labels)
	return l, nil
}

// Unmark removes every label of s called name and returns the labels
// removed. Labels in s.Unreadable are not touched: their names are
// unknown.
func Unmark(ctx context.Context, r *repository.Repository, s *Set, name string) ([]Label, error) {
	victims := s.Named(name)
	if len(victims) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	var removed []Label
	defer func() {
		s.Labels = slices.DeleteFunc(s.Labels, func(x Label) bool {
			return slices.ContainsFunc(removed, func(y Label) bool { return y.File == x.File })
		})
	}()
	for _, l := range victims {
		h := backend.Handle{Type: backend.LabelFile, Name: l.File.String()}
		err := r.Backend().Remove(ctx, h)
		if err != nil && !backend.IsNotExist(err) {
			return removed, fmt.Errorf("unmark %q: %w", name, backend.Wrap("remove", h.String(), err))
		}
		removed = append(removed, l)
	}
	return removed, nil
}
