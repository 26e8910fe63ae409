package timeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
)

// captured marks sn as holding a consistent copy of each database in
// dbs, whose read transaction began 5 seconds before the snapshot ended.
func captured(sn *snapshot.Snapshot, dbs ...string) *snapshot.Snapshot {
	for _, p := range dbs {
		sn.SQLite = append(sn.SQLite, snapshot.SQLiteCapture{Path: p, Mode: "wal", PageSize: 4096, Pages: 10,
			Method: "backup-api", CapturedAt: sn.AsOf().Add(-5 * time.Second)})
	}
	return sn
}

func TestSQLiteSources(t *testing.T) {
	app, grafana := "/srv/app/db.sqlite3", "/var/lib/grafana/grafana.db"
	s1 := captured(fileSnap(1, min_(0), app, grafana), app, grafana)
	s2 := captured(fileSnap(2, min_(10), app), app)
	// A backup of /srv with the database captured inside (backup/watch).
	s3 := captured(fileSnap(3, min_(20), "/srv"), app)
	// A backup of /srv with the database as raw bytes (--sqlite=raw).
	raw := fileSnap(4, min_(30), "/srv")
	// A backup of /etc: no database.
	etc := fileSnap(5, min_(25), "/etc")
	sns := []*snapshot.Snapshot{raw, s3, etc, s2, s1}

	srcs := timeline.SQLiteSources(sns)
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name()+"="+s.Kind())
	}
	if got := strings.Join(names, " | "); got != app+"=sqlite | "+grafana+"=sqlite" {
		t.Fatalf("sources %q", got)
	}
	a := srcs[0]
	rs := a.Ranges()
	if len(rs) != 1 || rs[0].Snapshots != 3 || rs[0].Continuous || !rs[0].From.Equal(min_(0).Add(-5*time.Second)) ||
		!rs[0].To.Equal(min_(20).Add(-5*time.Second)) || rs[0].LargestGap != 10*time.Minute || a.Mode() != "wal" {
		t.Fatalf("range %+v", rs)
	}
	for _, c := range []struct {
		at   time.Time
		want *snapshot.Snapshot
		raw  bool
	}{{min_(-1), nil, false}, {min_(5), s1, false}, {min_(12), s2, false}, {min_(22), s3, false}, {min_(40), raw, true}} {
		p := a.PointAt(c.at)
		if p.Snapshot != c.want || p.Found != (c.want != nil) {
			t.Errorf("at %v: %+v, want %v", c.at, p, c.want)
			continue
		}
		if c.want == nil {
			if !p.Earliest.Equal(min_(0)) {
				t.Errorf("at %v: earliest %v", c.at, p.Earliest)
			}
			continue
		}
		shows := c.want.AsOf().Add(-5 * time.Second)
		if c.raw {
			shows = c.want.AsOf()
		}
		if !p.Shows.Equal(shows) || p.Before != c.at.Sub(shows) || (p.Note != "") != c.raw {
			t.Errorf("at %v: shows %v before %v note %q", c.at, p.Shows, p.Before, p.Note)
		}
	}
	// The sqlite backup snapshots are points of the databases, not file
	// sources; the backups of /srv and /etc stay file sources.
	var files []string
	for _, s := range timeline.FileSources(sns) {
		files = append(files, s.Name())
	}
	if got := strings.Join(files, " | "); got != "/etc | /srv" {
		t.Errorf("file sources %q", got)
	}
}
