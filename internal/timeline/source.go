package timeline

import (
	"path"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Source is something of a host that rewind can bring back to an earlier
// moment, for `rewind timeline`: a set of backed-up paths, a PostgreSQL
// cluster, and later other databases and disk images. Each answers "to
// which moments can I be restored" (Ranges, Gaps) and "what would a
// restore to t use" (PointAt), in the moments of this package: a
// snapshot's AsOf, the end of its capture.
type Source interface {
	// Name names the source for people: the paths, or the cluster.
	Name() string
	// Kind is what sort of source it is: KindFiles, KindPostgres.
	Kind() string
	// Ranges are the spans of time it can be restored to, oldest first.
	Ranges() []Range
	// Gaps are the breaks between ranges that need explaining (a range
	// of snapshots has none: its largest gap says how far apart they
	// are), oldest first.
	Gaps() []Gap
	// PointAt says what a restore to t would use.
	PointAt(t time.Time) Point
}

// The kinds of sources.
const (
	KindFiles    = "files"
	KindPostgres = "postgres"
)

// Range is a span of time a source can be restored to.
type Range struct {
	// From and To are the first and last restorable moments.
	From, To time.Time
	// Continuous: every moment from From to To can be restored (a
	// database with its write-ahead log); else only the moments of its
	// snapshots.
	Continuous bool
	// Snapshots counts the snapshots the range rests on: each a point of
	// a range that is not continuous, the base backups of one that is.
	Snapshots int
	// LargestGap is the longest time between two consecutive points of a
	// range that is not continuous.
	LargestGap time.Duration
	// WALTo is, for a database, when the last write-ahead log the range
	// replays was written (zero when the range is its base backups
	// alone): "WAL archived up to".
	WALTo time.Time
}

// Gap is a break in a source's history: it can be restored up to Until,
// and again only from Resume (zero: not again until something new is
// backed up).
type Gap struct {
	Until, Resume time.Time
	// ResumeFrom is the snapshot that Resume rests on (the next base
	// backup), nil with a zero Resume.
	ResumeFrom *snapshot.Snapshot
	// What says what is missing: "segments X..Y missing".
	What string
	// MissingFirst and MissingLast name the first and last missing
	// pieces (WAL segments); MissingLast is "" when everything after
	// MissingFirst that was stored lies beyond what Resume needs.
	MissingFirst, MissingLast string
}

// Point is what a restore to a moment would use.
type Point struct {
	// Found is false when the source cannot be restored to the moment:
	// nothing of it had been captured by then; Earliest is the first
	// moment it can be restored to.
	Found    bool
	Earliest time.Time
	// Snapshot is the snapshot the restore starts from: the snapshot
	// itself for files, the base backup for a database.
	Snapshot *snapshot.Snapshot
	// Shows is the moment the restored state stands for: the snapshot's
	// AsOf, or for a database the moment its WAL is replayed to.
	Shows time.Time
	// ReplayTo is, for a database, the moment the WAL is replayed to
	// (zero: the base backup as it is, for want of WAL).
	ReplayTo time.Time
	// Before is how far Shows lies before the moment asked for.
	Before time.Duration
	// Note says why Shows falls short of the moment, if it does for a
	// reason other than the spacing of snapshots.
	Note string
}

// FileSource is one set of paths a host backs up together, as its
// snapshots record them: `backup /etc /home` and `watch /srv/app` are
// two sources. Snapshots of PostgreSQL base backups are not file sources.
type FileSource struct {
	// Paths are the set's paths, absolute, clean and sorted.
	Paths []string
	// Snapshots are the snapshots of exactly these paths, oldest first
	// (by AsOf): the set's restorable points.
	Snapshots []*snapshot.Snapshot
	// covering are the snapshots that cover every path of the set,
	// oldest first: those `restore --at` chooses among.
	covering []*snapshot.Snapshot
}

// FileSources groups the snapshots of one host (sns, any order) by their
// paths into file sources, sorted by their first path. Snapshots with
// PostgreSQL metadata are left out: they are database sources.
func FileSources(sns []*snapshot.Snapshot) []*FileSource {
	files := FileSnapshots(sns)
	snapshot.SortByAsOf(files)
	byKey := map[string]*FileSource{}
	var out []*FileSource
	for _, sn := range files {
		ps := cleanPaths(sn.Paths)
		key := strings.Join(ps, "\x00")
		s := byKey[key]
		if s == nil {
			s = &FileSource{Paths: ps}
			byKey[key] = s
			out = append(out, s)
		}
		s.Snapshots = append(s.Snapshots, sn)
	}
	for _, s := range out {
		for _, sn := range files {
			if coversAll(sn, s.Paths) {
				s.covering = append(s.covering, sn)
			}
		}
	}
	slices.SortFunc(out, func(a, b *FileSource) int { return slices.Compare(a.Paths, b.Paths) })
	return out
}

// FileSnapshots returns, in a new slice, the snapshots of sns that hold
// files to put back as files: not PostgreSQL base backups, which are
// restored with their WAL by pg restore, nor physical MariaDB/MySQL
// backups, restored with their binary log by mysql restore (a logical
// dump is a file, restored by loading it).
func FileSnapshots(sns []*snapshot.Snapshot) []*snapshot.Snapshot {
	files := make([]*snapshot.Snapshot, 0, len(sns))
	for _, sn := range sns {
		if sn.Postgres == nil && (sn.MySQL == nil || sn.MySQL.Method != snapshot.MySQLPhysical) {
			files = append(files, sn)
		}
	}
	return files
}

func cleanPaths(ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, path.Clean("/"+p))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func coversAll(sn *snapshot.Snapshot, ps []string) bool {
	for _, p := range ps {
		if !Covers(sn, p) {
			return false
		}
	}
	return true
}

// Name is the paths, separated by commas.
func (s *FileSource) Name() string { return strings.Join(s.Paths, ", ") }

// Kind is KindFiles.
func (s *FileSource) Kind() string { return KindFiles }

// Ranges is one range of points, from the first snapshot to the last.
func (s *FileSource) Ranges() []Range {
	if len(s.Snapshots) == 0 {
		return nil
	}
	r := Range{From: s.Snapshots[0].AsOf(), To: s.Snapshots[len(s.Snapshots)-1].AsOf(), Snapshots: len(s.Snapshots)}
	for i := 1; i < len(s.Snapshots); i++ {
		r.LargestGap = max(r.LargestGap, s.Snapshots[i].AsOf().Sub(s.Snapshots[i-1].AsOf()))
	}
	return []Range{r}
}

// Gaps is none: the spacing of snapshots is the range's LargestGap.
func (s *FileSource) Gaps() []Gap { return nil }

// PointAt is the snapshot `restore --at t PATH` picks for the set's
// paths: the newest whose capture had ended by t among those that cover
// every path of the set (a backup of / answers for /etc too).
func (s *FileSource) PointAt(t time.Time) Point {
	sn := At(s.covering, t)
	if sn == nil {
		p := Point{}
		if len(s.covering) > 0 {
			p.Earliest = s.covering[0].AsOf()
		}
		return p
	}
	return Point{Found: true, Snapshot: sn, Shows: sn.AsOf(), Before: max(0, t.Sub(sn.AsOf()))}
}
