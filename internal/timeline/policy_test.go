package timeline_test

import (
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
)

// synthetic makes a snapshot taken at t, with an ID derived from it.
func synthetic(t time.Time) *snapshot.Snapshot {
	return &snapshot.Snapshot{Time: t, ID: id.ID(sha256.Sum256([]byte(t.String()))), Paths: []string{"/srv"}, Hostname: "web1"}
}

// history is what continuous protection leaves: a snapshot every 10
// minutes for the last 10 days, and every hour for the 390 days before.
func history(end time.Time) []*snapshot.Snapshot {
	var sns []*snapshot.Snapshot
	start := end.Add(-400 * 24 * time.Hour).Truncate(time.Hour)
	for t := start; t.Before(end); {
		sns = append(sns, synthetic(t))
		if end.Sub(t) > 10*24*time.Hour {
			t = t.Add(time.Hour)
		} else {
			t = t.Add(10 * time.Minute)
		}
	}
	return sns
}

func TestContinuousPolicy(t *testing.T) {
	t.Parallel()
	p := timeline.ContinuousPolicy()
	want := snapshot.Policy{Within: 24 * time.Hour, Hourly: 168, Daily: 30, Weekly: 52}
	if p.Within != want.Within || p.Hourly != want.Hourly || p.Daily != want.Daily || p.Weekly != want.Weekly ||
		p.Last != 0 || p.Monthly != 0 || p.Yearly != 0 || len(p.Tags) != 0 {
		t.Fatalf("ContinuousPolicy() = %+v, want %+v", p, want)
	}
}

// TestContinuousThinning applies the default policy to a dense history
// (in UTC) and checks each snapshot against the policy as the docs word
// it, computed by bucket arithmetic: every snapshot of the last 24 hours,
// then the newest of each hour for the 168 hours up to now, of each day
// for 30 days and of each ISO week for 52 weeks (every one of them has
// snapshots here).
func TestContinuousThinning(t *testing.T) {
	t.Parallel()
	end := time.Date(2026, 11, 22, 10, 31, 5, 0, time.UTC)
	sns := history(end)
	keep, remove, reasons := timeline.Apply(sns, timeline.ContinuousPolicy(), snapshot.Guard{}, nil, end)
	if len(keep)+len(remove) != len(sns) {
		t.Fatalf("%d kept + %d removed of %d", len(keep), len(remove), len(sns))
	}
	kept := map[id.ID]bool{}
	for _, sn := range keep {
		kept[sn.ID] = true
	}
	hour := func(t time.Time) int64 { return t.Unix() / 3600 }
	day := func(t time.Time) int64 { return t.Unix() / 86400 }
	week := func(t time.Time) int64 { return (t.Unix()/86400 + 3) / 7 } // weeks from a Monday
	newest := func(bucket func(time.Time) int64) map[int64]id.ID {
		m := map[int64]id.ID{}
		for _, sn := range sns { // oldest first: the last one wins
			m[bucket(sn.Time)] = sn.ID
		}
		return m
	}
	newestHour, newestDay, newestWeek := newest(hour), newest(day), newest(week)
	last := sns[len(sns)-1].Time
	perDay := map[int64]int{}
	for _, sn := range sns {
		want := end.Sub(sn.Time) < 24*time.Hour ||
			hour(last)-hour(sn.Time) < 168 && newestHour[hour(sn.Time)] == sn.ID ||
			day(last)-day(sn.Time) < 30 && newestDay[day(sn.Time)] == sn.ID ||
			week(last)-week(sn.Time) < 52 && newestWeek[week(sn.Time)] == sn.ID
		if kept[sn.ID] != want {
			t.Fatalf("snapshot of %s (%s old): kept %v, want %v (reasons %q)", sn.Time, end.Sub(sn.Time), kept[sn.ID], want, reasons[sn.ID])
		}
		if kept[sn.ID] {
			perDay[day(sn.Time)]++
		}
	}
	// What that means, in numbers: 144 snapshots in the last day (one
	// every 10 minutes), 24 on each full day of the past week, one a day
	// before that.
	if n := perDay[day(end)-3]; n != 24 {
		t.Errorf("%d snapshots kept 3 days ago, want 24", n)
	}
	if n := perDay[day(end)-20]; n != 1 {
		t.Errorf("%d snapshots kept 20 days ago, want 1", n)
	}
	if n := len(keep); n < 144+6*24+23 || n > 144+7*24+30+52 {
		t.Errorf("%d snapshots kept of %d", n, len(sns))
	}
	for _, sn := range keep {
		if end.Sub(sn.Time) > 366*24*time.Hour {
			t.Errorf("kept a snapshot older than a year: %s (%q)", sn.Time, reasons[sn.ID])
		}
	}
}

