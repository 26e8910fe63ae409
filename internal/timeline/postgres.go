package timeline

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// PostgresSource is one PostgreSQL cluster: its base backups (snapshots
// with PostgreSQL metadata) and the WAL archived for it (`pg wal-push`).
// From a base backup's end it can be restored to any moment up to the
// last WAL segment in an unbroken run from the backup's stop LSN; a
// missing segment ends that span, and the next base backup after the gap
// starts a new one. WAL stored before the oldest base backup cannot be
// used. From a base backup's timeline, a span follows the newest
// timeline that branched from it inside the WAL it replays (a promotion
// after a point-in-time restore), as recovery_target_timeline = 'latest'
// does, once FollowSwitches has given the switches.
type PostgresSource struct {
	// SystemID is the cluster's system identifier.
	SystemID uint64
	// Cluster is the name its WAL is stored under, "" when none is.
	Cluster string
	// DataDir is the data directory of its newest base backup.
	DataDir string
	// Backups are its base backups, oldest first (by AsOf).
	Backups []*snapshot.Snapshot
	// WAL is its stored WAL, nil when none is.
	WAL *wal.Cluster
	// Switches are the timelines that branched off another (from the
	// stored history files), by timeline.
	Switches []wal.Switch

	spans []logSpan[pgEnd]
	gaps  []Gap
}

// pgEnd is where a span's WAL ends.
type pgEnd struct {
	// tli and next are the timeline and the first segment number after
	// the span's WAL: what is missing at its end.
	tli  uint32
	next uint64
	size uint32
	// followed are the timeline switches the newest backup's replay
	// takes, in order.
	followed []wal.Switch
}

// FollowSwitches gives s the cluster's timeline switches (wal.Switches)
// and works its spans out again, following them.
func (s *PostgresSource) FollowSwitches(sw []wal.Switch) {
	s.Switches = sw
	s.build()
}

// runOn returns the run of timeline tli that holds segment seg, or nil.
func runOn(runs []walRun, tli uint32, seg uint64) *walRun {
	for i := range runs {
		if runs[i].Timeline == tli && runs[i].first <= seg && seg <= runs[i].last {
			return &runs[i]
		}
	}
	return nil
}

// follow walks the WAL a replay from segment seg of timeline tli reads:
// the run holding it, then the newest timeline that branched off inside
// that run and has its first segment stored, and so on. It returns the
// last run (nil when seg itself is not stored) and the switches taken.
func (s *PostgresSource) follow(runs []walRun, tli uint32, seg uint64, size uint64) (*walRun, []wal.Switch) {
	var taken []wal.Switch
	last := runOn(runs, tli, seg)
	for last != nil {
		var next *wal.Switch
		var nextRun *walRun
		for i := range s.Switches {
			sw := &s.Switches[i]
			at := uint64(sw.At) / size
			if sw.Parent != tli || at < seg || at > last.last+1 {
				continue
			}
			if r := runOn(runs, sw.Timeline, at); r != nil && (next == nil || sw.Timeline > next.Timeline) {
				next, nextRun = sw, r
			}
		}
		if next == nil {
			break
		}
		taken = append(taken, *next)
		tli, seg, last = next.Timeline, uint64(next.At)/size, nextRun
	}
	return last, taken
}

