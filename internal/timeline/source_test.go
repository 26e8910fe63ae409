package timeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func min_(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func fileSnap(n int, end time.Time, paths ...string) *snapshot.Snapshot {
	sn := &snapshot.Snapshot{Time: end.Add(-10 * time.Second), Paths: paths, Summary: &snapshot.Summary{BackupEnd: end}}
	sn.ID[0] = byte(n)
	return sn
}

func TestFileSources(t *testing.T) {
	etc1 := fileSnap(1, min_(0), "/etc")
	etc2 := fileSnap(2, min_(60), "/etc/")
	home := fileSnap(3, min_(10), "/home", "/root")
	home2 := fileSnap(4, min_(20), "/root", "/home")
	home3 := fileSnap(5, min_(50), "/home", "/root")
	root := fileSnap(6, min_(30), "/")
	pg := fileSnap(7, min_(5), "/var/lib/postgresql/15/main")
	pg.Postgres = &snapshot.PGInfo{SystemID: "1"}
	srcs := timeline.FileSources([]*snapshot.Snapshot{home3, etc2, pg, home, root, etc1, home2})
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name())
	}
	if got := strings.Join(names, " | "); got != "/ | /etc | /home, /root" {
		t.Fatalf("sources %q", got)
	}
	h := srcs[2]
	rs := h.Ranges()
	if len(rs) != 1 || !rs[0].From.Equal(min_(10)) || !rs[0].To.Equal(min_(50)) || rs[0].Snapshots != 3 || rs[0].LargestGap != 30*time.Minute || rs[0].Continuous {
		t.Fatalf("range %+v", rs)
	}
	// At 10:35 the backup of / (10:30) is newer than /home's of 10:20:
	// restore --at picks it, as for the paths one by one.
	for _, c := range []struct {
		at   time.Time
		want *snapshot.Snapshot
	}{{min_(9), nil}, {min_(10), home}, {min_(25), home2}, {min_(35), root}, {min_(55), home3}} {
		p := h.PointAt(c.at)
		if p.Snapshot != c.want || p.Found != (c.want != nil) {
			t.Errorf("at %v: %+v, want %v", c.at, p, c.want)
		}
		if c.want == nil && !p.Earliest.Equal(min_(10)) {
			t.Errorf("at %v: earliest %v", c.at, p.Earliest)
		}
		if c.want != nil && p.Before != c.at.Sub(c.want.AsOf()) {
			t.Errorf("at %v: before %v", c.at, p.Before)
		}
	}
	// A capture still running at t is not chosen: /etc's of 10:59:50 to
	// 11:00 is not, the backup of / that ended at 10:30 is.
	if p := srcs[1].PointAt(min_(60).Add(-time.Second)); p.Snapshot != root {
		t.Errorf("a running capture chosen: %+v", p)
	}
}

const segSize = 16 << 20