func TestLabelKeeps(t *testing.T) {
	t.Parallel()
	end := time.Date(2026, 11, 22, 10, 31, 5, 0, time.UTC)
	sns := history(end)
	at := func(age time.Duration) time.Time { return end.Add(-age) }
	// A label 200 days back falls between two hourly snapshots, whose
	// days are long thinned out: the earlier one shows the moment.
	old := at(200*24*time.Hour + 20*time.Minute)
	shows := timeline.At(sns, old)
	if shows == nil || !shows.Time.Before(old) || shows.Time.Before(old.Add(-time.Hour)) {
		t.Fatalf("At gives %v for %v", shows, old)
	}
	labels := []label.Label{
		{Name: "before upgrade", Time: old},
		{Name: "second label", Time: old.Add(time.Second)},
		{Name: "before all snapshots", Time: sns[0].Time.Add(-time.Second)},
		{Name: "latest", Time: end},
	}
	reversed := slices.Clone(sns) // LabelKeeps takes snapshots in any order
	slices.Reverse(reversed)
	keeps := timeline.LabelKeeps(reversed, labels)
	if got := keeps[shows.ID]; !slices.Equal(got, []string{"label before upgrade", "label second label"}) {
		t.Errorf("reasons %q for the labelled snapshot", got)
	}
	newestID := sns[len(sns)-1].ID
	if got := keeps[newestID]; !slices.Equal(got, []string{"label latest"}) {
		t.Errorf("reasons %q for the newest snapshot", got)
	}
	if len(keeps) != 2 {
		t.Errorf("labels keep %d snapshots, want 2: %v", len(keeps), keeps)
	}

	// Apply keeps it beyond the policy, after the guard, with the
	// reasons in order, and the lists stay sorted.
	guard := snapshot.Guard{Holds: map[id.ID][]string{sns[1].ID: {"audit"}}}
	keep, remove, reasons := timeline.Apply(sns, timeline.ContinuousPolicy(), guard, labels, end)
	if !slices.Contains(keep, shows) || slices.Contains(remove, shows) {
		t.Fatal("the labelled snapshot is not kept")
	}
	if got := reasons[shows.ID]; !slices.Equal(got, []string{"label before upgrade", "label second label"}) {
		t.Errorf("reasons %q", got)
	}
	if got := reasons[sns[1].ID]; !slices.Equal(got, []string{"protected: audit"}) {
		t.Errorf("held snapshot: reasons %q", got)
	}
	if got := reasons[newestID]; len(got) < 2 || got[len(got)-1] != "label latest" {
		t.Errorf("newest snapshot: reasons %q, want the label last", got)
	}
	for _, list := range [][]*snapshot.Snapshot{keep, remove} {
		if !slices.IsSortedFunc(list, func(a, b *snapshot.Snapshot) int { return a.Time.Compare(b.Time) }) {
			t.Error("keep or remove is not oldest first")
		}
	}
	// Without the labels the snapshot goes.
	_, remove, _ = timeline.Apply(sns, timeline.ContinuousPolicy(), snapshot.Guard{}, nil, end)
	if !slices.Contains(remove, shows) {
		t.Error("the snapshot of the label is kept without it; the test shows nothing")
	}
}

func TestAtAndCovers(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var sns []*snapshot.Snapshot
	for i := range 5 {
		sns = append(sns, synthetic(base.Add(time.Duration(i)*time.Minute)))
	}
	for _, tt := range []struct {
		at   time.Duration
		want int // index, -1 for none
	}{{-time.Second, -1}, {0, 0}, {59 * time.Second, 0}, {time.Minute, 1}, {time.Hour, 4}} {
		got := timeline.At(sns, base.Add(tt.at))
		if tt.want < 0 && got != nil || tt.want >= 0 && got != sns[tt.want] {
			t.Errorf("At(+%v) = %v, want index %d", tt.at, got, tt.want)
		}
	}
	sn := &snapshot.Snapshot{Paths: []string{"/srv/app", "/etc"}}
	for p, want := range map[string]bool{
		"/srv/app": true, "/srv/app/x/y": true, "/etc/nginx": true, "/srv": false, "/srv/apple": false, "/": false,
	} {
		if timeline.Covers(sn, p) != want {
			t.Errorf("Covers(%q) = %v", p, !want)
		}
	}
	if !timeline.Covers(&snapshot.Snapshot{Paths: []string{"/"}}, "/anything") {
		t.Error("a snapshot of / does not cover everything")
	}
	f := snapshot.Filter{Hosts: []string{"web1"}}
	other := synthetic(base.Add(time.Second))
	other.Hostname = "web2"
	sel := timeline.Select(append([]*snapshot.Snapshot{other}, sns...), f, "/srv/x")
	if len(sel) != len(sns) || sel[0] != sns[0] {
		t.Errorf("Select picked %d snapshots", len(sel))
	}
	if len(timeline.Select(sns, f, "/etc")) != 0 {
		t.Error("Select picked snapshots that do not cover the path")
	}
}
