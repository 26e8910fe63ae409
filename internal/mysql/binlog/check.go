package binlog

import (
	"fmt"
	"sort"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Backup is what retention and checking need of a retained MariaDB/MySQL
// backup (a snapshot with a MySQL record): its server and consistent
// point.
type Backup struct {
	Snapshot id.ID
	Time     time.Time
	ServerID uint32
	Method   string
	// Pos is the consistent point in the binary log; GTID the
	// gtid_binlog_pos there.
	Pos  Position
	GTID string
}

// Backups returns the backups among snaps that have a binlog position
// (a server without a binary log records none: it needs no binlog).
func Backups(snaps []*snapshot.Snapshot) []Backup {
	var out []Backup
	for _, sn := range snaps {
		m := sn.MySQL
		if m == nil || m.BinlogFile == "" || CheckName(m.BinlogFile) != nil {
			continue
		}
		out = append(out, Backup{Snapshot: sn.ID, Time: sn.Time, ServerID: m.ServerID, Method: m.Method,
			Pos: Position{m.BinlogFile, m.BinlogPos}, GTID: m.GTID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// Horizon returns the binlog file from which the backups of source s's
// server need the binary log: the file of the oldest backup's consistent
// point. ok is false when no backup of the server is retained: then no
// binlog may be removed, since nothing says which backup it serves.
func Horizon(s *Source, backups []Backup) (keep string, oldest *Backup, ok bool) {
	for i := range backups {
		b := &backups[i]
		if b.ServerID != s.ServerID {
			continue
		}
		if oldest == nil || fileLess(b.Pos.File, oldest.Pos.File) || (b.Pos.File == oldest.Pos.File && b.Pos.Pos < oldest.Pos.Pos) {
			oldest = b
		}
	}
	if oldest == nil {
		return "", nil, false
	}
	return oldest.Pos.File, oldest, true
}

// BackupCover says whether the stored binary log serves a backup: holds
// its consistent point and everything after it without a gap.
type BackupCover struct {
	Backup  Backup
	Covered bool
	Why     string
}

// GTIDHole is a jump in one domain's sequence numbers between two stored
// transactions that follow each other.
type GTIDHole struct {
	Domain      uint32
	After, Next string
}

// Report is the check of one source.
type Report struct {
	Spans []Span
	// Gaps are the discontinuities; Needed tells those after the
	// horizon (the oldest retained backup's consistent point), which a
	// restore cannot replay across.
	Gaps    []Gap
	Needed  []bool
	Holes   []GTIDHole
	Horizon string
	Backups []BackupCover
}

// Problems returns the report's problems, one line each.
func (r *Report) Problems(source string) []string {
	var out []string
	for i, g := range r.Gaps {
		if r.Needed[i] {
			out = append(out, fmt.Sprintf("source %q: %s", source, g.What))
		}
	}
	for _, h := range r.Holes {
		out = append(out, fmt.Sprintf("source %q: GTID domain %d jumps from %s to %s: transactions between them are not stored", source, h.Domain, h.After, h.Next))
	}
	for _, b := range r.Backups {
		if !b.Covered {
			out = append(out, fmt.Sprintf("source %q: backup %s (consistent point %s): %s", source, b.Backup.Snapshot.Short(), b.Backup.Pos, b.Why))
		}
	}
	return out
}

// Check checks source s's continuity and that it serves the backups of
// its server.
func Check(s *Source, backups []Backup) *Report {
	rep := &Report{Spans: s.Spans(), Gaps: s.Gaps()}
	keep, _, ok := Horizon(s, backups)
	if ok {
		rep.Horizon = keep
	}
	for _, g := range rep.Gaps {
		// Before the horizon no backup needs it.
		rep.Needed = append(rep.Needed, !ok || !fileLess(g.Before.File, keep))
	}
	last := map[uint32]GTID{}
	s.Txns(func(_ string, t Txn) bool {
		g, err := ParseGTID(t.GTID)
		if err != nil {
			return true
		}
		if p, seen := last[g.Domain]; seen && g.Seq != p.Seq+1 && g.Seq > p.Seq {
			rep.Holes = append(rep.Holes, GTIDHole{Domain: g.Domain, After: p.String(), Next: g.String()})
		}
		if p, seen := last[g.Domain]; !seen || g.Seq > p.Seq {
			last[g.Domain] = g
		}
		return true
	})
	for _, b := range backups {
		if b.ServerID != s.ServerID {
			continue
		}
		bc := BackupCover{Backup: b, Covered: true}
		if err := s.Covers(b.Pos); err != nil {
			bc.Covered, bc.Why = false, err.Error()
		}
		rep.Backups = append(rep.Backups, bc)
	}
	return rep
}
