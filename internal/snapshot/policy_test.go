package snapshot_test

import (
	"crypto/sha256"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// at parses "2006-01-02 15:04" in UTC.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// snap makes a snapshot in memory, named by its time and host.
func snap(t *testing.T, when, host string, paths []string, tags ...string) *snapshot.Snapshot {
	t.Helper()
	return &snapshot.Snapshot{
		Time:     at(t, when),
		Hostname: host,
		Paths:    paths,
		Tags:     tags,
		ID:       id.ID(sha256.Sum256([]byte(when + "|" + host + "|" + strings.Join(paths, " ") + "|" + strings.Join(tags, ",")))),
	}
}

// snaps makes one snapshot of host h, path /srv, per time.
func snaps(t *testing.T, times ...string) []*snapshot.Snapshot {
	t.Helper()
	var out []*snapshot.Snapshot
	for _, w := range times {
		out = append(out, snap(t, w, "h", []string{"/srv"}))
	}
	return out
}

// times lists the snapshots' times as "2006-01-02 15:04".
func times(sns []*snapshot.Snapshot) []string {
	var out []string
	for _, sn := range sns {
		out = append(out, sn.Time.UTC().Format("2006-01-02 15:04"))
	}
	return out
}

// reasonsByTime keys the reasons by snapshot time, for readable checks.
func reasonsByTime(sns []*snapshot.Snapshot, reasons map[id.ID][]string) map[string]string {
	out := map[string]string{}
	for _, sn := range sns {
		if r, ok := reasons[sn.ID]; ok {
			out[sn.Time.UTC().Format("2006-01-02 15:04")] = strings.Join(r, "; ")
		}
	}
	return out
}

func TestApply(t *testing.T) {
	t.Parallel()
	now := at(t, "2026-11-21 12:00")
	for _, tc := range []struct {
		name    string
		sns     []string
		policy  snapshot.Policy
		keep    map[string]string // time -> reasons
		removed []string
	}{
		{
			name:   "last",
			sns:    []string{"2026-11-16 01:00", "2026-11-17 01:00", "2026-11-18 01:00", "2026-11-19 01:00", "2026-11-20 01:00"},
			policy: snapshot.Policy{Last: 2},
			keep: map[string]string{
				"2026-11-19 01:00": "last snapshot",
				"2026-11-20 01:00": "last snapshot",
			},
			removed: []string{"2026-11-16 01:00", "2026-11-17 01:00", "2026-11-18 01:00"},
		},
		{
			name:   "last more than there are",
			sns:    []string{"2026-11-19 01:00", "2026-11-20 01:00"},
			policy: snapshot.Policy{Last: 5},
			keep: map[string]string{
				"2026-11-19 01:00": "last snapshot",
				"2026-11-20 01:00": "last snapshot",
			},
		},
		{
			name:   "hourly keeps the newest of each hour",
			sns:    []string{"2026-11-20 13:05", "2026-11-20 13:55", "2026-11-20 14:10", "2026-11-20 14:40", "2026-11-20 16:00"},
			policy: snapshot.Policy{Hourly: 2},
			keep: map[string]string{
				"2026-11-20 16:00": "hourly snapshot 2026-11-20 16:00",
				"2026-11-20 14:40": "hourly snapshot 2026-11-20 14:00",
			},
			removed: []string{"2026-11-20 13:05", "2026-11-20 13:55", "2026-11-20 14:10"},
		},
		{
			name: "daily counts days that have snapshots",
			sns: []string{"2026-11-10 08:00", "2026-11-17 08:00", "2026-11-17 20:00", "2026-11-19 03:00",
				"2026-11-20 01:00", "2026-11-20 23:59"},
			policy: snapshot.Policy{Daily: 3},
			keep: map[string]string{
				"2026-11-20 23:59": "daily snapshot 2026-11-20",
				"2026-11-19 03:00": "daily snapshot 2026-11-19",
				"2026-11-17 20:00": "daily snapshot 2026-11-17",
			},
			removed: []string{"2026-11-10 08:00", "2026-11-17 08:00", "2026-11-20 01:00"},
		},
		{
			name: "weekly uses ISO weeks across the year end",
			// 2026 has 53 ISO weeks: Mon 2026-12-28 .. Sun 2027-01-03 is
			// 2026-W53; Mon 2027-01-04 starts 2027-W01.
			sns: []string{"2026-12-26 10:00", "2026-12-27 23:00", "2026-12-28 01:00", "2027-01-03 22:00",
				"2027-01-04 00:30", "2027-01-05 10:00"},
			policy: snapshot.Policy{Weekly: 3},
			keep: map[string]string{
				"2027-01-05 10:00": "weekly snapshot 2027-W01",
				"2027-01-03 22:00": "weekly snapshot 2026-W53",
				"2026-12-27 23:00": "weekly snapshot 2026-W52",
			},
			removed: []string{"2026-12-26 10:00", "2026-12-28 01:00", "2027-01-04 00:30"},
		},
		{
			name:   "weekly: ISO week 1 may start in December",
			sns:    []string{"2025-12-28 12:00", "2025-12-29 12:00", "2026-01-01 12:00"},
			policy: snapshot.Policy{Weekly: 5},
			keep: map[string]string{
				"2026-01-01 12:00": "weekly snapshot 2026-W01",
				"2025-12-28 12:00": "weekly snapshot 2025-W52",
			},
			removed: []string{"2025-12-29 12:00"},
		},
		{
			name:   "monthly and yearly",
			sns:    []string{"2024-03-01 00:00", "2024-12-31 23:00", "2025-06-01 00:00", "2025-06-30 00:00", "2025-07-02 00:00"},
			policy: snapshot.Policy{Monthly: 2, Yearly: 2},
			keep: map[string]string{
				"2025-07-02 00:00": "monthly snapshot 2025-07; yearly snapshot 2025",
				"2025-06-30 00:00": "monthly snapshot 2025-06",
				"2024-12-31 23:00": "yearly snapshot 2024",
			},
			removed: []string{"2024-03-01 00:00", "2025-06-01 00:00"},
		},
		{
			name:   "unlimited count",
			sns:    []string{"2020-01-01 00:00", "2021-05-01 00:00", "2021-06-01 00:00"},
			policy: snapshot.Policy{Yearly: -1},
			keep: map[string]string{
				"2021-06-01 00:00": "yearly snapshot 2021",
				"2020-01-01 00:00": "yearly snapshot 2020",
			},
			removed: []string{"2021-05-01 00:00"},
		},
		{
			name:   "within is relative to now",
			sns:    []string{"2026-11-13 12:00", "2026-11-14 12:00", "2026-11-14 12:01", "2026-11-21 11:00"},
			policy: snapshot.Policy{Within: 7 * 24 * time.Hour},
			keep: map[string]string{
				"2026-11-14 12:01": "within 7d",
				"2026-11-21 11:00": "within 7d",
			},
			removed: []string{"2026-11-13 12:00", "2026-11-14 12:00"},
		},
		{
			name:   "within in hours",
			sns:    []string{"2026-11-19 23:00", "2026-11-20 01:00"},
			policy: snapshot.Policy{Within: 36 * time.Hour},
			keep: map[string]string{
				"2026-11-20 01:00": "within 36h0m0s",
			},
			removed: []string{"2026-11-19 23:00"},
		},
		{
			name:    "empty policy keeps nothing",
			sns:     []string{"2026-11-19 23:00", "2026-11-20 01:00"},
			removed: []string{"2026-11-19 23:00", "2026-11-20 01:00"},
		},
		{
			name:   "combination: every rule that keeps a snapshot is named",
			sns:    []string{"2026-10-01 00:00", "2026-11-18 00:00", "2026-11-19 00:00", "2026-11-20 00:00", "2026-11-20 06:00"},
			policy: snapshot.Policy{Last: 1, Daily: 2, Monthly: 2, Within: 2 * 24 * time.Hour},
			keep: map[string]string{
				"2026-11-20 06:00": "last snapshot; daily snapshot 2026-11-20; monthly snapshot 2026-11; within 2d",
				"2026-11-20 00:00": "within 2d",
				"2026-11-19 00:00": "daily snapshot 2026-11-19",
				"2026-10-01 00:00": "monthly snapshot 2026-10",
			},
			removed: []string{"2026-11-18 00:00"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sns := snaps(t, tc.sns...)
			// Apply must not depend on, or change, the order it is given.
			shuffled := slices.Clone(sns)
			slices.Reverse(shuffled)
			before := slices.Clone(shuffled)
			keep, remove, reasons := snapshot.Apply(shuffled, tc.policy, now)
			if !slices.Equal(shuffled, before) {
				t.Error("Apply reordered its input")
			}
			var wantKeep []string
			for k := range tc.keep {
				wantKeep = append(wantKeep, k)
			}
			slices.Sort(wantKeep)
			if got := times(keep); !slices.Equal(got, wantKeep) {
				t.Errorf("keep %q, want %q", got, wantKeep)
			}
			if got := times(remove); !slices.Equal(got, tc.removed) {
				t.Errorf("remove %q, want %q", got, tc.removed)
			}
			got := reasonsByTime(sns, reasons)
			for k, want := range tc.keep {
				if got[k] != want {
					t.Errorf("%s: reasons %q, want %q", k, got[k], want)
				}
			}
			if len(reasons) != len(keep) {
				t.Errorf("%d reasons for %d kept snapshots", len(reasons), len(keep))
			}
		})
	}
}

func TestApplyTags(t *testing.T) {
	t.Parallel()
	sns := []*snapshot.Snapshot{
		snap(t, "2026-11-01 00:00", "h", []string{"/srv"}, "nightly"),
		snap(t, "2026-11-02 00:00", "h", []string{"/srv"}, "adhoc"),
		snap(t, "2026-11-03 00:00", "h", []string{"/srv"}, "nightly", "important"),
		snap(t, "2026-11-04 00:00", "h", []string{"/srv"}),
	}
	keep, remove, reasons := snapshot.Apply(sns, snapshot.Policy{Tags: []string{"nightly", "important"}}, at(t, "2026-11-21 12:00"))
	if got := times(keep); !slices.Equal(got, []string{"2026-11-01 00:00", "2026-11-03 00:00"}) {
		t.Errorf("keep %q", got)
	}
	if got := times(remove); !slices.Equal(got, []string{"2026-11-02 00:00", "2026-11-04 00:00"}) {
		t.Errorf("remove %q", got)
	}
	if got := reasons[sns[2].ID]; !slices.Equal(got, []string{"tag nightly", "tag important"}) {
		t.Errorf("reasons %q", got)
	}
}

// TestApplyLocation: calendar buckets follow now's location, not the
// location the snapshot times happen to carry.
func TestApplyLocation(t *testing.T) {
	t.Parallel()
	sns := snaps(t, "2026-11-20 21:00", "2026-11-20 23:30")
	plus2 := time.FixedZone("UTC+2", 2*3600)
	now := at(t, "2026-11-21 12:00")

	keep, _, reasons := snapshot.Apply(sns, snapshot.Policy{Daily: 5}, now)
	if len(keep) != 1 || reasons[sns[1].ID][0] != "daily snapshot 2026-11-20" {
		t.Errorf("UTC: keep %q, reasons %q", times(keep), reasons)
	}
	keep, _, reasons = snapshot.Apply(sns, snapshot.Policy{Daily: 5}, now.In(plus2))
	if len(keep) != 2 || reasons[sns[1].ID][0] != "daily snapshot 2026-11-21" || reasons[sns[0].ID][0] != "daily snapshot 2026-11-20" {
		t.Errorf("UTC+2: keep %q, reasons %q", times(keep), reasons)
	}
}

func TestPolicyEmpty(t *testing.T) {
	t.Parallel()
	if !(snapshot.Policy{}).Empty() {
		t.Error("zero policy is not empty")
	}
	for _, p := range []snapshot.Policy{{Last: 1}, {Hourly: -1}, {Yearly: 1}, {Within: time.Hour}, {Tags: []string{"x"}}} {
		if p.Empty() {
			t.Errorf("%+v is empty", p)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour: "7d",
		36 * time.Hour:     "36h0m0s",
		90 * time.Minute:   "1h30m0s",
	} {
		if got := snapshot.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestGroup(t *testing.T) {
	t.Parallel()
	a1 := snap(t, "2026-11-01 00:00", "a", []string{"/srv", "/etc"}, "x")
	a2 := snap(t, "2026-11-02 00:00", "a", []string{"/etc", "/srv"}, "y")
	a3 := snap(t, "2026-11-03 00:00", "a", []string{"/home"})
	b1 := snap(t, "2026-10-01 00:00", "b", []string{"/srv", "/etc"}, "x")
	all := []*snapshot.Snapshot{a3, b1, a2, a1}

	describe := func(gs []snapshot.SnapshotGroup) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.Key.String()+": "+strings.Join(times(g.Snapshots), ", "))
		}
		return out
	}
	for _, tc := range []struct {
		by   []string
		want []string
	}{
		{nil, []string{"all snapshots: 2026-10-01 00:00, 2026-11-01 00:00, 2026-11-02 00:00, 2026-11-03 00:00"}},
		{[]string{"host"}, []string{
			"host a: 2026-11-01 00:00, 2026-11-02 00:00, 2026-11-03 00:00",
			"host b: 2026-10-01 00:00",
		}},
		{[]string{"host", "paths"}, []string{
			"host a, paths /etc /srv: 2026-11-01 00:00, 2026-11-02 00:00",
			"host a, paths /home: 2026-11-03 00:00",
			"host b, paths /etc /srv: 2026-10-01 00:00",
		}},
		{[]string{"paths"}, []string{
			"paths /etc /srv: 2026-10-01 00:00, 2026-11-01 00:00, 2026-11-02 00:00",
			"paths /home: 2026-11-03 00:00",
		}},
		{[]string{"tags"}, []string{
			"tags : 2026-11-03 00:00",
			"tags x: 2026-10-01 00:00, 2026-11-01 00:00",
			"tags y: 2026-11-02 00:00",
		}},
	} {
		gs, err := snapshot.Group(all, tc.by)
		if err != nil {
			t.Fatal(err)
		}
		if got := describe(gs); !slices.Equal(got, tc.want) {
			t.Errorf("Group by %q:\n got %q\nwant %q", tc.by, got, tc.want)
		}
	}
	if _, err := snapshot.Group(all, []string{"user"}); err == nil || !strings.Contains(err.Error(), `"user"`) {
		t.Errorf("Group by user: %v", err)
	}
}

// TestApplyPerGroup: each group keeps its own newest snapshots.
func TestApplyPerGroup(t *testing.T) {
	t.Parallel()
	var sns []*snapshot.Snapshot
	for _, h := range []string{"a", "b"} {
		for _, w := range []string{"2026-11-18 00:00", "2026-11-19 00:00", "2026-11-20 00:00"} {
			sns = append(sns, snap(t, w, h, []string{"/srv"}))
		}
	}
	gs, err := snapshot.Group(sns, []string{"host", "paths"})
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 {
		t.Fatalf("%d groups", len(gs))
	}
	for _, g := range gs {
		keep, remove, _ := snapshot.Apply(g.Snapshots, snapshot.Policy{Last: 1}, at(t, "2026-11-21 00:00"))
		if got := times(keep); !slices.Equal(got, []string{"2026-11-20 00:00"}) || len(remove) != 2 {
			t.Errorf("%s: keep %q, remove %q", g.Key, got, times(remove))
		}
	}
}

// TestApplyGuarded: held snapshots and snapshots younger than the minimum
// retention are kept whatever the policy says, with their reasons after
// the policy's.
func TestApplyGuarded(t *testing.T) {
	t.Parallel()
	now := at(t, "2026-11-21 12:00")
	sns := snaps(t, "2026-09-01 00:00", "2026-10-01 00:00", "2026-11-01 00:00", "2026-11-10 00:00", "2026-11-20 00:00", "2026-11-21 00:00")
	g := snapshot.Guard{
		MinRetention: 14 * 24 * time.Hour,
		Holds: map[id.ID][]string{
			sns[0].ID: {"litigation 17", ""},
			sns[5].ID: {"audit"},
		},
	}
	keep, remove, reasons := snapshot.ApplyGuarded(sns, snapshot.Policy{Last: 1}, g, now)
	if got := times(remove); !slices.Equal(got, []string{"2026-10-01 00:00", "2026-11-01 00:00"}) {
		t.Errorf("remove %q", got)
	}
	if got := times(keep); !slices.Equal(got, []string{"2026-09-01 00:00", "2026-11-10 00:00", "2026-11-20 00:00", "2026-11-21 00:00"}) {
		t.Errorf("keep %q", got)
	}
	want := map[string]string{
		"2026-09-01 00:00": "protected: litigation 17; protected",
		"2026-11-10 00:00": "minimum retention 14d",
		"2026-11-20 00:00": "minimum retention 14d",
		"2026-11-21 00:00": "last snapshot; protected: audit; minimum retention 14d",
	}
	if got := reasonsByTime(sns, reasons); !maps.Equal(got, want) {
		t.Errorf("reasons %q, want %q", got, want)
	}

	// Apply is ApplyGuarded with no guard.
	_, remove, _ = snapshot.Apply(sns, snapshot.Policy{Last: 1}, now)
	if len(remove) != 5 {
		t.Errorf("Apply without a guard removes %q", times(remove))
	}
}

func TestGuardReasons(t *testing.T) {
	t.Parallel()
	now := at(t, "2026-11-21 12:00")
	sns := snaps(t, "2026-11-14 12:00", "2026-11-14 12:01", "2026-11-30 00:00")
	g := snapshot.Guard{MinRetention: 7 * 24 * time.Hour}
	// Exactly as old as the minimum: no longer kept.
	if got := g.Reasons(sns[0], now); got != nil {
		t.Errorf("snapshot at the limit kept: %q", got)
	}
	if got := g.Reasons(sns[1], now); !slices.Equal(got, []string{"minimum retention 7d"}) {
		t.Errorf("snapshot a minute inside: %q", got)
	}
	// A snapshot from the future (a client's clock ahead) is young.
	if got := g.Reasons(sns[2], now); len(got) != 1 {
		t.Errorf("future snapshot: %q", got)
	}
	if got := (snapshot.Guard{}).Reasons(sns[1], now); got != nil {
		t.Errorf("empty guard: %q", got)
	}
	g = snapshot.Guard{MinRetention: 36 * time.Hour, Holds: map[id.ID][]string{sns[0].ID: nil}}
	if got := g.Reasons(sns[0], now); !slices.Equal(got, []string{"protected"}) {
		t.Errorf("hold without reasons: %q", got)
	}
	if got := g.Reasons(sns[2], now); !slices.Equal(got, []string{"minimum retention 36h0m0s"}) {
		t.Errorf("hours: %q", got)
	}
}