// walCatalog stores segments segs (numbers) of timeline 1, segment n
// written at minute n*10.
func walCatalog(t *testing.T, segs ...uint64) *wal.Catalog {
	t.Helper()
	f := &wal.File{Version: 1, Cluster: "main", SystemID: "42", Time: t0, Host: "db1"}
	for _, n := range segs {
		f.Entries = append(f.Entries, wal.Entry{Name: wal.SegmentName(1, n, segSize), Kind: wal.KindSegment, Timeline: 1, SegNo: n, SegSize: segSize,
			Modified: min_(int(n) * 10), Archived: min_(int(n)*10 + 1)})
	}
	c, err := wal.NewCatalog([]id.ID{{1}}, []*wal.File{f})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// baseBackup ends at minute m with its stop LSN in segment seg.
func baseBackup(n int, m int, seg uint64) *snapshot.Snapshot {
	sn := fileSnap(n, min_(m), "/pg")
	sn.Postgres = &snapshot.PGInfo{SystemID: "42", DataDir: "/pg", Timeline: 1, StopLSN: wal.LSN(seg*segSize + 0x28).String(), WALSegmentSize: segSize}
	return sn
}

func TestPostgresSourceContinuous(t *testing.T) {
	b1 := baseBackup(1, 15, 2)
	b2 := baseBackup(2, 45, 5)
	srcs := timeline.PostgresSources([]*snapshot.Snapshot{b2, b1}, walCatalog(t, 1, 2, 3, 4, 5, 6, 7), "db1")
	if len(srcs) != 1 {
		t.Fatalf("%d sources", len(srcs))
	}
	s := srcs[0]
	if s.Name() != "main" || s.Kind() != timeline.KindPostgres {
		t.Fatalf("%s %s", s.Name(), s.Kind())
	}
	// WAL before the oldest backup (segment 1) does not count.
	rs := s.Ranges()
	if len(rs) != 1 || !rs[0].From.Equal(min_(15)) || !rs[0].To.Equal(min_(70)) || !rs[0].WALTo.Equal(min_(70)) || !rs[0].Continuous || rs[0].Snapshots != 2 {
		t.Fatalf("ranges %+v", rs)
	}
	if g := s.Gaps(); len(g) != 0 {
		t.Fatalf("gaps %+v", g)
	}
	p := s.PointAt(min_(40))
	if !p.Found || p.Snapshot != b1 || !p.ReplayTo.Equal(min_(40)) || p.Before != 0 {
		t.Errorf("at 10:40: %+v", p)
	}
	if p := s.PointAt(min_(50)); p.Snapshot != b2 || !p.ReplayTo.Equal(min_(50)) {
		t.Errorf("at 10:50: %+v", p)
	}
	p = s.PointAt(min_(90))
	if p.Snapshot != b2 || !p.ReplayTo.Equal(min_(70)) || p.Before != 20*time.Minute || !strings.Contains(p.Note, "WAL archived only up to") {
		t.Errorf("after the WAL: %+v", p)
	}
	if p := s.PointAt(min_(10)); p.Found || !p.Earliest.Equal(min_(15)) {
		t.Errorf("before the first backup: %+v", p)
	}
}

func TestPostgresSourceGap(t *testing.T) {
	b1 := baseBackup(1, 15, 2)
	b2 := baseBackup(2, 75, 7)
	// Segments 4 and 5 are missing: b1 reaches 10:30 (segment 3), b2
	// starts again at 11:15.
	srcs := timeline.PostgresSources([]*snapshot.Snapshot{b1, b2}, walCatalog(t, 2, 3, 6, 7, 8), "db1")
	s := srcs[0]
	rs := s.Ranges()
	if len(rs) != 2 || !rs[0].From.Equal(min_(15)) || !rs[0].To.Equal(min_(30)) || !rs[1].From.Equal(min_(75)) || !rs[1].To.Equal(min_(80)) {
		t.Fatalf("ranges %+v", rs)
	}
	g := s.Gaps()
	if len(g) != 1 {
		t.Fatalf("gaps %+v", g)
	}
	want := "segments " + wal.SegmentName(1, 4, segSize) + ".." + wal.SegmentName(1, 5, segSize) + " missing"
	if g[0].What != want || !g[0].Until.Equal(min_(30)) || !g[0].Resume.Equal(min_(75)) || g[0].ResumeFrom != b2 {
		t.Fatalf("gap %+v, want %q", g[0], want)
	}
	// In the gap: the WAL's end before it, 20 minutes short.
	p := s.PointAt(min_(50))
	if p.Snapshot != b1 || !p.ReplayTo.Equal(min_(30)) || p.Before != 20*time.Minute {
		t.Errorf("in the gap: %+v", p)
	}

	// No base backup after the gap: the WAL after it is useless, and
	// said so.
	s = timeline.PostgresSources([]*snapshot.Snapshot{b1}, walCatalog(t, 2, 3, 6, 7, 8), "db1")[0]
	if g := s.Gaps(); len(g) != 1 || !g[0].Resume.IsZero() || !strings.Contains(g[0].What, "cannot be used without a newer base backup") {
		t.Fatalf("trailing gap %+v", g)
	}

	// A backup whose stop segment was never archived: its end alone.
	s = timeline.PostgresSources([]*snapshot.Snapshot{b1}, nil, "db1")[0]
	rs = s.Ranges()
	if len(rs) != 1 || !rs[0].From.Equal(rs[0].To) || !rs[0].WALTo.IsZero() {
		t.Fatalf("without WAL: %+v", rs)
	}
	if p := s.PointAt(min_(50)); p.Snapshot != b1 || !p.ReplayTo.IsZero() || !p.Shows.Equal(min_(15)) || p.Note == "" {
		t.Errorf("without WAL: %+v", p)
	}
}

func TestPostgresSourcesHosts(t *testing.T) {
	cat := walCatalog(t, 1, 2)
	if srcs := timeline.PostgresSources(nil, cat, "db1"); len(srcs) != 1 || srcs[0].WAL == nil || len(srcs[0].Ranges()) != 0 {
		t.Fatalf("WAL without base backups on its host: %+v", srcs)
	}
	if srcs := timeline.PostgresSources(nil, cat, "web1"); len(srcs) != 0 {
		t.Fatalf("another host's WAL: %+v", srcs)
	}
}

// TestPostgresSourceSwitches: a backup on timeline 1 (segments 1..6), a
// restore promoted at 0/4000100 into timeline 2 (segments 4..8), and a
// timeline 3 branching off timeline 1 whose first segment is not stored.
// The range follows timeline 2 to its end, not the unstored timeline 3.
func TestPostgresSourceSwitches(t *testing.T) {
	f := &wal.File{Version: 1, Cluster: "main", SystemID: "42", Time: t0, Host: "db1"}
	add := func(tli uint32, n uint64, m int) {
		f.Entries = append(f.Entries, wal.Entry{Name: wal.SegmentName(tli, n, segSize), Kind: wal.KindSegment, Timeline: tli, SegNo: n, SegSize: segSize,
			Modified: min_(m), Archived: min_(m + 1)})
	}
	for n := uint64(1); n <= 6; n++ {
		add(1, n, int(n)*10)
	}
	for n := uint64(4); n <= 8; n++ {
		add(2, n, 100+int(n)*10)
	}
	cat, err := wal.NewCatalog([]id.ID{{1}}, []*wal.File{f})
	if err != nil {
		t.Fatal(err)
	}
	b := baseBackup(1, 15, 2)
	s := timeline.PostgresSources([]*snapshot.Snapshot{b}, cat, "db1")[0]
	if rs := s.Ranges(); len(rs) != 1 || !rs[0].To.Equal(min_(60)) || s.Timeline() != 1 {
		t.Fatalf("without switches: %+v on timeline %d", rs, s.Timeline())
	}
	sw := []wal.Switch{
		{Timeline: 2, Parent: 1, At: wal.LSN(4*segSize + 0x100), Created: min_(135)},
		{Timeline: 3, Parent: 1, At: wal.LSN(5*segSize + 0x100), Created: min_(200)},
	}
	s.FollowSwitches(sw)
	rs := s.Ranges()
	if len(rs) != 1 || !rs[0].To.Equal(min_(180)) || s.Timeline() != 2 {
		t.Fatalf("with switches: %+v on timeline %d, want up to %v on timeline 2", rs, s.Timeline(), min_(180))
	}
	if p := s.PointAt(min_(170)); !p.Found || !p.Shows.Equal(min_(170)) || p.Note != "" {
		t.Errorf("at 170: %+v", p)
	}
	// Before timeline 2 began, the restore follows it all the same, and
	// the note says so.
	if p := s.PointAt(min_(100)); !p.Found || !strings.Contains(p.Note, "timeline 2 began") {
		t.Errorf("at 100: %+v", p)
	}
	// A backup of timeline 1 taken after the branch point (in segment 5)
	// is on timeline 1's own future: timeline 2 is not its child.
	late := timeline.PostgresSources([]*snapshot.Snapshot{baseBackup(2, 55, 5)}, cat, "db1")[0]
	late.FollowSwitches(sw[:1])
	if late.Timeline() != 1 || !late.Ranges()[0].To.Equal(min_(60)) {
		t.Errorf("a switch before the backup was followed: timeline %d, %+v", late.Timeline(), late.Ranges())
	}
}
