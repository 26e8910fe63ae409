package timeline_test

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
)

// capture makes a snapshot of paths that ran from start for took.
func capture(start time.Time, took time.Duration, paths ...string) *snapshot.Snapshot {
	return &snapshot.Snapshot{
		Time: start, Paths: paths, Hostname: "web1",
		ID:      id.ID(sha256.Sum256(fmt.Appendf(nil, "%v %v", start, paths))),
		Summary: &snapshot.Summary{BackupStart: start, BackupEnd: start.Add(took)},
	}
}

// sourcesText shows sources as "path=label [inner...]" for messages.
func sourcesText(srcs []timeline.PathAt, label map[*snapshot.Snapshot]string) string {
	var b []string
	for _, s := range srcs {
		t := s.Path + "=" + label[s.Snapshot]
		if len(s.Inner) > 0 {
			t += " " + fmt.Sprint(s.Inner)
		}
		b = append(b, t)
	}
	return strings.Join(b, "; ")
}

// TestAtEveryScenarios: a host with a nightly backup of /etc and /srv, an
// hourly one of /srv/www, and watch snapshots of /srv/www/uploads.
func TestAtEveryScenarios(t *testing.T) {
	day := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	nightly := capture(day.Add(2*time.Hour), 20*time.Minute, "/etc", "/srv")
	www9 := capture(day.Add(9*time.Hour), time.Minute, "/srv/www")
	www10 := capture(day.Add(10*time.Hour), time.Minute, "/srv/www")
	watch1 := capture(day.Add(10*time.Hour+30*time.Minute), time.Second, "/srv/www/uploads")
	etcOnly := capture(day.Add(11*time.Hour), time.Minute, "/etc/")
	// A backup of / at noon answers everything after it.
	root := capture(day.Add(12*time.Hour), 10*time.Minute, "/")
	label := map[*snapshot.Snapshot]string{nightly: "nightly", www9: "www9", www10: "www10", watch1: "watch1", etcOnly: "etc11", root: "root"}
	sns := []*snapshot.Snapshot{root, watch1, www10, nightly, etcOnly, www9}
	snapshot.SortByAsOf(sns)

	for _, tt := range []struct {
		at   time.Duration
		want string
	}{
		{1 * time.Hour, ""},
		// The nightly capture was still running at 2:10: nothing yet.
		{2*time.Hour + 10*time.Minute, ""},
		{2*time.Hour + 20*time.Minute, "/etc=nightly; /srv=nightly"},
		{9*time.Hour + 30*time.Minute, "/etc=nightly; /srv=nightly [/srv/www]; /srv/www=www9"},
		{10*time.Hour + 1*time.Minute, "/etc=nightly; /srv=nightly [/srv/www]; /srv/www=www10"},
		{10*time.Hour + 31*time.Minute, "/etc=nightly; /srv=nightly [/srv/www]; /srv/www=www10 [/srv/www/uploads]; /srv/www/uploads=watch1"},
		{11*time.Hour + 5*time.Minute, "/etc=etc11; /srv=nightly [/srv/www]; /srv/www=www10 [/srv/www/uploads]; /srv/www/uploads=watch1"},
		// / answers everything once it has ended, and not before.
		{12*time.Hour + 5*time.Minute, "/etc=etc11; /srv=nightly [/srv/www]; /srv/www=www10 [/srv/www/uploads]; /srv/www/uploads=watch1"},
		{12*time.Hour + 10*time.Minute, "/=root"},
	} {
		got := sourcesText(timeline.AtEvery(sns, day.Add(tt.at)), label)
		if got != tt.want {
			t.Errorf("at +%v:\n got %s\nwant %s", tt.at, got, tt.want)
		}
	}
}

// TestAtEveryMatchesAt: on random histories, every path is answered by
// the snapshot that At picks among those covering it, and sources are
// minimal: none repeats the snapshot of the one enclosing it.
func TestAtEveryMatchesAt(t *testing.T) {
	dirs := []string{"/", "/etc", "/etc/nginx", "/srv", "/srv/www", "/srv/www/up", "/srv/wwwx", "/home/a", "/home/b", "/var/lib/db"}
	probes := append(slices.Clone(dirs), "/etc/nginx/conf", "/srv/www/up/x", "/home", "/home/a/f", "/var", "/opt/x", "/srv/wwwx/y")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var sns []*snapshot.Snapshot
		for i := range 1 + rng.IntN(8) {
			var paths []string
			for range 1 + rng.IntN(3) {
				p := dirs[1+rng.IntN(len(dirs)-1)]
				if rng.IntN(20) == 0 {
					p = "/"
				}
				if !slices.Contains(paths, p) {
					paths = append(paths, p)
				}
			}
			start := base.Add(time.Duration(rng.IntN(100)) * time.Minute).Add(time.Duration(i))
			sns = append(sns, capture(start, time.Duration(rng.IntN(30))*time.Minute, paths...))
		}
		snapshot.SortByAsOf(sns)
		for _, at := range []time.Duration{0, 20, 45, 70, 100, 140} {
			tm := base.Add(at * time.Minute)
			srcs := timeline.AtEvery(sns, tm)
			where := fmt.Sprintf("seed %d at +%dm", seed, at)
			if !slices.IsSortedFunc(srcs, func(a, b timeline.PathAt) int { return strings.Compare(a.Path, b.Path) }) {
				t.Fatalf("%s: sources not sorted by path", where)
			}
			for _, q := range probes {
				covering := timeline.Select(sns, snapshot.Filter{}, q)
				want := timeline.At(covering, tm)
				src := deepestSource(srcs, q)
				switch {
				case want == nil && src != nil:
					t.Errorf("%s: %s is answered by %s, but no capture covering it had ended", where, q, src.Path)
				case want != nil && src == nil:
					t.Errorf("%s: %s is answered by no source, want %v", where, q, want.Time)
				case want != nil && src.Snapshot != want:
					t.Errorf("%s: %s is answered by the snapshot of %s from %v, want %v", where, q, src.Path, src.Snapshot.Time, want.Time)
				}
			}
			for i, s := range srcs {
				up := deepestSource(srcs[:i], s.Path)
				if up != nil && up.Snapshot == s.Snapshot {
					t.Errorf("%s: %s repeats the snapshot of %s", where, s.Path, up.Path)
				}
				if up != nil && !slices.Contains(up.Inner, s.Path) {
					t.Errorf("%s: %s does not name %s among its inner paths %v", where, up.Path, s.Path, up.Inner)
				}
				for _, in := range s.Inner {
					if deepestSource(srcs, in) == nil || deepestSource(srcs, in).Path != in {
						t.Errorf("%s: %s names inner path %s that is no source", where, s.Path, in)
					}
				}
			}
		}
	}
}

// deepestSource returns the source whose path is q or the deepest one
// above q.
func deepestSource(srcs []timeline.PathAt, q string) *timeline.PathAt {
	var best *timeline.PathAt
	for i := range srcs {
		p := srcs[i].Path
		if p == q || p == "/" || strings.HasPrefix(q, p+"/") {
			if best == nil || len(p) > len(best.Path) {
				best = &srcs[i]
			}
		}
	}
	return best
}
