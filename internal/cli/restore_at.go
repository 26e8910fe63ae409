package cli

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/ui"
)

// restoreEverythingAt is restore --at TIME without PATH: every path the
// host backed up, each as it was at TIME, from its own snapshot
// (timeline.AtEvery), at its absolute path below the target.
func (g *globals) restoreEverythingAt(ctx context.Context, at string, sf snapFilter, opt restorer.Options) error {
	r, done, err := g.openLocked(ctx, lock.Shared, "restore", true)
	if err != nil {
		return err
	}
	defer done()
	h, err := g.loadHistory(ctx, r, "", timelineFilter(sf))
	if err != nil {
		return err
	}
	m, err := h.moment(at, time.Now())
	if err != nil {
		return err
	}
	if _, _, err := h.at(ctx, r, m); err != nil {
		return err
	}
	// A PostgreSQL base backup is not files to put back: copied over a
	// data directory it is a server that will not start or, worse, one
	// that does. It is restored with its WAL by rewind pg restore.
	clusters := map[string]bool{}
	for _, sn := range h.sns {
		if sn.Postgres != nil {
			clusters[sn.Postgres.DataDir] = true
		}
	}
	files := timeline.FileSnapshots(h.sns)
	for _, dir := range slices.Sorted(maps.Keys(clusters)) {
		g.ui.Infof("%s is a PostgreSQL cluster: not restored as files; use rewind pg restore --at\n", dir)
	}
	var parts []restorer.Part
	for _, s := range timeline.AtEvery(files, m.Until) {
		g.ui.Infof("%s at %s: %s\n", s.Path, m, describeSnapshot(s.Snapshot))
		parts = append(parts, restorer.Part{Snapshot: s.Snapshot, Path: s.Path, Skip: s.Inner})
	}
	c := &ui.Counter{}
	opt.Progress = countInto(c)
	prog := g.ui.StartProgress("restore", c)
	// Parts run deepest first; their results are printed in path order.
	results := map[string]func(){}
	err = restorer.RestoreParts(ctx, r, opt, parts, func(p restorer.Part, st *restorer.Stats, err error) {
		switch {
		case st != nil:
			results[p.Path] = func() { printRestoreSummary(g, p.Snapshot, p.Path, st) }
		case errors.Is(err, snapshot.ErrPathNotFound):
			results[p.Path] = func() {
				g.ui.Infof("%s did not exist at %s (%s): nothing restored for it\n", p.Path, m, describeSnapshot(p.Snapshot))
			}
		}
	})
	prog.Stop()
	for _, p := range slices.Sorted(maps.Keys(results)) {
		results[p]()
	}
	return err
}