// PostgresSources returns the clusters of one host: the base backups of
// sns (any order) grouped by system identifier, each with the WAL of cat
// stored with that system identifier, and the clusters of cat whose WAL
// host pushed though no base backup of it is in sns. cat may be nil.
func PostgresSources(sns []*snapshot.Snapshot, cat *wal.Catalog, host string) []*PostgresSource {
	bySys := map[uint64]*PostgresSource{}
	var out []*PostgresSource
	var backups []*snapshot.Snapshot
	for _, sn := range sns {
		if sn.Postgres != nil {
			backups = append(backups, sn)
		}
	}
	snapshot.SortByAsOf(backups)
	for _, sn := range backups {
		sys, err := strconv.ParseUint(sn.Postgres.SystemID, 10, 64)
		if err != nil {
			continue
		}
		s := bySys[sys]
		if s == nil {
			s = &PostgresSource{SystemID: sys}
			bySys[sys] = s
			out = append(out, s)
		}
		s.Backups = append(s.Backups, sn)
		s.DataDir = sn.Postgres.DataDir
	}
	if cat != nil {
		for _, name := range cat.Names() {
			cl := cat.Cluster(name)
			s := bySys[cl.SystemID]
			if s == nil {
				if !slices.Contains(cl.Hosts, host) {
					continue
				}
				s = &PostgresSource{SystemID: cl.SystemID}
				bySys[cl.SystemID] = s
				out = append(out, s)
			}
			if s.WAL == nil {
				s.Cluster, s.WAL = name, cl
			}
		}
	}
	for _, s := range out {
		s.build()
	}
	slices.SortFunc(out, func(a, b *PostgresSource) int {
		if c := compareStrings(a.DataDir, b.DataDir); c != 0 {
			return c
		}
		return compareStrings(a.Cluster, b.Cluster)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// walRun is a run of consecutive stored segments of one timeline, with
// segment numbers.
type walRun struct {
	wal.Range
	first, last uint64
	written     time.Time
}

// runs returns the WAL's runs of segments, by timeline and segment.
func (s *PostgresSource) runs() []walRun {
	if s.WAL == nil {
		return nil
	}
	size := s.WAL.SegSize()
	var out []walRun
	for _, r := range s.WAL.Ranges() {
		run := walRun{Range: r, first: uint64(r.Start) / uint64(size), last: uint64(r.End)/uint64(size) - 1}
		run.written = r.To
		if e := s.WAL.Find(r.Last); e != nil && !e.Modified.IsZero() {
			run.written = e.Modified
		}
		out = append(out, run)
	}
	return out
}

// build works out the spans and gaps.
func (s *PostgresSource) build() {
	runs := s.runs()
	segSize := uint64(0)
	if s.WAL != nil {
		segSize = uint64(s.WAL.SegSize())
	}
	var spans []logSpan[pgEnd]
	for _, b := range s.Backups {
		size := segSize
		if size == 0 {
			size = b.Postgres.WALSegmentSize
		}
		stop, err := wal.ParseLSN(b.Postgres.StopLSN)
		if err != nil || size == 0 {
			continue
		}
		seg := uint64(stop) / size
		end := pgEnd{tli: b.Postgres.Timeline, next: seg, size: uint32(size)}
		var reach time.Time
		r, taken := s.follow(runs, end.tli, seg, size)
		if r != nil {
			reach = r.written
			end.next, end.tli, end.followed = r.last+1, r.Timeline, taken
		}
		sp := newLogSpan(b, b.AsOf(), reach, reach, end)
		if r != nil {
			sp.logTo = r.written
		}
		spans = append(spans, sp)
	}
	merged := mergeLogSpans(spans)
	s.spans, s.gaps = merged, nil
	for i, sp := range merged {
		e := sp.end
		first := wal.SegmentName(e.tli, e.next, e.size)
		// The next stored segment after the break, on the same timeline.
		var after *walRun
		for j := range runs {
			if runs[j].Timeline == e.tli && runs[j].first > e.next {
				after = &runs[j]
				break
			}
		}
		g := Gap{Until: sp.to, MissingFirst: first}
		if after != nil {
			g.MissingLast = wal.SegmentName(e.tli, after.first-1, e.size)
		}
		switch {
		case i+1 < len(merged):
			g.Resume, g.ResumeFrom = merged[i+1].from, merged[i+1].backups[0]
		case after == nil:
			continue // the end of the archive: nothing after is stored
		}
		g.What = describeMissing(g.MissingFirst, g.MissingLast, s.WAL == nil)
		if g.Resume.IsZero() {
			g.What += fmt.Sprintf("; the WAL stored after them (up to %s) cannot be used without a newer base backup",
				runs[len(runs)-1].written.Local().Format("2006-01-02 15:04:05"))
		}
		s.gaps = append(s.gaps, g)
	}
}

func describeMissing(first, last string, noWAL bool) string {
	switch {
	case noWAL:
		return "no WAL archived: segments from " + first + " missing"
	case last == "":
		return "segments from " + first + " missing"
	case last == first:
		return "segment " + first + " missing"
	}
	return "segments " + first + ".." + last + " missing"
}

// Name is the name its WAL is stored under, else its data directory.
func (s *PostgresSource) Name() string {
	if s.Cluster != "" {
		return s.Cluster
	}
	return s.DataDir
}

// Kind is KindPostgres.
func (s *PostgresSource) Kind() string { return KindPostgres }

// Ranges are the spans without a break, each continuous.
func (s *PostgresSource) Ranges() []Range { return logRanges(s.spans) }

// Gaps are the missing WAL between spans, and after the last one when
// WAL was stored beyond it.
func (s *PostgresSource) Gaps() []Gap { return s.gaps }

// PointAt is the base backup a restore to t starts from (the newest whose
// end falls in t's span, at or before t) and the moment its WAL is
// replayed to: t itself inside a span, the span's end in the gap after
// it.
func (s *PostgresSource) PointAt(t time.Time) Point {
	p, i := logPointAt(s.spans, t, logWords{none: "no WAL stored after the base backup", upTo: "WAL archived only up to "})
	if i < 0 || p.ReplayTo.IsZero() || !p.ReplayTo.Equal(t) {
		return p
	}
	// Before a timeline the replay follows began, the restore shows its
	// parent only up to the branch point.
	for _, sw := range s.spans[i].end.followed {
		if t.Before(sw.Created) {
			p.Note = fmt.Sprintf("timeline %d began at %s, branching from timeline %d at %s: a restore to an earlier moment follows it and shows timeline %d only up to the branch point (--timeline %d restores timeline %d's own history)",
				sw.Timeline, sw.Created.Local().Format("2006-01-02 15:04:05"), sw.Parent, sw.At, sw.Parent, sw.Parent, sw.Parent)
			break
		}
	}
	return p
}

// Timeline is the timeline the newest span's replay ends on, 0 without
// a span.
func (s *PostgresSource) Timeline() uint32 {
	if len(s.spans) == 0 {
		return 0
	}
	return s.spans[len(s.spans)-1].end.tli
}
