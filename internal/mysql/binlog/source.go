package binlog

import (
	"fmt"
	"sort"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
)

// Source is the merged binary log of one server, stored under a name.
type Source struct {
	Name       string
	ServerID   uint32
	ServerUUID string
	// IndexFiles are the binlog index files of the source.
	IndexFiles []id.ID
	// Hosts are the hosts that stored its binlog, sorted.
	Hosts []string
	// Small counts the index files written by single stores.
	Small int
	// KeepFrom is the retention horizon (a file name; empty: none);
	// Expired counts the pieces ignored because of it.
	KeepFrom string
	Expired  int
	files    map[string][]*StoredPiece
}

// Names returns the stored binlog file names, in order.
func (s *Source) Names() []string {
	out := make([]string, 0, len(s.files))
	for n := range s.files {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return fileLess(out[i], out[j]) })
	return out
}

// Pieces returns the stored pieces of binlog file name, by offset.
func (s *Source) Pieces(name string) []*StoredPiece { return s.files[name] }

// AllPieces returns every stored piece, by file, then offset.
func (s *Source) AllPieces() []*StoredPiece {
	var out []*StoredPiece
	for _, n := range s.Names() {
		out = append(out, s.files[n]...)
	}
	return out
}

// Position is a place in a server's binary log: a file and an offset in it.
type Position struct {
	File string `json:"file"`
	Pos  uint64 `json:"pos"`
}

func (p Position) String() string { return fmt.Sprintf("%s:%d", p.File, p.Pos) }

// Span is a run of contiguous stored bytes of one binlog file.
type Span struct {
	Name       string
	Start, End uint64
	Pieces     int
	Txns       int
	// Closed: the run ends with the file's last event; Next is the file
	// a rotate event named.
	Closed    bool
	Next      string
	FirstTime time.Time
	LastTime  time.Time
	FirstGTID string
	LastGTID  string
	// Stored is when the newest piece of the run was stored.
	Stored time.Time
}

// Spans returns the runs of contiguous stored bytes, by file and offset.
func (s *Source) Spans() []Span {
	var out []Span
	for _, n := range s.Names() {
		var cur *Span
		for _, p := range s.files[n] {
			if cur == nil || p.Start != cur.End {
				if cur != nil {
					out = append(out, *cur)
				}
				cur = &Span{Name: n, Start: p.Start, End: p.Start}
			}
			cur.End = p.End
			cur.Pieces++
			cur.Txns += len(p.Txns)
			cur.Closed, cur.Next = p.Closed, p.Next
			if !p.FirstTime.IsZero() && (cur.FirstTime.IsZero() || p.FirstTime.Before(cur.FirstTime)) {
				cur.FirstTime = p.FirstTime
			}
			if p.LastTime.After(cur.LastTime) {
				cur.LastTime = p.LastTime
			}
			if len(p.Txns) > 0 {
				if cur.FirstGTID == "" {
					cur.FirstGTID = p.Txns[0].GTID
				}
				cur.LastGTID = p.Txns[len(p.Txns)-1].GTID
			}
			if p.Stored.After(cur.Stored) {
				cur.Stored = p.Stored
			}
		}
		if cur != nil {
			out = append(out, *cur)
		}
	}
	return out
}

// Gap is a stretch of the server's binary log that is not stored: from
// After (the end of what is stored before it) to Before (the start of what
// is stored after it).
type Gap struct {
	After  Position
	Before Position
	What   string
}

