package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/repository"
)

// noteRepairedSnapshots is called by check, after it has listed the
// problems, to say in plain words which damaged snapshots `repair
// snapshots` has dealt with. The damage itself is still reported by check:
// a damaged snapshot stays in the repository, and its missing data with
// it, until it is forgotten. Nothing is printed with --json (the check
// summary's schema has no place for it) or when no damaged snapshot is
// left. Damage records that cannot be read are warned about.
func noteRepairedSnapshots(ctx context.Context, g *globals, r *repository.Repository) {
	if g.json {
		return
	}
	recs, err := repair.ListDamaged(ctx, r)
	if err != nil {
		g.ui.Warnf("warning: %v\n", err)
	}
	if len(recs) == 0 {
		return
	}
	stored, err := r.List(ctx, backend.SnapshotFile)
	if err != nil {
		g.ui.Warnf("warning: list snapshots: %v\n", err)
		return
	}
	present := map[id.ID]bool{}
	for _, i := range stored {
		present[i] = true
	}
	var damaged []id.ID
	for i := range recs {
		if present[i] {
			damaged = append(damaged, i)
		}
	}
	slices.SortFunc(damaged, func(a, b id.ID) int { return strings.Compare(a.String(), b.String()) })
	for _, i := range damaged {
		rec := recs[i]
		switch {
		case rec.RepairedAs == nil:
			g.ui.Printf("note: snapshot %s references lost data; `rewind repair snapshots` could keep nothing of it\n", i.Short())
		case present[*rec.RepairedAs]:
			g.ui.Printf("note: snapshot %s references lost data; it has been repaired as %s\n", i.Short(), rec.RepairedAs.Short())
		default:
			g.ui.Printf("note: snapshot %s references lost data; it was repaired as %s, which has been removed since\n", i.Short(), rec.RepairedAs.Short())
		}
	}
	if len(damaged) > 0 {
		g.ui.Printf("note: the problems of a repaired snapshot stay until it is removed with `rewind forget`\n")
	}
}

// adviseUnreadable adds to the error of each snapshot file that cannot be
// read (it fails verification or decoding) what to do about it: nothing
// can be kept of it, so `repair snapshots` records the loss and `forget`
// removes the file.
func adviseUnreadable(ctx context.Context, r *repository.Repository, errs map[id.ID]error) {
	var recs map[id.ID]repair.Record
	for i, err := range errs {
		if !errors.Is(err, repository.ErrCorrupt) {
			continue
		}
		if recs == nil {
			recs, _ = repair.ListDamaged(ctx, r) // unreadable records are warned about later
		}
		if rec, ok := recs[i]; ok {
			errs[i] = fmt.Errorf("%w; damage record %s keeps the loss on file: remove the snapshot with `rewind forget %s`", err, rec.ID.Short(), i.Short())
			continue
		}
		errs[i] = fmt.Errorf("%w; nothing of it can be read: run `rewind repair snapshots --forget %s` to record the loss and remove it", err, i.Short())
	}
}
