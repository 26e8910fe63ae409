package timeline

import (
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// ContinuousPolicy is the default retention of continuous protection,
// built on forget's rules: every snapshot of the last 24 hours; then the
// newest of each hour for 168 hours, of each day for 30 days and of each
// ISO week for 52 weeks. Like forget's counted rules, the hours, days and
// weeks counted are those that have a snapshot, going back from the
// newest; under continuous protection, which leaves a snapshot in nearly
// every hour, that is 7 days of hours, 30 days and a year of weeks.
//
// Callers may change any part (forget --continuous takes --keep-*
// options over it). Thinning with it only removes snapshot files; the
// data they used stays until prune, whose protocol never breaks another
// snapshot.
func ContinuousPolicy() snapshot.Policy {
	return snapshot.Policy{Within: 24 * time.Hour, Hourly: 168, Daily: 30, Weekly: 52}
}

// LabelReason is the reason forget gives for a snapshot kept by a label.
func LabelReason(name string) string { return "label " + name }

// LabelKeeps says which snapshots of sns, one group of forget, the labels
// keep: for each label, the newest snapshot whose capture ended at or
// before its time (At), the one that shows the labelled moment. The reasons are "label NAME",
// in the labels' order. A label older than every snapshot keeps none.
func LabelKeeps(sns []*snapshot.Snapshot, labels []label.Label) map[id.ID][]string {
	sorted := slices.Clone(sns)
	snapshot.SortByAsOf(sorted)
	out := map[id.ID][]string{}
	for _, l := range labels {
		if sn := At(sorted, l.Time); sn != nil {
			out[sn.ID] = append(out[sn.ID], LabelReason(l.Name))
		}
	}
	return out
}

// Apply is snapshot.ApplyGuarded with the labels' keeps added: a
// snapshot that shows a labelled moment (LabelKeeps) is kept whatever p
// says, and "label NAME" follows its other reasons. sns is one group of
// snapshots; keep and remove come back oldest first. This is what
// `forget` applies to each group, and what a daemon thinning its own
// snapshots should call, with ContinuousPolicy or a variant of it.
func Apply(sns []*snapshot.Snapshot, p snapshot.Policy, g snapshot.Guard, labels []label.Label, now time.Time) (keep, remove []*snapshot.Snapshot, reasons map[id.ID][]string) {
	_, _, reasons = snapshot.ApplyGuarded(sns, p, g, now)
	for i, why := range LabelKeeps(sns, labels) {
		reasons[i] = append(reasons[i], why...)
	}
	sorted := slices.Clone(sns)
	snapshot.SortByAsOf(sorted)
	for _, sn := range sorted {
		if len(reasons[sn.ID]) > 0 {
			keep = append(keep, sn)
		} else {
			remove = append(remove, sn)
		}
	}
	return keep, remove, reasons
}
