package wal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewind-backup/rewind/internal/repository"
)

// PrespoolTarget is where a restore's recovery stops, as far as the
// pre-spool can tell from the WAL index: the segments up to it are the
// ones recovery asks for.
type PrespoolTarget struct {
	// Time, when set (--at): recovery stops at the first commit after it,
	// so the segments up to the first one whose WAL was written after it
	// (its Modified time), plus PrespoolReadAhead.
	Time time.Time
	// LSN, when set (--lsn): the segments up to the one holding it, plus
	// PrespoolReadAhead. With neither (--latest, --name, --xid) every stored segment
	// is a candidate, up to Max.
	LSN LSN
	// Timeline is recovery_target_timeline: "latest" ("" too), "current"
	// or a number.
	Timeline string
}

// PrespoolReadAhead is how many segments past the target's the plan
// takes: PostgreSQL's recovery prefetch decodes up to
// wal_decode_buffer_size (512 kB) of WAL ahead of replay, which is less
// than a segment when segments are full, but crosses several segments
// that hold little WAL before a switch (archive_timeout,
// pg_switch_wal); those compress to little in the repository.
const PrespoolReadAhead = 4

// PrespoolPlan is what a restore spools before the server starts.
type PrespoolPlan struct {
	// Segments are the whole segments recovery will ask for, in the
	// order it asks for them.
	Segments []*StoredEntry
	// History are all the cluster's stored history files.
	History []*StoredEntry
	// TargetTimeline is the timeline recovery follows.
	TargetTimeline uint32
	// Truncated is true when Max cut the list short (wal-fetch and its
	// prefetch serve the rest).
	Truncated bool
}

// PlanPrespool returns the segments recovery of a base backup that
// started at start on timeline tli replays toward t, read from the
// catalog as PostgreSQL would ask for them: along the timeline
// recovery_target_timeline names (for latest, the newest of the
// consecutive timelines after tli whose history files are stored, as
// PostgreSQL's findNewestTimeLine probes them), each segment from the
// newest timeline of that history that had begun by it and is stored
// (XLogFileReadAnyTLI). It stops at the first segment that is not stored
// as a whole (a gap, the end of the archive, or a partial segment, which
// wal-fetch pads and may find grown) and after max segments. switches
// are the cluster's timeline switches (Switches).
func PlanPrespool(cl *Cluster, switches []Switch, tli uint32, start LSN, t PrespoolTarget, max int) PrespoolPlan {
	var p PrespoolPlan
	for _, e := range cl.Entries() {
		if e.Kind == KindHistory {
			p.History = append(p.History, e)
		}
	}
	segSize := cl.SegSize()
	if max <= 0 || segSize == 0 {
		return p
	}
	parent := map[uint32]Switch{}
	for _, s := range switches {
		parent[s.Timeline] = s
	}
	target := tli
	switch t.Timeline {
	case "", "latest":
		for probe := tli + 1; ; probe++ {
			if cl.Find(fmt.Sprintf("%08X.history", probe)) == nil {
				break
			}
			target = probe
		}
	case "current":
	default:
		var n uint32
		if _, err := fmt.Sscanf(t.Timeline, "%d", &n); err != nil || n == 0 {
			return p
		}
		target = n
	}
	// The history of the target timeline, newest first: each timeline
	// with the first segment it is read from.
	type hop struct {
		tli   uint32
		begin uint64
	}
	var chain []hop
	for cur := target; ; {
		if cur == tli {
			chain = append(chain, hop{tli: tli})
			break
		}
		s, ok := parent[cur]
		if !ok || s.Parent >= cur {
			return p // not a descendant of the backup's timeline: recovery refuses it
		}
		chain = append(chain, hop{tli: cur, begin: uint64(s.At) / uint64(segSize)})
		cur = s.Parent
	}
	p.TargetTimeline = target
	var stopSeg uint64
	haveStop := false
	if t.LSN != 0 {
		stopSeg, haveStop = uint64(t.LSN)/uint64(segSize)+PrespoolReadAhead, true
	}
	for seg := uint64(start) / uint64(segSize); ; seg++ {
		if haveStop && seg > stopSeg {
			break
		}
		var e *StoredEntry
		for _, h := range chain {
			if seg < h.begin {
				continue
			}
			// What wal-fetch answers for the name: a partial too.
			if e, _ = cl.ForFetch(SegmentName(h.tli, seg, segSize)); e != nil {
				break
			}
		}
		if e == nil || e.Kind != KindSegment {
			break
		}
		if len(p.Segments) == max {
			p.Truncated = true
			break
		}
		p.Segments = append(p.Segments, e)
		if !t.Time.IsZero() && e.Modified.After(t.Time) && !haveStop {
			stopSeg, haveStop = seg+PrespoolReadAhead, true
		}
	}
	return p
}

