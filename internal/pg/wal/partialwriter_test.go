package wal

import (
	"context"
	"errors"
	"github.com/rewind-backup/rewind/internal/repository/repotest"
	"slices"
	"testing"
	"time"
)

// TestPartialWriterSameAsPushData: a segment stored by a PartialWriter in
// many growing steps, then complete, gets after every step exactly the
// entry (name, size, ID, blobs) PushData stores for the same bytes, with
// compactions in between; a partial another writer stores that does not
// extend the writer's is then refused.
func TestPartialWriterSameAsPushData(t *testing.T) {
	ctx := context.Background()
	r := repotest.Reopener(t)()
	const size = 16 << 20
	seg := segment(1, 9, size, 3)
	name := SegmentName(1, 9, size)
	w := NewPartialWriter(r, PushOptions{})
	check := func(base string, n int) {
		t.Helper()
		got, err := w.Push(ctx, base, seg[:n], time.Now())
		if err != nil || !got.Stored {
			t.Fatalf("%s, %d bytes: %v %+v", base, n, err, got)
		}
		want, err := PushData(ctx, r, base, seg[:n], time.Now(), PushOptions{Cluster: "ref", NoCompact: true})
		if err != nil || !want.Stored {
			t.Fatalf("PushData %s, %d bytes: %v", base, n, err)
		}
		g, e := got.Entry, want.Entry
		if g.Name != e.Name || g.Size != e.Size || g.ID != e.ID || !slices.Equal(g.Blobs, e.Blobs) || g.SegNo != e.SegNo || g.Kind != e.Kind {
			t.Fatalf("%s, %d bytes: entry %+v, PushData's %+v", base, n, g, e)
		}
	}
	n, steps := 0, 0
	for n+900_000 < size {
		n += 1 + (n*7+12345)%900_000
		check(name+".partial", n)
		steps++
	}
	// Nothing new: not stored again.
	if res, err := w.Push(ctx, name+".partial", seg[:n], time.Now()); err != nil || res.Stored {
		t.Fatalf("the same partial again: %v %+v", err, res)
	}
	check(name, size)
	cat, err := Load(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if cl := cat.Cluster(DefaultCluster); len(cat.Conflicts) != 0 || cl.Find(name) == nil || cl.Find(name+".partial").Size != int64(n) {
		t.Fatalf("conflicts %v, cluster %v", cat.Conflicts, names(cl))
	}
	if steps < CompactAfter {
		t.Fatalf("only %d steps: no compaction tested", steps)
	}

	// The next segment: another writer stores a partial of other bytes;
	// the writer's next store finds it and refuses.
	next := segment(1, 10, size, 4)
	other := segment(1, 10, size, 5)
	name = SegmentName(1, 10, size)
	if _, err := w.Push(ctx, name+".partial", next[:1_000_000], time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := PushData(ctx, r, name+".partial", other[:1_500_000], time.Now(), PushOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("PushData of other bytes: %v", err)
	}
	copy(other, next[:1_000_000])
	if _, err := PushData(ctx, r, name+".partial", other[:1_500_000], time.Now(), PushOptions{}); err != nil {
		t.Fatalf("PushData extending the writer's partial: %v", err)
	}
	if _, err := w.Push(ctx, name+".partial", next[:2_000_000], time.Now()); !errors.Is(err, ErrConflict) {
		t.Fatalf("the writer after another stored other bytes: %v", err)
	}
}
