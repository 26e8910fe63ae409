package cli

// What the timeline commands share (versions, restore --at, diff --at,
// rollback): they look at one path through the snapshots of one host, and
// take moments as times or labels (docs/CONTINUOUS.md).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/tree"
)

// atUsage is the help text of the --at flags.
const atUsage = "a `moment`: RFC 3339, \"2026-11-22 10:31:05\" (local), relative as -15m, or a label (rewind mark)"

// timeFormat is how the timeline commands print times for people.
const timeFormat = "2006-01-02 15:04:05"

// localPath makes a PATH argument absolute and clean, as backup records
// the paths it backs up.
func localPath(arg string) (string, error) {
	abs, err := filepath.Abs(arg)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", arg, err)
	}
	return filepath.Clean(abs), nil
}

// timelineFilter is the filter of the --host, --tag and --path flags,
// with the host defaulting to this machine's name: a timeline is one
// host's history.
func timelineFilter(sf snapFilter) snapshot.Filter {
	f := sf.filter()
	if len(f.Hosts) == 0 {
		if h, err := os.Hostname(); err == nil {
			f.Hosts = []string{h}
		}
	}
	return f
}

// history is one path through the snapshots that cover it.
type history struct {
	// path is the absolute path followed; "" for whole snapshots.
	path   string
	filter snapshot.Filter
	// sns cover path and pass filter, oldest first.
	sns    []*snapshot.Snapshot
	labels *label.Set
}

// loadHistory reads the snapshots of r that pass f and cover p ("" for
// all), and the labels, warning about label files that cannot be read.
func (g *globals) loadHistory(ctx context.Context, r *repository.Repository, p string, f snapshot.Filter) (*history, error) {
	all, err := g.listSnapshots(ctx, r)
	if err != nil {
		return nil, err
	}
	labels, err := label.List(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, u := range labels.Unreadable {
		g.ui.Warnf("label file labels/%s cannot be read (%v); its label cannot be used\n", u.File, u.Err)
	}
	return &history{path: p, filter: f, sns: timeline.Select(all, f, p), labels: labels}, nil
}

// describe names what the history follows, for messages: `/etc on host
// web1`.
func (h *history) describe() string {
	what := "snapshots"
	if h.path != "" {
		what = h.path
	}
	if len(h.filter.Hosts) > 0 {
		what += " on host " + strings.Join(h.filter.Hosts, ", ")
	}
	return what
}

// moment resolves an --at value.
func (h *history) moment(at string, now time.Time) (timeline.Moment, error) {
	m, err := timeline.Resolve(at, now, h.labels)
	if err != nil {
		return timeline.Moment{}, fmt.Errorf("--at: %w", err)
	}
	return m, nil
}

// at returns the snapshot that shows the path at m, the newest whose
// capture ended at or before it (timeline.At), and the path's entry in it (nil when the path was absent
// then; the whole snapshot's root when the history has no path).
func (h *history) at(ctx context.Context, r *repository.Repository, m timeline.Moment) (*snapshot.Snapshot, *tree.Node, error) {
	if len(h.sns) == 0 {
		return nil, nil, fmt.Errorf("%w: no snapshot holds %s (--host picks another host)", snapshot.ErrNotFound, h.describe())
	}
	sn := timeline.At(h.sns, m.Until)
	if sn == nil {
		return nil, nil, fmt.Errorf("%w: no snapshot of %s had finished by %s; the oldest shows things as of %s",
			snapshot.ErrNotFound, h.describe(), m, h.sns[0].AsOf().Local().Format(timeFormat))
	}
	p := h.path
	if p == "" {
		p = "/"
	}
	n, err := timeline.Lookup(ctx, r, sn, p)
	if err != nil {
		return nil, nil, err
	}
	return sn, n, nil
}

// describeSnapshot says which snapshot a moment resolved to, and the
// moment it shows.
func describeSnapshot(sn *snapshot.Snapshot) string {
	return fmt.Sprintf("snapshot %s as of %s", sn.ID.Short(), sn.AsOf().Local().Format(timeFormat))
}

// openAt opens the repository for restore --at: with a Shared lock and
// its index, it finds the snapshot that shows PATH (args[0], or the whole
// snapshot without it) at the moment at. It fails when PATH did not exist
// then. The caller calls done.
func (g *globals) openAt(ctx context.Context, command, at string, args []string, sf snapFilter) (r *repository.Repository, sn *snapshot.Snapshot, p string, done func(), err error) {
	var follow string
	if len(args) > 0 {
		if follow, err = localPath(args[0]); err != nil {
			return nil, nil, "", nil, err
		}
	}
	r, done, err = g.openLocked(ctx, lock.Shared, command, true)
	if err != nil {
		return nil, nil, "", nil, err
	}
	fail := func(err error) (*repository.Repository, *snapshot.Snapshot, string, func(), error) {
		done()
		return nil, nil, "", nil, err
	}
	h, err := g.loadHistory(ctx, r, follow, timelineFilter(sf))
	if err != nil {
		return fail(err)
	}
	m, err := h.moment(at, time.Now())
	if err != nil {
		return fail(err)
	}
	sn, n, err := h.at(ctx, r, m)
	if err != nil {
		return fail(err)
	}
	p = follow
	if p == "" {
		p = "/"
	}
	if n == nil {
		return fail(fmt.Errorf("%w: %s did not exist at %s (%s)", snapshot.ErrPathNotFound, p, m, describeSnapshot(sn)))
	}
	g.ui.Infof("%s at %s: %s\n", p, m, describeSnapshot(sn))
	return r, sn, p, done, nil
}
