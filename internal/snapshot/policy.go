package snapshot

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
)

// Policy says which snapshots of a group `rewind forget` keeps. A snapshot
// is kept when any rule keeps it; the others are removed.
//
// The counted rules (Last, Hourly, ..., Yearly) work as in restic: going
// from the newest snapshot to the oldest, Last keeps the newest N
// snapshots, and each calendar rule keeps the newest snapshot of each of
// the N most recent hours, days, ISO weeks, months or years that have a
// snapshot. A count of -1 means no limit. Within keeps every snapshot
// taken after now minus Within; Tags keeps every snapshot that has any of
// the tags.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       time.Duration
	Tags                                         []string
}

// Empty reports whether p has no rule, so that it would keep nothing.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 &&
		p.Monthly == 0 && p.Yearly == 0 && p.Within == 0 && len(p.Tags) == 0
}

// bucketRule is one counted rule: how many buckets it keeps, how a
// snapshot's time maps to its bucket, and how its reasons are worded.
type bucketRule struct {
	count  int
	name   string // "daily"
	bucket func(t time.Time, n int) string
}

// Apply splits sns into the snapshots p keeps and those it removes, both
// oldest first, and says for each kept snapshot which rules keep it
// ("last snapshot", "daily snapshot 2026-11-20", "within 7d", "tag
// nightly").
//
// Calendar buckets (hours, days, weeks, months, years) are taken in now's
// location: the CLI passes the local time, tests pass UTC. Apply does not
// change sns.
func Apply(sns []*Snapshot, p Policy, now time.Time) (keep, remove []*Snapshot, reasons map[id.ID][]string) {
	return ApplyGuarded(sns, p, Guard{}, now)
}

// Guard keeps snapshots whatever a policy says: the legal holds and the
// minimum retention of the repository. forget applies it both to the
// snapshots a policy would remove and to those named for removal.
type Guard struct {
	// MinRetention keeps every snapshot taken after now minus it; 0
	// keeps none.
	MinRetention time.Duration
	// Holds gives, for each snapshot under legal hold, the reason of each
	// of its holds ("" for a hold given without one).
	Holds map[id.ID][]string
}

// Reasons says why g keeps sn at now: "protected" or "protected: REASON"
// for each hold, and "minimum retention 30d". None means g lets it go.
func (g Guard) Reasons(sn *Snapshot, now time.Time) []string {
	var why []string
	if hs, ok := g.Holds[sn.ID]; ok {
		if len(hs) == 0 {
			why = append(why, "protected")
		}
		for _, r := range hs {
			if r == "" {
				why = append(why, "protected")
			} else {
				why = append(why, "protected: "+r)
			}
		}
	}
	if g.MinRetention > 0 && sn.Time.After(now.Add(-g.MinRetention)) {
		why = append(why, "minimum retention "+FormatDuration(g.MinRetention))
	}
	return slices.Compact(why)
}

// ApplyGuarded is Apply with g's reasons added after the policy's: a
// snapshot that g keeps is kept even when no rule of p keeps it.
func ApplyGuarded(sns []*Snapshot, p Policy, g Guard, now time.Time) (keep, remove []*Snapshot, reasons map[id.ID][]string) {
	loc := now.Location()
	rules := []bucketRule{
		{p.Last, "last", func(_ time.Time, n int) string { return fmt.Sprint(n) }},
		{p.Hourly, "hourly", func(t time.Time, _ int) string { return t.Format("2006-01-02 15:00") }},
		{p.Daily, "daily", func(t time.Time, _ int) string { return t.Format("2006-01-02") }},
		{p.Weekly, "weekly", func(t time.Time, _ int) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%04d-W%02d", y, w)
		}},
		{p.Monthly, "monthly", func(t time.Time, _ int) string { return t.Format("2006-01") }},
		{p.Yearly, "yearly", func(t time.Time, _ int) string { return t.Format("2006") }},
	}
	last := make([]string, len(rules))
	seen := make([]bool, len(rules))

	newestFirst := slices.Clone(sns)
	SortByTime(newestFirst)
	slices.Reverse(newestFirst)

	reasons = map[id.ID][]string{}
	for n, sn := range newestFirst {
		t := sn.Time.In(loc)
		var why []string
		for i := range rules {
			r := &rules[i]
			if r.count == 0 {
				continue
			}
			b := r.bucket(t, n)
			if seen[i] && b == last[i] {
				continue
			}
			seen[i], last[i] = true, b
			if r.count > 0 {
				r.count--
			}
			if r.name == "last" {
				why = append(why, "last snapshot")
			} else {
				why = append(why, r.name+" snapshot "+b)
			}
		}
		if p.Within > 0 && t.After(now.Add(-p.Within)) {
			why = append(why, "within "+FormatDuration(p.Within))
		}
		for _, tag := range p.Tags {
			if slices.Contains(sn.Tags, tag) {
				why = append(why, "tag "+tag)
			}
		}
		why = append(why, g.Reasons(sn, now)...)
		if len(why) > 0 {
			keep = append(keep, sn)
			reasons[sn.ID] = why
		} else {
			remove = append(remove, sn)
		}
	}
	slices.Reverse(keep)
	slices.Reverse(remove)
	return keep, remove, reasons
}