// Prespool reads the plan's files from the repository, checked against
// their content hashes, into the spool folder dir (as wal-fetch's
// prefetch does, with workers in parallel), and writes the history
// marker for cluster. A file that cannot be read is left to wal-fetch.
// It returns how many segments and history files it spooled.
func Prespool(ctx context.Context, r *repository.Repository, cluster string, p PrespoolPlan, dir string, workers int) (segments, history int, err error) {
	sp, err := OpenSpool(dir)
	if err != nil {
		return 0, 0, err
	}
	var nseg, nhist atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(workers, 1))
	all := append(slices.Clone(p.History), p.Segments...)
	for _, e := range all {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			data, err := Read(ctx, r, &e.Entry)
			if err == nil {
				err = sp.Put(e.Name, data)
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			if e.Kind == KindHistory {
				nhist.Add(1)
			} else {
				nseg.Add(1)
			}
		}()
	}
	wg.Wait()
	// The marker lists every stored history file, spooled or not: one it
	// does not list is answered "not stored" without the repository.
	names := make([]string, 0, len(p.History))
	for _, e := range p.History {
		names = append(names, e.Name)
	}
	if err := WriteHistoryMarker(dir, cluster, names); err != nil && firstErr == nil {
		firstErr = err
	}
	return int(nseg.Load()), int(nhist.Load()), firstErr
}

// HistoryMarkerName is the file in a spool folder that a restore's
// pre-spool writes: which history files the repository held for the
// cluster when the restore planned recovery.
const HistoryMarkerName = "history-catalog"

const historyMarkerHead = "rewind pre-spool history catalog 1"

// ErrBadMarker: a history marker does not parse.
var ErrBadMarker = errors.New("not a rewind pre-spool history catalog")

// WriteHistoryMarker writes the history marker into the spool dir:
// cluster's stored history files are names.
func WriteHistoryMarker(dir, cluster string, names []string) error {
	var b strings.Builder
	b.WriteString(historyMarkerHead + "\n")
	fmt.Fprintf(&b, "cluster %s\n", cluster)
	for _, n := range names {
		fmt.Fprintf(&b, "history %s\n", n)
	}
	return WriteFile(filepath.Join(dir, HistoryMarkerName), []byte(b.String()))
}

// ParseHistoryMarker decodes a history marker: its cluster and the
// history file names it lists.
func ParseHistoryMarker(b []byte) (cluster string, names []string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), 64<<10)
	if !sc.Scan() || sc.Text() != historyMarkerHead {
		return "", nil, fmt.Errorf("%w: bad first line", ErrBadMarker)
	}
	if !sc.Scan() {
		return "", nil, fmt.Errorf("%w: no cluster line", ErrBadMarker)
	}
	cluster, ok := strings.CutPrefix(sc.Text(), "cluster ")
	if !ok || cluster == "" {
		return "", nil, fmt.Errorf("%w: no cluster line", ErrBadMarker)
	}
	for sc.Scan() {
		name, ok := strings.CutPrefix(sc.Text(), "history ")
		if !ok {
			return "", nil, fmt.Errorf("%w: line %q", ErrBadMarker, sc.Text())
		}
		if n, err := ParseName(name); err != nil || n.Kind != KindHistory {
			return "", nil, fmt.Errorf("%w: %q is not a history file name", ErrBadMarker, name)
		}
		names = append(names, name)
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadMarker, err)
	}
	return cluster, names, nil
}

// HistoryKnownAbsent reports whether the spool's history marker, written
// for cluster less than SpoolMaxAge ago, says that history file name was
// not stored: then wal-fetch answers "not stored" without opening the
// repository. Any doubt (no marker, another cluster, stale, damaged)
// reports false.
func (s *Spool) HistoryKnownAbsent(cluster, name string, now time.Time) bool {
	p := filepath.Join(s.Dir, HistoryMarkerName)
	fi, err := os.Stat(p)
	if err != nil || now.Sub(fi.ModTime()) > SpoolMaxAge {
		return false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	c, names, err := ParseHistoryMarker(b)
	if err != nil || c != cluster {
		return false
	}
	return !slices.Contains(names, name)
}

// Copy writes spooled file name to dest, when its bytes match the hash in
// its file name, and keeps it in the spool: for history files, which
// PostgreSQL asks for more than once. A damaged one is removed.
func (s *Spool) Copy(name, dest string) (bool, error) {
	for _, p := range s.entries(name) {
		data, ok := s.check(p, name)
		if !ok {
			continue
		}
		return true, WriteFile(dest, data)
	}
	return false, nil
}
