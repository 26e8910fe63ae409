package runbook

import (
	"context"
	"fmt"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Gather reads from the repository the facts of a runbook: the snapshot
// ref names ("" for the newest of host that has an inventory) and its
// inventory, the host's snapshots, and its last drill and recover. The
// caller adds what the repository does not hold (Repository,
// PasswordFrom, Plan). With a ref, host may be "" (the snapshot's host)
// and must otherwise be the snapshot's. An error wrapping
// inventory.ErrNone says no inventory was found; sns are then the
// repository's snapshots, for a hint.
func Gather(ctx context.Context, r *repository.Repository, host, ref string) (in Input, sns []*snapshot.Snapshot, err error) {
	sns, err = snapshot.List(ctx, r, func(id.ID, error) {})
	if err != nil {
		return in, nil, err
	}
	sn, doc, err := inventory.OfSnapshot(ctx, r, ref, host)
	if err != nil {
		return in, sns, err
	}
	if ref != "" && host != "" && sn.Hostname != host {
		return in, sns, fmt.Errorf("snapshot %s is of host %q, not %q", sn.ID.Short(), sn.Hostname, host)
	}
	in.Snapshot, in.Inventory = sn, doc
	for _, s := range sns {
		if s.Hostname == sn.Hostname {
			in.Snapshots = append(in.Snapshots, s)
		}
	}
	evs, _, err := event.List(ctx, r, event.Filter{Host: sn.Hostname})
	if err != nil {
		return in, sns, err
	}
	in.Drill, in.FailedDrill, in.Recover = lastRuns(evs)
	return in, sns, nil
}

// lastRuns picks among evs (oldest first) the newest successful drill,
// the newest drill when it failed after that one, and the newest recover.
func lastRuns(evs []event.Stored) (drill, failed, recover *event.Stored) {
	for i := range evs {
		e := &evs[i]
		switch e.Kind {
		case "drill":
			if e.Result == event.ResultFailed {
				failed = e
			} else {
				drill, failed = e, nil
			}
		case "recover":
			recover = e
		}
	}
	return drill, failed, recover
}

// Written is a runbook built and stored by Refresh.
type Written struct {
	Record Record
	Facts  Facts
	File   id.ID
	New    bool
}

// Refresh builds the runbook of in and, unless noStore, stores it with
// Write (keeping Keep per host). now is the time recorded in a new file.
func Refresh(ctx context.Context, r *repository.Repository, in Input, now time.Time, noStore bool) (*Written, error) {
	d, facts, err := Build(in)
	if err != nil {
		return nil, err
	}
	h, err := d.HTML()
	if err != nil {
		return nil, err
	}
	w := &Written{Facts: facts, Record: Record{Version: Version, Host: facts.Host, Time: now.UTC(), Snapshot: facts.Snapshot, Markdown: string(d.Markdown()), HTML: string(h)}}
	if noStore {
		return w, nil
	}
	if w.File, w.New, err = Write(ctx, r, w.Record, Keep); err != nil {
		return nil, err
	}
	if !w.New {
		if st, err := Newest(ctx, r, facts.Host); err == nil && st.File == w.File {
			w.Record.Time = st.Time
		}
	}
	return w, nil
}
