package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
)

// prespoolCatalog builds a cluster from entries (name and Modified).
func prespoolCatalog(t *testing.T, segSize uint32, files map[string]time.Time) *Cluster {
	t.Helper()
	f := &File{Version: FormatVersion, Cluster: DefaultCluster, SystemID: "7", Time: time.Now()}
	i := 0
	for name, mod := range files {
		n, err := ParseName(name)
		if err != nil {
			t.Fatal(err)
		}
		i++
		e := Entry{Name: name, Kind: n.Kind, Timeline: n.Timeline, Size: int64(segSize), Modified: mod, Archived: mod}
		e.ID[0], e.ID[1] = byte(i), byte(i>>8)
		if n.Kind == KindSegment || n.Kind == KindPartial {
			e.SegNo, e.SegSize = n.SegNo(segSize), segSize
		}
		if n.Kind == KindHistory {
			e.Size = 40
		}
		f.Entries = append(f.Entries, e)
	}
	cat, err := NewCatalog([]id.ID{{1}}, []*File{f})
	if err != nil {
		t.Fatal(err)
	}
	return cat.Cluster(DefaultCluster)
}

func entryNames(es []*StoredEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

// TestPlanPrespool: the segments planned are those recovery asks for,
// in order: from the backup's start, along the target timeline's
// history (the newer timeline from its switch segment on), up to the
// first segment written after the target time plus one, or the LSN's
// segment plus one, stopping at a gap, a partial and the limit.
func TestPlanPrespool(t *testing.T) {
	const size = 16 << 20
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	seg := func(tli uint32, n uint64) string { return SegmentName(tli, n, size) }
	files := map[string]time.Time{}
	for n := uint64(2); n <= 9; n++ {
		files[seg(1, n)] = t0.Add(time.Duration(n) * time.Minute)
	}

	// Timeline 2 branched in segment 6 (at 0/6000100): its own copy of
	// segment 6, then 7 and 8, and a partial 9.
	for n := uint64(6); n <= 8; n++ {
		files[seg(2, n)] = t0.Add(time.Duration(n)*time.Minute + 30*time.Second)
	}
	files[seg(2, 9)+".partial"] = t0.Add(10 * time.Minute)
	files["00000002.history"] = t0.Add(6 * time.Minute)
	cl := prespoolCatalog(t, size, files)
	sw := []Switch{{Timeline: 2, Parent: 1, At: LSN(6*size + 0x100)}}
	start := LSN(3*size + 0x28)

	for _, c := range []struct {
		name  string
		t     PrespoolTarget
		max   int
		want  []string
		tli   uint32
		trunc bool
	}{
		{"latest", PrespoolTarget{}, 64, []string{seg(1, 3), seg(1, 4), seg(1, 5), seg(2, 6), seg(2, 7), seg(2, 8)}, 2, false},
		{"current timeline", PrespoolTarget{Timeline: "current"}, 64, []string{seg(1, 3), seg(1, 4), seg(1, 5), seg(1, 6), seg(1, 7), seg(1, 8), seg(1, 9)}, 1, false},
		{"timeline 2 by number", PrespoolTarget{Timeline: "2"}, 64, []string{seg(1, 3), seg(1, 4), seg(1, 5), seg(2, 6), seg(2, 7), seg(2, 8)}, 2, false},
		{"a time", PrespoolTarget{Time: t0.Add(2*time.Minute + time.Second), Timeline: "current"}, 64, []string{seg(1, 3), seg(1, 4), seg(1, 5), seg(1, 6), seg(1, 7)}, 1, false},
		{"a time on timeline 2", PrespoolTarget{Time: t0.Add(2*time.Minute + time.Second)}, 64, []string{seg(1, 3), seg(1, 4), seg(1, 5), seg(2, 6), seg(2, 7)}, 2, false},
		{"an LSN", PrespoolTarget{LSN: LSN(2*size + 5), Timeline: "current"}, 64, []string{seg(1, 3), seg(1, 4), seg(1, 5), seg(1, 6)}, 1, false},
		{"the limit", PrespoolTarget{}, 2, []string{seg(1, 3), seg(1, 4)}, 2, true},
		{"off", PrespoolTarget{}, 0, nil, 0, false},
		{"a timeline not descending from the backup's", PrespoolTarget{Timeline: "5"}, 64, nil, 0, false},
	} {
		p := PlanPrespool(cl, sw, 1, start, c.t, c.max)
		if got := entryNames(p.Segments); !slices.Equal(got, c.want) || p.TargetTimeline != c.tli || p.Truncated != c.trunc {
			t.Errorf("%s: planned %v on timeline %d (truncated %v), want %v on %d (%v)", c.name, got, p.TargetTimeline, p.Truncated, c.want, c.tli, c.trunc)
		}
		if got := entryNames(p.History); !slices.Equal(got, []string{"00000002.history"}) {
			t.Errorf("%s: history %v", c.name, got)
		}
	}

	// A gap stops the plan: recovery would fail there, and wal-fetch
	// says why.
	delete(files, seg(1, 5))
	cl = prespoolCatalog(t, size, files)
	if got := entryNames(PlanPrespool(cl, sw, 1, start, PrespoolTarget{}, 64).Segments); !slices.Equal(got, []string{seg(1, 3), seg(1, 4)}) {
		t.Errorf("with a gap: %v", got)
	}
}

// TestHistoryMarker: the marker answers "not stored" only for a history
// file it does not list, of its own cluster, while fresh; history files
// are served from the spool and kept there.
func TestHistoryMarker(t *testing.T) {
	dir := t.TempDir()
	sp, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if sp.HistoryKnownAbsent("main", "00000002.history", now) {
		t.Error("no marker: known absent")
	}
	if err := WriteHistoryMarker(dir, "main", []string{"00000002.history"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cluster, name string
		now           time.Time
		want          bool
	}{
		{"main", "00000003.history", now, true},
		{"main", "00000002.history", now, false},
		{"other", "00000003.history", now, false},
		{"main", "00000003.history", now.Add(SpoolMaxAge + time.Minute), false},
	} {
		if got := sp.HistoryKnownAbsent(c.cluster, c.name, c.now); got != c.want {
			t.Errorf("%s %s at +%s: %v, want %v", c.cluster, c.name, c.now.Sub(now), got, c.want)
		}
	}
	// A damaged marker is no answer.
	os.WriteFile(filepath.Join(dir, HistoryMarkerName), []byte("rewind pre-spool history catalog 1\ncluster main\nhistory nonsense\n"), 0o600)
	if sp.HistoryKnownAbsent("main", "00000003.history", now) {
		t.Error("damaged marker: known absent")
	}
	hist := []byte("1\t0/6000100\tno recovery target specified\n")
	if err := sp.Put("00000002.history", hist); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		dest := filepath.Join(t.TempDir(), "RECOVERYHISTORY")
		if ok, err := sp.Copy("00000002.history", dest); err != nil || !ok {
			t.Fatalf("copy %d: %v %v", i, ok, err)
		}
		if b, _ := os.ReadFile(dest); string(b) != string(hist) {
			t.Fatalf("copy %d: %q", i, b)
		}
	}
}

func FuzzParseHistoryMarker(f *testing.F) {
	f.Add([]byte("rewind pre-spool history catalog 1\ncluster main\nhistory 00000002.history\n"))
	f.Add([]byte("rewind pre-spool history catalog 1\ncluster x\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ns, err := ParseHistoryMarker(b)
		if err != nil {
			return
		}
		var again []byte
		again = fmt.Appendf(again, "%s\ncluster %s\n", historyMarkerHead, c)
		for _, n := range ns {
			again = fmt.Appendf(again, "history %s\n", n)
		}
		c2, ns2, err := ParseHistoryMarker(again)
		if err != nil || c2 != c || !slices.Equal(ns, ns2) {
			t.Fatalf("re-encoded %q: %q %v %v", again, c2, ns2, err)
		}
	})
}
