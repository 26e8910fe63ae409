package timeline

import (
	"fmt"
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// KindMySQL is a MariaDB/MySQL server.
const KindMySQL = "mysql"

// MySQLSource is one MariaDB/MySQL server, by server_id: its physical
// backups (`mysql backup`) and the binary log stored for it (`mysql binlog
// receive`). From a backup's consistent point it can be restored to any
// moment up to the end of the binary log stored without a gap from the
// start of the backup's binlog file: when the stored log runs to its end,
// up to the time it was last stored (received up to); before a gap, up to
// the last transaction before it. The next backup after a gap starts a new
// span. Binary log stored before the oldest backup cannot be used.
type MySQLSource struct {
	ServerID uint32
	// DataDir is the data directory of its newest backup.
	DataDir string
	// Backups are its physical backups, oldest first (consistent time).
	Backups []*snapshot.Snapshot
	// Binlog is its stored binary log, nil when none is.
	Binlog *binlog.Source

	// spans end with the gap in the binary log that breaks them, if any.
	spans []logSpan[*binlog.Gap]
	gaps  []Gap
}

// asOf is a backup's consistent time.
func myAsOf(sn *snapshot.Snapshot) time.Time {
	if !sn.MySQL.BackupEnd.IsZero() {
		return sn.MySQL.BackupEnd
	}
	return sn.AsOf()
}

// MySQLSources returns the MariaDB/MySQL servers of one host: the physical
// backups of sns (any order) grouped by server_id, each with the binary
// log of cat stored with that server_id, and the sources of cat whose
// binary log host stored though no backup of it is in sns. cat may be nil.
func MySQLSources(sns []*snapshot.Snapshot, cat *binlog.Catalog, host string) []*MySQLSource {
	byID := map[uint32]*MySQLSource{}
	var out []*MySQLSource
	var backups []*snapshot.Snapshot
	for _, sn := range sns {
		if sn.MySQL != nil && sn.MySQL.Method == snapshot.MySQLPhysical {
			backups = append(backups, sn)
		}
	}
	slices.SortStableFunc(backups, func(a, b *snapshot.Snapshot) int { return myAsOf(a).Compare(myAsOf(b)) })
	for _, sn := range backups {
		s := byID[sn.MySQL.ServerID]
		if s == nil {
			s = &MySQLSource{ServerID: sn.MySQL.ServerID}
			byID[sn.MySQL.ServerID] = s
			out = append(out, s)
		}
		s.Backups = append(s.Backups, sn)
		s.DataDir = sn.MySQL.DataDir
	}
	if cat != nil {
		for _, src := range cat.Sources() {
			s := byID[src.ServerID]
			if s == nil {
				if !slices.Contains(src.Hosts, host) {
					continue
				}
				s = &MySQLSource{ServerID: src.ServerID}
				byID[src.ServerID] = s
				out = append(out, s)
			}
			if s.Binlog == nil {
				s.Binlog = src
			}
		}
	}
	for _, s := range out {
		s.build()
	}
	slices.SortFunc(out, func(a, b *MySQLSource) int { return compareStrings(a.Name(), b.Name()) })
	return out
}

// binlogBefore reports whether position (f1, p1) is before (f2, p2),
// binlog files ordered by their number.
func binlogBefore(f1 string, p1 uint64, f2 string, p2 uint64) bool {
	if f1 == f2 {
		return p1 < p2
	}
	return binlogFileLess(f1, f2)
}

func binlogFileLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// reach is how far the binary log takes a restore from backup b: the time
// up to which it replays (zero: nothing stored from b's point) and the
// gap that ends it, if any.
func (s *MySQLSource) reach(b *snapshot.Snapshot) (time.Time, *binlog.Gap) {
	if s.Binlog == nil || b.MySQL.BinlogFile == "" {
		return time.Time{}, nil
	}
	ps := s.Binlog.Pieces(b.MySQL.BinlogFile)
	if len(ps) == 0 || ps[0].Start != 0 {
		return time.Time{}, nil
	}
	for _, g := range s.Binlog.Gaps() {
		if binlogBefore(b.MySQL.BinlogFile, 0, g.Before.File, g.Before.Pos) {
			// The last transaction before the gap (before the backup's
			// point when the gap comes first: the caller keeps the
			// backup's own time then).
			var last time.Time
			s.Binlog.Txns(func(file string, x binlog.Txn) bool {
				if binlogBefore(g.After.File, g.After.Pos, file, x.End) {
					return false
				}
				last = time.Unix(x.Time, 0)
				return true
			})
			return last, &g
		}
	}
	return s.Binlog.Stored(), nil
}

func (s *MySQLSource) build() {
	var spans []logSpan[*binlog.Gap]
	for _, b := range s.Backups {
		r, g := s.reach(b)
		spans = append(spans, newLogSpan(b, myAsOf(b), r, r, g))
	}
	merged := mergeLogSpans(spans)
	s.spans, s.gaps = merged, nil
	for i, sp := range merged {
		g := sp.end
		if g == nil {
			continue
		}
		gap := Gap{Until: sp.to, What: g.What, MissingFirst: g.After.String(), MissingLast: g.Before.String()}
		if i+1 < len(merged) {
			gap.Resume, gap.ResumeFrom = merged[i+1].from, merged[i+1].backups[0]
		} else {
			gap.What += "; the binary log stored after it cannot be used without a newer backup"
		}
		s.gaps = append(s.gaps, gap)
	}
}

// Name is the name its binary log is stored under, else its data
// directory, else its server_id.
func (s *MySQLSource) Name() string {
	switch {
	case s.Binlog != nil:
		return s.Binlog.Name
	case s.DataDir != "":
		return s.DataDir
	}
	return fmt.Sprintf("server_id %d", s.ServerID)
}

// Kind is KindMySQL.
func (s *MySQLSource) Kind() string { return KindMySQL }

// Ranges are the spans without a break, each continuous.
func (s *MySQLSource) Ranges() []Range { return logRanges(s.spans) }

// Gaps are the breaks in the stored binary log after a backup.
func (s *MySQLSource) Gaps() []Gap { return s.gaps }

// PointAt is the backup a restore to t starts from (the newest at or
// before t in t's span) and the moment the binary log is replayed to.
func (s *MySQLSource) PointAt(t time.Time) Point {
	p, _ := logPointAt(s.spans, t, logWords{none: "no binary log stored after the backup", upTo: "binary log stored only up to "})
	return p
}