// FormatDuration writes d in whole days ("7d") when it is a whole number
// of days, else as Go does ("36h0m0s").
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// GroupKey is what the snapshots of a group share. Only the fields that
// were grouped by are set.
type GroupKey struct {
	Host  string   `json:"hostname,omitempty"`
	Paths []string `json:"paths,omitempty"`
	Tags  []string `json:"tags,omitempty"`
}

// String describes the key for people: `host web1, paths /etc /srv`.
func (k GroupKey) String() string {
	var parts []string
	if k.Host != "" {
		parts = append(parts, "host "+k.Host)
	}
	if k.Paths != nil {
		parts = append(parts, "paths "+strings.Join(k.Paths, " "))
	}
	if k.Tags != nil {
		parts = append(parts, "tags "+strings.Join(k.Tags, ","))
	}
	if len(parts) == 0 {
		return "all snapshots"
	}
	return strings.Join(parts, ", ")
}

// SnapshotGroup is one group of snapshots, oldest first.
type SnapshotGroup struct {
	Key       GroupKey
	Snapshots []*Snapshot
}

// GroupKeys are the keys Group accepts.
var GroupKeys = []string{"host", "paths", "tags"}

// Group sorts snapshots into groups that share the fields named in by
// ("host", "paths", "tags"; paths and tags compare as sets). With no keys
// every snapshot is in one group. Groups are ordered by their key, and
// hold their snapshots oldest first.
func Group(sns []*Snapshot, by []string) ([]SnapshotGroup, error) {
	var byHost, byPaths, byTags bool
	for _, k := range by {
		switch k {
		case "host":
			byHost = true
		case "paths":
			byPaths = true
		case "tags":
			byTags = true
		default:
			return nil, fmt.Errorf("cannot group snapshots by %q: use %s", k, strings.Join(GroupKeys, ", "))
		}
	}
	sorted := func(s []string) []string {
		c := slices.Clone(s)
		if c == nil {
			c = []string{}
		}
		slices.Sort(c)
		return slices.Compact(c)
	}
	index := map[string]int{}
	var groups []SnapshotGroup
	for _, sn := range sns {
		var k GroupKey
		if byHost {
			k.Host = sn.Hostname
		}
		if byPaths {
			k.Paths = sorted(sn.Paths)
		}
		if byTags {
			k.Tags = sorted(sn.Tags)
		}
		ks := k.Host + "\x00" + strings.Join(k.Paths, "\x01") + "\x00" + strings.Join(k.Tags, "\x01")
		i, ok := index[ks]
		if !ok {
			i = len(groups)
			index[ks] = i
			groups = append(groups, SnapshotGroup{Key: k})
		}
		groups[i].Snapshots = append(groups[i].Snapshots, sn)
	}
	for i := range groups {
		SortByTime(groups[i].Snapshots)
	}
	slices.SortFunc(groups, func(a, b SnapshotGroup) int {
		if c := strings.Compare(a.Key.Host, b.Key.Host); c != 0 {
			return c
		}
		if c := slices.Compare(a.Key.Paths, b.Key.Paths); c != 0 {
			return c
		}
		return slices.Compare(a.Key.Tags, b.Key.Tags)
	})
	return groups, nil
}
