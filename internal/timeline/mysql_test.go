package timeline

import (
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

func myCatalog(secondFrom uint64) *binlog.Catalog {
	ts := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	p1 := binlog.Piece{Name: "mysql-bin.000001", Start: 0, End: 1000, FirstTime: ts(80), LastTime: ts(300), Closed: true, Next: "mysql-bin.000002",
		Txns: []binlog.Txn{{GTID: "0-1-1", End: 200, Time: 90}, {GTID: "0-1-2", End: 600, Time: 200}, {GTID: "0-1-3", End: 900, Time: 300}}, Stored: ts(310)}
	p2 := binlog.Piece{Name: "mysql-bin.000002", Start: secondFrom, End: 500, FirstTime: ts(390), LastTime: ts(400),
		Txns: []binlog.Txn{{GTID: "0-1-5", End: 400, Time: 400}}, Stored: ts(1000)}
	if secondFrom == 0 {
		p2.Prev, p2.PrevEnd = "mysql-bin.000001", 1000
	}
	f := &binlog.File{Version: 1, Source: "main", ServerID: 1, Host: "db1", Time: ts(1000), Pieces: []binlog.Piece{p1, p2}}
	return binlog.NewCatalog([]id.ID{{1}}, []*binlog.File{f})
}

func myBackup(b byte, pos uint64, end int64) *snapshot.Snapshot {
	return &snapshot.Snapshot{ID: id.ID{b}, Time: time.Unix(end, 0), MySQL: &snapshot.MySQLInfo{Method: snapshot.MySQLPhysical, ServerID: 1,
		DataDir: "/var/lib/mysql", BinlogFile: "mysql-bin.000001", BinlogPos: pos, BackupEnd: time.Unix(end, 0)}}
}

func TestMySQLSourceRangesAndGaps(t *testing.T) {
	a, b := myBackup('a', 150, 85), myBackup('b', 600, 250)
	logical := &snapshot.Snapshot{ID: id.ID{'l'}, Time: time.Unix(50, 0), MySQL: &snapshot.MySQLInfo{Method: snapshot.MySQLLogical, ServerID: 1}}
	if fs := FileSnapshots([]*snapshot.Snapshot{a, logical}); len(fs) != 1 || fs[0] != logical {
		t.Errorf("file snapshots: %v", fs)
	}
	// Unbroken: one range from a's point to when the binlog was last stored.
	srcs := MySQLSources([]*snapshot.Snapshot{b, a}, myCatalog(0), "db1")
	if len(srcs) != 1 {
		t.Fatalf("%d sources", len(srcs))
	}
	s := srcs[0]
	rs := s.Ranges()
	if s.Name() != "main" || len(rs) != 1 || !rs[0].From.Equal(time.Unix(85, 0)) || !rs[0].To.Equal(time.Unix(1000, 0)) || rs[0].Snapshots != 2 || len(s.Gaps()) != 0 {
		t.Errorf("unbroken: %s %+v %+v", s.Name(), rs, s.Gaps())
	}
	p := s.PointAt(time.Unix(220, 0))
	if !p.Found || p.Snapshot != a || !p.ReplayTo.Equal(time.Unix(220, 0)) {
		t.Errorf("PointAt 220: %+v", p)
	}
	if p := s.PointAt(time.Unix(260, 0)); p.Snapshot != b {
		t.Errorf("PointAt 260: %+v", p)
	}
	if p := s.PointAt(time.Unix(10, 0)); p.Found || !p.Earliest.Equal(time.Unix(85, 0)) {
		t.Errorf("PointAt 10: %+v", p)
	}
	// A gap after 000001: restorable up to its last transaction (300),
	// and the binlog after it unusable without a newer backup.
	s = MySQLSources([]*snapshot.Snapshot{a, b}, myCatalog(100), "db1")[0]
	rs, gs := s.Ranges(), s.Gaps()
	if len(rs) != 1 || !rs[0].To.Equal(time.Unix(300, 0)) || len(gs) != 1 || !gs[0].Until.Equal(time.Unix(300, 0)) || !gs[0].Resume.IsZero() {
		t.Errorf("gap: %+v %+v", rs, gs)
	}
	if p := s.PointAt(time.Unix(500, 0)); !p.Found || !p.Shows.Equal(time.Unix(300, 0)) || p.Note == "" {
		t.Errorf("PointAt past the gap: %+v", p)
	}
	// A host that stored binlog but has no backup: listed, no range.
	s = MySQLSources(nil, myCatalog(0), "db1")[0]
	if len(s.Ranges()) != 0 {
		t.Errorf("no backup: %+v", s.Ranges())
	}
	if len(MySQLSources(nil, myCatalog(0), "other")) != 0 {
		t.Errorf("another host's binlog listed")
	}
}
