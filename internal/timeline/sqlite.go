package timeline

import (
	"path"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// KindSQLite is the kind of a SQLite database source.
const KindSQLite = "sqlite"

// SQLiteSource is one SQLite database of a host, by its path: the
// snapshots that hold a consistent copy of it (their SQLite field names
// it: `sqlite backup`, or `backup` and `watch` capturing it). Its points
// are those copies, each showing the database as it was when its read
// transaction began (CapturedAt). A restore --at of its path picks among
// every snapshot covering the path, some of which may hold it as raw
// bytes (--sqlite=raw); PointAt says so.
type SQLiteSource struct {
	// Path is the database's absolute path.
	Path string
	// Captures are its consistent copies, oldest first (by their
	// snapshot's AsOf), each with its snapshot.
	Captures []SQLiteCapture
	// covering are the snapshots that cover Path, oldest first.
	covering []*snapshot.Snapshot
}

// SQLiteCapture is one consistent copy of a database and the snapshot
// holding it.
type SQLiteCapture struct {
	snapshot.SQLiteCapture
	Snapshot *snapshot.Snapshot
}

// SQLiteSources returns the SQLite databases captured in the snapshots of
// one host (sns, any order), sorted by path.
func SQLiteSources(sns []*snapshot.Snapshot) []*SQLiteSource {
	files := FileSnapshots(sns)
	snapshot.SortByAsOf(files)
	byPath := map[string]*SQLiteSource{}
	var out []*SQLiteSource
	for _, sn := range files {
		for _, c := range sn.SQLite {
			p := path.Clean("/" + c.Path)
			s := byPath[p]
			if s == nil {
				s = &SQLiteSource{Path: p}
				byPath[p] = s
				out = append(out, s)
			}
			s.Captures = append(s.Captures, SQLiteCapture{SQLiteCapture: c, Snapshot: sn})
		}
	}
	for _, s := range out {
		for _, sn := range files {
			if Covers(sn, s.Path) {
				s.covering = append(s.covering, sn)
			}
		}
	}
	slices.SortFunc(out, func(a, b *SQLiteSource) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// sqliteOnly reports whether every path of sn is a database it holds as
// a consistent copy (a `sqlite backup` snapshot): such a snapshot is a
// point of its databases' sources, not a file source of its own.
func sqliteOnly(sn *snapshot.Snapshot) bool {
	if len(sn.SQLite) == 0 {
		return false
	}
	for _, p := range sn.Paths {
		if captureOf(sn, path.Clean("/"+p)) == nil {
			return false
		}
	}
	return true
}

// captureOf returns sn's record of the database at p, nil when sn holds
// no consistent copy of it.
func captureOf(sn *snapshot.Snapshot, p string) *snapshot.SQLiteCapture {
	for i := range sn.SQLite {
		if path.Clean("/"+sn.SQLite[i].Path) == p {
			return &sn.SQLite[i]
		}
	}
	return nil
}

// Name is the database's path.
func (s *SQLiteSource) Name() string { return s.Path }

// Kind is KindSQLite.
func (s *SQLiteSource) Kind() string { return KindSQLite }

// Mode is the journal mode of the newest capture ("wal" or "rollback").
func (s *SQLiteSource) Mode() string {
	if len(s.Captures) == 0 {
		return ""
	}
	return s.Captures[len(s.Captures)-1].Mode
}

// Ranges is one range of points, from the first capture to the last,
// each point the moment its copy shows.
func (s *SQLiteSource) Ranges() []Range {
	if len(s.Captures) == 0 {
		return nil
	}
	r := Range{From: s.Captures[0].CapturedAt, To: s.Captures[len(s.Captures)-1].CapturedAt, Snapshots: len(s.Captures)}
	for i := 1; i < len(s.Captures); i++ {
		r.LargestGap = max(r.LargestGap, s.Captures[i].CapturedAt.Sub(s.Captures[i-1].CapturedAt))
	}
	return []Range{r}
}

// Gaps is none: the spacing of captures is the range's LargestGap.
func (s *SQLiteSource) Gaps() []Gap { return nil }

// PointAt is the snapshot `restore --at t PATH` picks for the database:
// the newest covering it whose capture had ended by t. It shows the
// database as its copy's read transaction saw it; a snapshot holding the
// file's raw bytes instead is named with a note.
func (s *SQLiteSource) PointAt(t time.Time) Point {
	sn := At(s.covering, t)
	if sn == nil {
		p := Point{}
		if len(s.covering) > 0 {
			p.Earliest = s.covering[0].AsOf()
		}
		return p
	}
	p := Point{Found: true, Snapshot: sn, Shows: sn.AsOf()}
	if c := captureOf(sn, s.Path); c != nil && !c.CapturedAt.IsZero() {
		p.Shows = c.CapturedAt
	} else {
		p.Note = "this snapshot holds the database's bytes as read, not a consistent copy (--sqlite=raw, or taken before rewind captured databases): it may not open"
	}
	p.Before = max(0, t.Sub(p.Shows))
	return p
}
