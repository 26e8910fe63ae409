// Package pitr restores a MariaDB/MySQL data directory to a moment: the
// newest physical backup at or before the target (mysql.RestoreBase), then
// the stored binary log (internal/mysql/binlog) replayed from the
// backup's consistent point to the end of the last transaction committed
// at the target, through a scratch server (mysql.Replay). docs/MYSQL.md,
// "Restore to a moment".
package pitr

import (
	"errors"
	"fmt"
	"time"

	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// ErrBeforeFirstBackup: the target is before the consistent point of
// every backup considered.
var ErrBeforeFirstBackup = errors.New("the target is before the first backup")

// Plan is what a restore does: restore Snapshot, then replay the stored
// binary log of Source from From to Stop (no replay when Stop is nil or
// equal to From).
type Plan struct {
	Snapshot *snapshot.Snapshot
	From     mysql.BinlogPos
	Stop     *binlog.StopPoint
	Source   *binlog.Source
}

// Replays tells whether the plan applies binary log events.
func (p *Plan) Replays() bool {
	return p.Stop != nil && p.From != stopPos(*p.Stop)
}

func stopPos(s binlog.StopPoint) mysql.BinlogPos { return mysql.BinlogPos{File: s.File, Pos: s.Pos} }

// backupPos is a backup's consistent point.
func backupPos(sn *snapshot.Snapshot) mysql.BinlogPos {
	return mysql.BinlogPos{File: sn.MySQL.BinlogFile, Pos: sn.MySQL.BinlogPos}
}

// Physical returns the physical MariaDB/MySQL backups among sns, in the
// same order.
func Physical(sns []*snapshot.Snapshot) []*snapshot.Snapshot {
	var out []*snapshot.Snapshot
	for _, sn := range sns {
		if sn.MySQL != nil && sn.MySQL.Method == snapshot.MySQLPhysical {
			out = append(out, sn)
		}
	}
	return out
}

// Make plans a restore to target t. given is the backup the user named
// (nil: the newest of backups, the physical backups considered, oldest
// first, at or before the target). With no target (latest false, no time,
// no GTID) the backup alone is restored to its consistent point. cat may be
// nil when nothing is stored. Every refusal happens here, before anything
// is written: a target the stored binary log does not reach, a target
// before the first backup, a gap between the backup and the target.
func Make(cat *binlog.Catalog, backups []*snapshot.Snapshot, given *snapshot.Snapshot, t binlog.Target) (*Plan, error) {
	noTarget := !t.Latest && t.GTID == "" && t.Time.IsZero()
	cands := backups
	if given != nil {
		cands = []*snapshot.Snapshot{given}
	}
	if len(cands) == 0 {
		return nil, errors.New("the repository holds no physical MariaDB/MySQL backup of this host: take one with rewind mysql backup (a --logical dump restores by loading it into a server)")
	}
	newest := cands[len(cands)-1]
	if noTarget {
		return &Plan{Snapshot: newest}, nil
	}
	if newest.MySQL.BinlogFile == "" {
		if t.Latest && given == nil {
			return &Plan{Snapshot: newest}, nil
		}
		return nil, fmt.Errorf("backup %s was taken from a server without a binary log: it restores only to its own consistent point (%s); name it without --at/--gtid",
			newest.ID.Short(), newest.MySQL.BackupEnd.Local().Format(time.DateTime))
	}
	if cat == nil || len(cat.Sources()) == 0 {
		if t.Latest {
			return &Plan{Snapshot: newest}, nil
		}
		return nil, fmt.Errorf("%w: no binary log is stored in the repository (run rewind mysql binlog receive); the newest backup, %s, restores to %s", binlog.ErrNotCovered,
			newest.ID.Short(), newest.MySQL.BackupEnd.Local().Format(time.DateTime))
	}
	if t.Source == "" && t.ServerID == 0 && len(cat.Sources()) > 1 {
		t.ServerID = newest.MySQL.ServerID
	}
	stop, err := cat.StopFor(t)
	if err != nil {
		if t.Latest && errors.Is(err, binlog.ErrNotCovered) {
			return &Plan{Snapshot: newest}, nil
		}
		return nil, err
	}
	var src *binlog.Source
	for _, s := range cat.Sources() {
		if s.Name == stop.Source {
			src = s
		}
	}
	sp := stopPos(stop)
	var chosen *snapshot.Snapshot
	for _, sn := range cands {
		if sn.MySQL.BinlogFile != "" && !sp.Before(backupPos(sn)) {
			chosen = sn
		}
	}
	if t.Latest && !backupPos(newest).Before(sp) {
		// The newest backup is newer than anything stored after it.
		return &Plan{Snapshot: newest}, nil
	}
	if chosen == nil {
		first := cands[0]
		what := "the first backup"
		if given != nil {
			what = "backup " + given.ID.Short()
		}
		return nil, fmt.Errorf("%w: the last transaction at the target (GTID %s at %s, %s) is before the consistent point of %s (%s, GTID %s, %s): the earliest moment it restores to is %s",
			ErrBeforeFirstBackup, stop.GTID, stop.Time.Local().Format(time.DateTime), sp, what, first.ID.Short(), first.MySQL.GTID,
			backupPos(first), first.MySQL.BackupEnd.Local().Format(time.DateTime))
	}
	p := &Plan{Snapshot: chosen, From: backupPos(chosen), Stop: &stop, Source: src}
	if err := reachable(src, p.From, sp); err != nil {
		return nil, err
	}
	return p, nil
}

// reachable checks that the stored binary log of src holds every byte
// from the start of from's file to stop, and names the last moment it
// does reach when it does not.
func reachable(src *binlog.Source, from, stop mysql.BinlogPos) error {
	ps := src.Pieces(from.File)
	if len(ps) == 0 || ps[0].Start != 0 {
		return fmt.Errorf("%w: the binary log at the backup's consistent point (%s) is not stored from the start of %s: binlog receive started after the backup; restore to the backup's own point, or take a new backup", binlog.ErrNotCovered, from, from.File)
	}
	for _, g := range src.Gaps() {
		after := mysql.BinlogPos{File: g.After.File, Pos: g.After.Pos}
		before := mysql.BinlogPos{File: g.Before.File, Pos: g.Before.Pos}
		// A gap matters when it begins before the stop point and ends
		// after the start of from's file.
		if !after.Before(stop) || !(mysql.BinlogPos{File: from.File}).Before(before) {
			continue
		}
		last := lastBefore(src, after)
		reach := "nothing after the backup's consistent point"
		if last != nil && !last.pos.Before(from) {
			reach = fmt.Sprintf("%s (GTID %s, %s)", last.time.Local().Format(time.DateTime), last.gtid, last.pos)
		}
		return fmt.Errorf("%w: the stored binary log has a gap between the backup's point %s and the target %s: %s; the last moment reachable from this backup is %s",
			binlog.ErrNotCovered, from, stop, g.What, reach)
	}
	return nil
}

type txnAt struct {
	pos  mysql.BinlogPos
	gtid string
	time time.Time
}

// lastBefore is the last stored transaction ending at or before p.
func lastBefore(src *binlog.Source, p mysql.BinlogPos) *txnAt {
	var last *txnAt
	src.Txns(func(file string, x binlog.Txn) bool {
		at := mysql.BinlogPos{File: file, Pos: x.End}
		if p.Before(at) {
			return false
		}
		last = &txnAt{pos: at, gtid: x.GTID, time: time.Unix(x.Time, 0)}
		return true
	})
	return last
}