// Gaps returns where the stored binary log is not continuous: a file whose
// stored bytes do not start at its beginning, a hole inside a file, and two
// files the receiver did not go from one to the other of (no rotation
// chains them).
func (s *Source) Gaps() []Gap {
	var out []Gap
	spans := s.Spans()
	for i, sp := range spans {
		if i == 0 {
			if sp.Start != 0 {
				out = append(out, Gap{After: Position{sp.Name, 0}, Before: Position{sp.Name, sp.Start},
					What: fmt.Sprintf("%s is stored from offset %d, not from its beginning", sp.Name, sp.Start)})
			}
			continue
		}
		prev := spans[i-1]
		if prev.Name == sp.Name {
			out = append(out, Gap{After: Position{prev.Name, prev.End}, Before: Position{sp.Name, sp.Start},
				What: fmt.Sprintf("%s: bytes %d to %d are not stored", sp.Name, prev.End, sp.Start)})
			continue
		}
		if sp.Start != 0 {
			out = append(out, Gap{After: Position{prev.Name, prev.End}, Before: Position{sp.Name, sp.Start},
				What: fmt.Sprintf("%s is stored from offset %d, not from its beginning", sp.Name, sp.Start)})
			continue
		}
		first := s.files[sp.Name][0]
		chained := first.Prev == prev.Name && first.PrevEnd == prev.End
		rotated := prev.Closed && prev.Next == sp.Name
		if !chained && !rotated {
			out = append(out, Gap{After: Position{prev.Name, prev.End}, Before: Position{sp.Name, 0},
				What: fmt.Sprintf("nothing chains %s (stored up to offset %d) to %s: the end of %s or whole files between them may be missing", prev.Name, prev.End, sp.Name, prev.Name)})
		}
	}
	return out
}

// Txns calls fn for every stored transaction, in binlog order, with the
// file it commits in; fn returning false stops.
func (s *Source) Txns(fn func(file string, t Txn) bool) {
	for _, n := range s.Names() {
		for _, p := range s.files[n] {
			for _, t := range p.Txns {
				if !fn(n, t) {
					return
				}
			}
		}
	}
}

// FirstTime and LastTime return the times of the first and last stored
// events (zero when none).
func (s *Source) FirstTime() time.Time {
	for _, p := range s.AllPieces() {
		if !p.FirstTime.IsZero() {
			return p.FirstTime
		}
	}
	return time.Time{}
}

// LastTime returns the time of the newest stored event.
func (s *Source) LastTime() time.Time {
	var t time.Time
	for _, p := range s.AllPieces() {
		if p.LastTime.After(t) {
			t = p.LastTime
		}
	}
	return t
}

// Stored returns when the newest piece was stored: the binlog was
// received up to its end then.
func (s *Source) Stored() time.Time {
	var t time.Time
	for _, p := range s.AllPieces() {
		if p.Stored.After(t) {
			t = p.Stored
		}
	}
	return t
}

// GTIDRange returns the first and last stored transactions' GTIDs.
func (s *Source) GTIDRange() (first, last string) {
	s.Txns(func(_ string, t Txn) bool {
		if first == "" {
			first = t.GTID
		}
		last = t.GTID
		return true
	})
	return first, last
}

// End returns where the stored binary log ends: the end of the newest
// file's last piece (zero Position when nothing is stored).
func (s *Source) End() Position {
	names := s.Names()
	if len(names) == 0 {
		return Position{}
	}
	ps := s.files[names[len(names)-1]]
	return Position{names[len(names)-1], ps[len(ps)-1].End}
}

// last returns the newest piece, or nil.
func (s *Source) last() *StoredPiece {
	names := s.Names()
	if len(names) == 0 {
		return nil
	}
	ps := s.files[names[len(names)-1]]
	return ps[len(ps)-1]
}

// Covers tells whether the stored binary log holds from (a backup's
// consistent point) onward to its end without a gap, and if not, why.
func (s *Source) Covers(from Position) error {
	ps := s.files[from.File]
	var at *StoredPiece
	for _, p := range ps {
		if p.Start <= from.Pos && from.Pos <= p.End {
			at = p
		}
	}
	if at == nil {
		return fmt.Errorf("position %s is not stored", from)
	}
	for _, g := range s.Gaps() {
		if !fileLess(g.Before.File, from.File) && !(g.Before.File == from.File && g.Before.Pos <= from.Pos) {
			return fmt.Errorf("after %s: %s", from, g.What)
		}
	}
	return nil
}
