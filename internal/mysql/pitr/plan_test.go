package pitr

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// A catalog held in memory (the plan's logic; the real binlog is tested
// in the restore tests of internal/cli).
func fakeCatalog(secondFrom uint64) *binlog.Catalog {
	ts := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	p1 := binlog.Piece{Name: "mysql-bin.000001", Start: 0, End: 1000, FirstTime: ts(80), LastTime: ts(300), Closed: true, Next: "mysql-bin.000002",
		Txns:   []binlog.Txn{{GTID: "0-1-1", End: 200, Time: 90}, {GTID: "0-1-2", End: 300, Time: 100}, {GTID: "0-1-3", End: 600, Time: 200}, {GTID: "0-1-4", End: 900, Time: 300}},
		Stored: ts(1000)}
	p2 := binlog.Piece{Name: "mysql-bin.000002", Start: secondFrom, End: 500, FirstTime: ts(390), LastTime: ts(400),
		Txns: []binlog.Txn{{GTID: "0-1-5", End: 400, Time: 400}}, Stored: ts(1000)}
	if secondFrom == 0 {
		p2.Prev, p2.PrevEnd = "mysql-bin.000001", 1000
	}
	f := &binlog.File{Version: 1, Source: "main", ServerID: 1, Time: ts(1000), Pieces: []binlog.Piece{p1, p2}}
	return binlog.NewCatalog([]id.ID{{1}}, []*binlog.File{f})
}

func backup(name byte, file string, pos uint64, end int64) *snapshot.Snapshot {
	return &snapshot.Snapshot{ID: id.ID{name}, MySQL: &snapshot.MySQLInfo{Method: snapshot.MySQLPhysical, ServerID: 1,
		BinlogFile: file, BinlogPos: pos, GTID: "0-1-x", BackupEnd: time.Unix(end, 0)}}
}

func TestPlanChoosesTheNewestBackupAtOrBeforeTheTarget(t *testing.T) {
	cat := fakeCatalog(0)
	a := backup('a', "mysql-bin.000001", 300, 100)
	b := backup('b', "mysql-bin.000001", 900, 300)
	all := []*snapshot.Snapshot{a, b}
	for _, c := range []struct {
		name    string
		t       binlog.Target
		want    *snapshot.Snapshot
		stop    mysql.BinlogPos
		replays bool
	}{
		{"time between", binlog.Target{Time: time.Unix(250, 0)}, a, mysql.BinlogPos{File: "mysql-bin.000001", Pos: 600}, true},
		{"time at b", binlog.Target{Time: time.Unix(350, 0)}, b, mysql.BinlogPos{File: "mysql-bin.000001", Pos: 900}, false},
		{"time in the second file", binlog.Target{Time: time.Unix(400, 0)}, b, mysql.BinlogPos{File: "mysql-bin.000002", Pos: 400}, true},
		{"fraction of a second", binlog.Target{Time: time.Unix(200, 999_000_000)}, a, mysql.BinlogPos{File: "mysql-bin.000001", Pos: 600}, true},
		{"gtid", binlog.Target{GTID: "0-1-3"}, a, mysql.BinlogPos{File: "mysql-bin.000001", Pos: 600}, true},
		{"latest", binlog.Target{Latest: true}, b, mysql.BinlogPos{File: "mysql-bin.000002", Pos: 400}, true},
	} {
		p, err := Make(cat, all, nil, c.t)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if p.Snapshot != c.want || stopPos(*p.Stop) != c.stop || p.Replays() != c.replays {
			t.Errorf("%s: backup %s, stop %v, replays %v; want %s, %v, %v", c.name, p.Snapshot.ID.Short(), p.Stop, p.Replays(), c.want.ID.Short(), c.stop, c.replays)
		}
	}
	// A SNAPSHOT alone: its own point.
	if p, err := Make(cat, all, a, binlog.Target{}); err != nil || p.Snapshot != a || p.Replays() {
		t.Errorf("snapshot alone: %+v %v", p, err)
	}
	// A SNAPSHOT named with a target after it replays from it.
	if p, err := Make(cat, all, a, binlog.Target{Time: time.Unix(400, 0)}); err != nil || p.Snapshot != a || !p.Replays() {
		t.Errorf("snapshot + --at: %+v %v", p, err)
	}
}

func TestPlanRefusals(t *testing.T) {
	a := backup('a', "mysql-bin.000001", 300, 100)
	all := []*snapshot.Snapshot{a}
	for _, c := range []struct {
		name string
		cat  *binlog.Catalog
		t    binlog.Target
		is   error
		says string
	}{
		{"before the first backup", fakeCatalog(0), binlog.Target{Time: time.Unix(95, 0)}, ErrBeforeFirstBackup, "earliest moment"},
		{"before anything stored", fakeCatalog(0), binlog.Target{Time: time.Unix(10, 0)}, binlog.ErrNotCovered, "first stored"},
		{"after the last stored", fakeCatalog(0), binlog.Target{Time: time.Unix(5000, 0)}, binlog.ErrNotCovered, "received up to"},
		{"unknown gtid", fakeCatalog(0), binlog.Target{GTID: "0-1-99"}, binlog.ErrNotCovered, "0-1-99"},
		{"a gap", fakeCatalog(100), binlog.Target{Time: time.Unix(400, 0)}, binlog.ErrNotCovered, "last moment reachable"},
		{"nothing stored", nil, binlog.Target{Time: time.Unix(400, 0)}, binlog.ErrNotCovered, "binlog receive"},
	} {
		_, err := Make(c.cat, all, nil, c.t)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v; want %v saying %q", c.name, err, c.is, c.says)
		}
	}
	// Before the gap is fine.
	if _, err := Make(fakeCatalog(100), all, nil, binlog.Target{Time: time.Unix(250, 0)}); err != nil {
		t.Errorf("before the gap: %v", err)
	}
	if _, err := Make(fakeCatalog(0), nil, nil, binlog.Target{Latest: true}); err == nil || !strings.Contains(err.Error(), "no physical") {
		t.Errorf("no backup: %v", err)
	}
}
