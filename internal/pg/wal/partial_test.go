package wal

import (
	"context"
	"errors"
	"github.com/rewind-backup/rewind/internal/repository/repotest"
	"testing"
	"time"
)

// TestPartialGrows: growing partials of one segment supersede each other,
// a shorter prefix stores nothing, a partial that is not an extension is a
// conflict, compaction keeps only the longest, and the whole segment then
// replaces it; ForFetch serves the partial padded until the segment is
// stored.
func TestPartialGrows(t *testing.T) {
	ctx := context.Background()
	open := repotest.Reopener(t)
	r := open()
	const size = 1 << 20
	seg := segment(1, 5, size, 1)
	name := SegmentName(1, 5, size)
	push := func(n int, data []byte) (*PushResult, error) {
		return PushData(ctx, r, name+".partial", data[:n], time.Now(), PushOptions{NoCompact: true})
	}
	for _, n := range []int{100_000, 300_000, 700_000} {
		if res, err := push(n, seg); err != nil || !res.Stored {
			t.Fatalf("partial of %d bytes: %v %+v", n, err, res)
		}
	}
	if res, err := push(200_000, seg); err != nil || res.Stored {
		t.Fatalf("a shorter prefix: %v %+v", err, res)
	}
	other := segment(1, 5, size, 2)
	if _, err := push(800_000, other); !errors.Is(err, ErrConflict) {
		t.Fatalf("a partial that does not extend the stored one: %v", err)
	}
	if _, err := push(600_000, other); !errors.Is(err, ErrConflict) {
		t.Fatalf("a shorter partial that is not a prefix: %v", err)
	}
	cat, err := Load(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	cl := cat.Cluster(DefaultCluster)
	if len(cat.Conflicts) != 0 || cl.Find(name+".partial").Size != 700_000 {
		t.Fatalf("conflicts %v, partial %+v", cat.Conflicts, cl.Find(name+".partial"))
	}
	if tli, end, ok := cl.StreamEnd(); !ok || tli != 1 || end != LSN(5*size+700_000) {
		t.Errorf("StreamEnd: %d %s %v", tli, end, ok)
	}
	e, pad := cl.ForFetch(name)
	if e == nil || e.Kind != KindPartial || pad != size {
		t.Errorf("ForFetch(%s) = %+v, %d", name, e, pad)
	}
	res, err := Compact(ctx, r, DefaultCluster, RewriteOptions{})
	if err != nil || res.Entries != 1 || res.Superseded != 2 {
		t.Fatalf("compact: %v %+v", err, res)
	}
	if _, err := PushData(ctx, r, name, seg, time.Now(), PushOptions{NoCompact: true}); err != nil {
		t.Fatal(err)
	}
	if cat, err = Load(ctx, r); err != nil {
		t.Fatal(err)
	}
	cl = cat.Cluster(DefaultCluster)
	if e, pad := cl.ForFetch(name); e == nil || e.Kind != KindSegment || pad != 0 {
		t.Errorf("ForFetch after the segment: %+v %d", e, pad)
	}
	res, err = Compact(ctx, r, DefaultCluster, RewriteOptions{})
	if err != nil || res.Entries != 1 || res.Superseded != 1 {
		t.Fatalf("compact after the segment: %v %+v", err, res)
	}
}
