package event

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

// Retention of the event log: the agent removes events older than
// KeepFor, but always keeps the newest KeepLast of each job on each host
// whatever their age. Prune never removes events.
const (
	KeepFor  = 90 * 24 * time.Hour
	KeepLast = 1000
)

// Stored is a run read back from the repository, with its file name.
type Stored struct {
	Run
	// File is the event's file name in events/.
	File id.ID `json:"id"`
}

// Filter selects events; zero fields match everything.
type Filter struct {
	Job   string
	Host  string
	Since time.Time
}

func (f Filter) match(r *Run) bool {
	return (f.Job == "" || r.Job == f.Job) &&
		(f.Host == "" || r.Host == f.Host) &&
		(f.Since.IsZero() || !r.Start.Before(f.Since))
}

// Unreadable is an event file that failed to load, decrypt or decode.
type Unreadable = repository.UnreadableFile

// Decode reads the JSON of an event file. Unknown fields are ignored (a
// newer rewind may add some); the job, result and start must be set.
func Decode(plain []byte) (*Run, error) {
	var r Run
	if err := json.Unmarshal(plain, &r); err != nil {
		return nil, err
	}
	switch {
	case r.Job == "":
		return nil, errors.New("the event names no job")
	case r.Result == "":
		return nil, errors.New("the event has no result")
	case r.Start.IsZero():
		return nil, errors.New("the event has no start time")
	}
	return &r, nil
}

// Save stores run as a new event file and returns its name.
func Save(ctx context.Context, r *repository.Repository, run *Run) (id.ID, error) {
	if run.Job == "" || run.Result == "" || run.Start.IsZero() {
		return id.ID{}, errors.New("save event: the run needs a job, a result and a start time")
	}
	c := *run
	c.Start, c.End = c.Start.UTC(), c.End.UTC()
	name, err := r.SaveJSON(ctx, backend.EventFile, &c)
	if err != nil {
		return id.ID{}, fmt.Errorf("save event of job %s: %w", run.Job, err)
	}
	return name, nil
}

// List reads the events of r that match f, oldest start first. Files that
// fail to decrypt or decode are returned apart; only a storage failure is
// an error.
func List(ctx context.Context, r *repository.Repository, f Filter) ([]Stored, []Unreadable, error) {
	var out []Stored
	bad, err := r.LoadEach(ctx, backend.EventFile, func(name id.ID, plain []byte) error {
		run, err := Decode(plain)
		if err != nil {
			return err
		}
		if f.match(run) {
			out = append(out, Stored{Run: *run, File: name})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("events: %w", err)
	}
	Sort(out)
	return out, bad, nil
}

// Sort orders events by start, then job, then file name.
func Sort(rs []Stored) {
	slices.SortFunc(rs, func(a, b Stored) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Job, b.Job), cmp.Compare(a.File.String(), b.File.String()))
	})
}

// Expired returns the events of rs that the retention lets go at now:
// older than keepFor and not among the newest keepLast of their job and
// host. rs must be sorted (as List returns it).
func Expired(rs []Stored, now time.Time, keepFor time.Duration, keepLast int) []Stored {
	type key struct{ host, job string }
	seen := map[key]int{}
	var out []Stored
	for i := len(rs) - 1; i >= 0; i-- {
		k := key{rs[i].Host, rs[i].Job}
		seen[k]++
		if seen[k] > keepLast && now.Sub(rs[i].Start) > keepFor {
			out = append(out, rs[i])
		}
	}
	return out
}

// Expire removes the events of job on host that the retention lets go and
// returns how many it removed. Unreadable files are left alone.
func Expire(ctx context.Context, r *repository.Repository, host, job string, now time.Time) (int, error) {
	rs, _, err := List(ctx, r, Filter{Job: job, Host: host})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range Expired(rs, now, KeepFor, KeepLast) {
		h := backend.Handle{Type: backend.EventFile, Name: e.File.String()}
		if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
			return n, backend.Wrap("remove", h.String(), err)
		}
		n++
	}
	return n, nil
}
