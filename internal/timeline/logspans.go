package timeline

import (
	"time"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// A database source is made of backups and a continuous log stored after
// them (PostgreSQL's WAL, the MariaDB binary log): from each backup's
// consistent point it can be restored to any moment up to where the log
// stored without a break after that point reaches. logSpans is what the
// two have in common: backups whose times overlap form one span without a
// break, the newest backup at or before a moment is where a restore to it
// starts, and the log is replayed to the moment or as far as it reaches.

// logSpan is a time a source can be restored to without a break. E is
// what the source knows of where the span's log ends (the missing WAL
// segment, the binary log gap).
type logSpan[E any] struct {
	from, to time.Time
	// backups are the backups whose consistent point falls in the span,
	// oldest first; asOf their consistent points and reach, for each,
	// the last moment its log replays to.
	backups []*snapshot.Snapshot
	asOf    []time.Time
	reach   []time.Time
	// logTo is when the last of the span's log was written; zero when
	// the span is a backup without log after it.
	logTo time.Time
	end   E
}

// newLogSpan is the span of one backup whose consistent point is asOf
// and whose log reaches reach (zero or not after asOf: no log after it),
// the log having been written up to logTo.
func newLogSpan[E any](b *snapshot.Snapshot, asOf, reach, logTo time.Time, end E) logSpan[E] {
	sp := logSpan[E]{from: asOf, to: asOf, backups: []*snapshot.Snapshot{b}, asOf: []time.Time{asOf}, end: end}
	if reach.After(asOf) {
		sp.to, sp.logTo = reach, logTo
	}
	sp.reach = []time.Time{sp.to}
	return sp
}

// mergeLogSpans joins consecutive spans (one per backup, oldest first)
// that overlap: a backup taken before the previous one's log ends
// continues its span. The joined span ends where the one reaching
// furthest ends (the earlier on a tie), with its end.
func mergeLogSpans[E any](spans []logSpan[E]) []logSpan[E] {
	var merged []logSpan[E]
	for _, sp := range spans {
		if n := len(merged); n > 0 && !sp.from.After(merged[n-1].to) {
			cur := &merged[n-1]
			cur.backups = append(cur.backups, sp.backups...)
			cur.asOf = append(cur.asOf, sp.asOf...)
			cur.reach = append(cur.reach, sp.reach...)
			if sp.to.After(cur.to) {
				cur.to, cur.logTo, cur.end = sp.to, sp.logTo, sp.end
			}
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// logRanges are the spans as continuous ranges.
func logRanges[E any](spans []logSpan[E]) []Range {
	out := make([]Range, 0, len(spans))
	for _, sp := range spans {
		out = append(out, Range{From: sp.from, To: sp.to, Continuous: true, Snapshots: len(sp.backups), WALTo: sp.logTo})
	}
	return out
}

// logWords name the log in the notes of a Point.
type logWords struct {
	// none is the note when nothing is stored after the backup, e.g.
	// "no WAL stored after the base backup".
	none string
	// upTo starts the note when the log stops short of the moment, e.g.
	// "WAL archived only up to ".
	upTo string
}

// logPointAt is the backup a restore to t starts from (the newest whose
// consistent point falls in t's span, at or before t, preferring the one
// whose log reaches furthest towards t) and the moment its log is
// replayed to: t itself inside a span, the span's end in the gap after
// it. It returns the span's index too, -1 when t is before every span.
func logPointAt[E any](spans []logSpan[E], t time.Time, w logWords) (Point, int) {
	i := len(spans) - 1
	for i >= 0 && spans[i].from.After(t) {
		i--
	}
	if i < 0 {
		p := Point{}
		if len(spans) > 0 {
			p.Earliest = spans[0].from
		}
		return p, -1
	}
	sp := spans[i]
	var b *snapshot.Snapshot
	var at, reach time.Time
	for j, c := range sp.backups {
		r := sp.reach[j]
		if r.After(t) {
			r = t
		}
		if !sp.asOf[j].After(t) && (b == nil || !r.Before(reach)) {
			b, at, reach = c, sp.asOf[j], r
		}
	}
	p := Point{Found: true, Snapshot: b}
	switch {
	case !reach.After(at):
		p.Shows = at
		if t.After(p.Shows) {
			p.Note = w.none
		}
	case reach.Before(t):
		p.Shows, p.ReplayTo = reach, reach
		p.Note = w.upTo + reach.Local().Format("2006-01-02 15:04:05")
	default:
		p.Shows, p.ReplayTo = t, t
	}
	p.Before = max(0, t.Sub(p.Shows))
	return p, i
}
