package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/rewind-backup/rewind/internal/repository/repotest"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/repository"
)

const testSys = 7301234567890123456

// segment makes a WAL segment of segSize bytes for segment segno of
// timeline tli: a valid long page header, then bytes from seed.
func segment(tli uint32, segno uint64, segSize uint32, seed uint64) []byte {
	b := make([]byte, segSize)
	rng := rand.New(rand.NewPCG(seed, segno))
	for i := 64; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xD110)
	le.PutUint16(b[2:], xlpLongHeader)
	le.PutUint32(b[4:], tli)
	le.PutUint64(b[8:], segno*uint64(segSize))
	le.PutUint64(b[24:], testSys)
	le.PutUint32(b[32:], segSize)
	le.PutUint32(b[36:], 8192)
	return b
}

func pushBytes(t testing.TB, r *repository.Repository, dir, name string, data []byte, opt PushOptions) *PushResult {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Push(context.Background(), r, p, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.CompactErr != nil {
		t.Fatal(res.CompactErr)
	}
	return res
}

func names(cl *Cluster) []string {
	var out []string
	for _, e := range cl.Entries() {
		out = append(out, e.Name)
	}
	return out
}

func walFiles(t testing.TB, r *repository.Repository) int {
	t.Helper()
	l, err := r.List(context.Background(), backend.WALFile)
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

// TestCompactPush: pushes compact the index every CompactAfter files, the
// catalog stays the same, and a push still refuses other content under a
// compacted name.
func TestCompactPush(t *testing.T) {
	open := repotest.Reopener(t)
	dir := t.TempDir()
	const size = 1 << 20
	var want []string
	for i := range 40 {
		segno := uint64(i + 1)
		n := SegmentName(1, segno, size)
		want = append(want, n)
		r := open()
		pushBytes(t, r, dir, n, segment(1, segno, size, 1), PushOptions{PGData: dir})
		if got := walFiles(t, r); got > CompactAfter {
			t.Fatalf("after %d pushes %d WAL index files, want at most %d", i+1, got, CompactAfter)
		}
	}
	r := open()
	cat, err := Load(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(cat.Cluster("main")); !slices.Equal(got, want) {
		t.Fatalf("catalog %v, want %v", got, want)
	}
	// Same content again: nothing stored; other content: refused.
	res := pushBytes(t, r, dir, want[0], segment(1, 1, size, 1), PushOptions{})
	if res.Stored {
		t.Fatal("the same segment stored twice")
	}
	p := filepath.Join(dir, want[1])
	if err := os.WriteFile(p, segment(1, 2, size, 99), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(context.Background(), r, p, PushOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("other content under a compacted name: %v", err)
	}
}

// TestCompactCrash: a compaction stopped after it wrote the merged file
// (at each removal) leaves a catalog equal to the one before, and the next
// compaction finishes the job.
func TestCompactCrash(t *testing.T) {
	open := repotest.Reopener(t)
	dir := t.TempDir()
	const size = 1 << 20
	r := open()
	for i := range 6 {
		pushBytes(t, r, dir, SegmentName(1, uint64(i+1), size), segment(1, uint64(i+1), size, 2), PushOptions{NoCompact: true})
	}
	before, err := Load(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("crash")
	for crashAt := 0; crashAt < 4; crashAt++ {
		n := 0
		func() {
			defer func() {
				if v := recover(); v != nil && v != stop {
					panic(v)
				}
			}()
			_, err := Compact(context.Background(), r, "main", RewriteOptions{Hook: func(p string) {
				if n == crashAt {
					panic(stop)
				}
				n++
			}})
			if err != nil {
				t.Fatal(err)
			}
		}()
		after, err := Load(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := names(after.Cluster("main")), names(before.Cluster("main")); !slices.Equal(got, want) || len(after.Conflicts) != 0 {
			t.Fatalf("after a crash at step %d: %v (conflicts %v), want %v", crashAt, got, after.Conflicts, want)
		}
	}
	if _, err := Compact(context.Background(), r, "main", RewriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := walFiles(t, r); n != 1 {
		t.Fatalf("%d WAL index files after a full compaction", n)
	}
}

// TestTrim: the horizon hides expired entries from every file, history
// files stay, a racing compaction cannot bring expired entries back, and
// the horizon never moves back.
func TestTrim(t *testing.T) {
	open := repotest.Reopener(t)
	dir := t.TempDir()
	const size = 1 << 20
	r := open()
	for i := range 6 {
		pushBytes(t, r, dir, SegmentName(1, uint64(i+1), size), segment(1, uint64(i+1), size, 3), PushOptions{NoCompact: true})
	}
	pushBytes(t, r, dir, "00000002.history", []byte("1\t0/1000000\tno recovery target specified\n"), PushOptions{})
	pushBytes(t, r, dir, "000000010000000000000002.00000028.backup", []byte("START WAL LOCATION: 0/2000028\n"), PushOptions{})
	// What a compaction that read the files before the trim would write.
	all, _, err := loadAll(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	keep := LSN(4 * size)
	res, err := Trim(context.Background(), r, "main", keep, RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var expired []string
	for _, e := range res.Expired {
		expired = append(expired, e.Name)
	}
	wantExpired := []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000002.00000028.backup", "000000010000000000000003"}
	if !slices.Equal(expired, wantExpired) {
		t.Fatalf("expired %v, want %v", expired, wantExpired)
	}
	check := func(what string) {
		t.Helper()
		cat, err := Load(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"000000010000000000000004", "000000010000000000000005", "000000010000000000000006", "00000002.history"}
		if got := names(cat.Cluster("main")); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			t.Fatalf("%s: catalog %v, want %v", what, got, want)
		}
	}
	check("after the trim")
	// A stale compaction's file, listing the expired entries again.
	var entries []Entry
	for _, l := range all {
		entries = append(entries, l.f.Entries...)
	}
	if _, err := r.SaveJSON(context.Background(), backend.WALFile, &File{Version: 1, Cluster: "main", SystemID: fmt.Sprint(uint64(testSys)), Time: time.Now().UTC(), Entries: entries, Merged: len(all)}); err != nil {
		t.Fatal(err)
	}
	check("after a stale compaction")
	if _, err := Compact(context.Background(), r, "main", RewriteOptions{}); err != nil {
		t.Fatal(err)
	}
	check("after compacting")
	if res, err := Trim(context.Background(), r, "main", LSN(size), RewriteOptions{}); err != nil || res.KeepFrom != keep {
		t.Fatalf("a trim to an older horizon: %+v %v", res, err)
	}
	check("after a trim backwards")
}

// TestPushCost measures the time of a push (open, index load, push) as the
// archive grows, without and with compaction. It only runs with
// REWIND_WAL_BENCH=N (segments); REWIND_WAL_BENCH_SEGMENT names a real
// segment to copy (its header's page address adjusted), else 16 MiB
// synthetic segments (256 KiB of records, then zeros) are used. It asserts nothing about time.
func TestPushCost(t *testing.T) {
	n := 0
	fmt.Sscan(os.Getenv("REWIND_WAL_BENCH"), &n)
	if n == 0 {
		t.Skip("set REWIND_WAL_BENCH=N to measure")
	}
	var real []byte
	if p := os.Getenv("REWIND_WAL_BENCH_SEGMENT"); p != "" {
		var err error
		if real, err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, compact := range []bool{false, true} {
		open := repotest.Reopener(t)
		dir := t.TempDir()
		var times []time.Duration
		for i := range n {
			segno := uint64(i + 1)
			var data []byte
			if real != nil {
				h, err := ParseLongHeader(real)
				if err != nil {
					t.Fatal(err)
				}
				data = slices.Clone(real)
				binary.LittleEndian.PutUint64(data[8:], segno*uint64(h.SegSize))
				binary.LittleEndian.PutUint64(data[24:], testSys)
				binary.LittleEndian.PutUint64(data[100:], segno) // a distinct content hash
			} else {
				// Like a switched segment: records, then zeros.
				data = make([]byte, 16<<20)
				copy(data, segment(1, segno, 1<<20, 4)[:256<<10])
				binary.LittleEndian.PutUint32(data[32:], 16<<20)
				binary.LittleEndian.PutUint64(data[8:], segno*(16<<20))
			}
			name := SegmentName(1, segno, uint32(len(data)))
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := open()
			if _, err := Push(context.Background(), r, filepath.Join(dir, name), PushOptions{NoCompact: !compact}); err != nil {
				t.Fatal(err)
			}
			times = append(times, time.Since(start))
			r.Close()
			os.Remove(filepath.Join(dir, name))
		}
		avg := func(from, to int) time.Duration {
			var s time.Duration
			for _, d := range times[from:to] {
				s += d
			}
			return s / time.Duration(to-from)
		}
		t.Logf("compaction %v: push 1: %v, pushes 2-11: %v avg, last 10 (to %d): %v avg, WAL index files %d",
			compact, times[0], avg(1, min(11, n)), n, avg(max(0, n-10), n), walFiles(t, open()))
	}
}
