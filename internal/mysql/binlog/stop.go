package binlog

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotCovered: the stored binary log does not reach the target.
var ErrNotCovered = errors.New("the stored binary log does not reach the target")

// Target is where a replay should stop: a time, a GTID, or the newest
// stored transaction. Source names the source when the repository holds
// the binary logs of several servers (else the only one is used); ServerID,
// if not 0, picks the source of that server instead.
type Target struct {
	Time     time.Time
	GTID     string
	Latest   bool
	Source   string
	ServerID uint32
}

// StopPoint is the end of the last transaction a replay applies: File and
// Pos are the offset just after its last event (the commit point), GTID
// and Time its GTID and commit time. Source is the source it is in.
type StopPoint struct {
	Source string    `json:"source"`
	File   string    `json:"file"`
	Pos    uint64    `json:"pos"`
	GTID   string    `json:"gtid"`
	Time   time.Time `json:"time"`
}

// Position returns the stop point's place in the binary log.
func (p StopPoint) Position() Position { return Position{p.File, p.Pos} }

// source picks the source a target means.
func (c *Catalog) source(name string, serverID uint32) (*Source, error) {
	switch {
	case name != "":
		s := c.Source(name)
		if s == nil {
			return nil, fmt.Errorf("no binary log is stored under source %q", name)
		}
		return s, nil
	case serverID != 0:
		return c.SourceFor(serverID)
	}
	srcs := c.Sources()
	switch len(srcs) {
	case 0:
		return nil, errors.New("no binary log is stored in this repository (run rewind mysql binlog receive)")
	case 1:
		return srcs[0], nil
	}
	return nil, fmt.Errorf("the repository holds the binary logs of %d sources: name one", len(srcs))
}

// StopFor returns the end of the last transaction committed at or before
// the target. Binary log event times are whole seconds, so "at or before
// T" means an event time at or before T truncated to the second. A time
// after the newest stored piece's store time is ErrNotCovered: what the
// server wrote since is not known to be stored; so is a GTID that is not
// stored, and a time before the first stored transaction.
func (c *Catalog) StopFor(t Target) (StopPoint, error) {
	s, err := c.source(t.Source, t.ServerID)
	if err != nil {
		return StopPoint{}, err
	}
	return s.StopFor(t)
}

// StopFor is Catalog.StopFor on one source.
func (s *Source) StopFor(t Target) (StopPoint, error) {
	var best StopPoint
	found := false
	set := func(file string, x Txn) {
		best = StopPoint{Source: s.Name, File: file, Pos: x.End, GTID: x.GTID, Time: time.Unix(x.Time, 0).UTC()}
		found = true
	}
	switch {
	case t.GTID != "":
		want, err := ParseGTID(t.GTID)
		if err != nil {
			return StopPoint{}, err
		}
		s.Txns(func(file string, x Txn) bool {
			if g, _ := ParseGTID(x.GTID); g == want {
				set(file, x)
				return false
			}
			return true
		})
		if !found {
			first, last := s.GTIDRange()
			return StopPoint{}, fmt.Errorf("%w: GTID %s is not stored in source %q (stored: %s to %s)", ErrNotCovered, t.GTID, s.Name, first, last)
		}
	case t.Latest:
		s.Txns(func(file string, x Txn) bool { set(file, x); return true })
		if !found {
			return StopPoint{}, fmt.Errorf("%w: source %q holds no committed transaction", ErrNotCovered, s.Name)
		}
	default:
		if t.Time.IsZero() {
			return StopPoint{}, errors.New("a target needs a time, a GTID or latest")
		}
		if stored := s.Stored(); t.Time.After(stored) {
			return StopPoint{}, fmt.Errorf("%w: %s is after the newest stored binary log of source %q (received up to %s); is rewind mysql binlog receive running?",
				ErrNotCovered, t.Time.UTC().Format(time.RFC3339), s.Name, stored.UTC().Format(time.RFC3339))
		}
		limit := t.Time.Unix()
		s.Txns(func(file string, x Txn) bool {
			if x.Time > limit {
				// The first transaction after T ends the replay, as
				// mariadb-binlog --stop-datetime does.
				return false
			}
			set(file, x)
			return true
		})
		if !found {
			return StopPoint{}, fmt.Errorf("%w: no transaction of source %q committed at or before %s (the first stored is at %s)",
				ErrNotCovered, s.Name, t.Time.UTC().Format(time.RFC3339), s.FirstTime().Format(time.RFC3339))
		}
	}
	return best, nil
}
