package runbook

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Version is the format version of the runbook files this package writes.
const Version = 1

// Keep is how many runbooks of each host Write keeps: older ones go.
const Keep = 10

// Record is a runbook as stored in the runbooks/ folder (docs/FORMAT.md
// §20): both renderings, so that it can be read without the facts it
// was made of.
type Record struct {
	Version int    `json:"version"`
	Host    string `json:"hostname"`
	// Time is when the runbook was written.
	Time     time.Time `json:"time"`
	Snapshot string    `json:"snapshot_id"`
	Markdown string    `json:"markdown"`
	HTML     string    `json:"html"`
}

// Stored is a record read back, with its file name.
type Stored struct {
	Record
	File id.ID
}

// Errors of this package.
var (
	// ErrNone: no runbook of the host is stored.
	ErrNone = errors.New("no runbook stored")
	// ErrNewerVersion: a runbook written by a newer rewind.
	ErrNewerVersion = errors.New("runbook written by a newer rewind")
)

// Decode reads a runbook file's JSON. Unknown fields are ignored; the
// version must be one this rewind reads, and the host, time and markdown
// must be set.
func Decode(plain []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(plain, &r); err != nil {
		return nil, fmt.Errorf("decode runbook: %w", err)
	}
	switch {
	case r.Version <= 0:
		return nil, fmt.Errorf("decode runbook: bad version %d", r.Version)
	case r.Version > Version:
		return nil, fmt.Errorf("%w: version %d, this rewind reads up to %d", ErrNewerVersion, r.Version, Version)
	case r.Host == "":
		return nil, errors.New("decode runbook: no hostname")
	case r.Time.IsZero():
		return nil, errors.New("decode runbook: no time")
	case r.Markdown == "":
		return nil, errors.New("decode runbook: no content")
	}
	return &r, nil
}

// List reads the stored runbooks of host ("" for every host), oldest
// first. Files that fail to decrypt or decode are returned apart.
func List(ctx context.Context, r *repository.Repository, host string) ([]Stored, []repository.UnreadableFile, error) {
	var out []Stored
	bad, err := r.LoadEach(ctx, backend.RunbookFile, func(name id.ID, plain []byte) error {
		rec, err := Decode(plain)
		if err != nil {
			return err
		}
		if host == "" || rec.Host == host {
			out = append(out, Stored{Record: *rec, File: name})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("runbooks: %w", err)
	}
	slices.SortFunc(out, func(a, b Stored) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.File.String(), b.File.String()))
	})
	return out, bad, nil
}

// Newest returns the newest stored runbook of host, or ErrNone.
func Newest(ctx context.Context, r *repository.Repository, host string) (*Stored, error) {
	all, _, err := List(ctx, r, host)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w for host %q", ErrNone, host)
	}
	return &all[len(all)-1], nil
}

// Write stores rec unless the host's newest stored runbook has the same
// content, then removes the host's runbooks older than the newest keep.
// It returns the file that holds the content and whether it is new.
func Write(ctx context.Context, r *repository.Repository, rec Record, keep int) (id.ID, bool, error) {
	rec.Version = Version
	rec.Time = rec.Time.UTC()
	all, _, err := List(ctx, r, rec.Host)
	if err != nil {
		return id.ID{}, false, err
	}
	if n := len(all); n > 0 && all[n-1].Markdown == rec.Markdown && all[n-1].HTML == rec.HTML {
		return all[n-1].File, false, nil
	}
	name, err := r.SaveJSON(ctx, backend.RunbookFile, &rec)
	if err != nil {
		return id.ID{}, false, fmt.Errorf("save runbook of %s: %w", rec.Host, err)
	}
	all = append(all, Stored{Record: rec, File: name})
	for len(all) > max(keep, 1) {
		h := backend.Handle{Type: backend.RunbookFile, Name: all[0].File.String()}
		if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
			return name, true, backend.Wrap("remove", h.String(), err)
		}
		all = all[1:]
	}
	return name, true, nil
}
