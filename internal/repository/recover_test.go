package repository

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
)

// killedBackup stores blobs and then removes the index file that listed
// them, as if the backup had been killed after its packs were stored but
// before its index was.
func killedBackup(t *testing.T, r *Repository, be backend.Backend, blobs []testBlob) []id.ID {
	t.Helper()
	before := names(t, be, backend.IndexFile)
	ids := saveAll(t, r, blobs)
	for _, n := range names(t, be, backend.IndexFile) {
		if !slices.Contains(before, n) {
			if err := be.Remove(context.Background(), backend.Handle{Type: backend.IndexFile, Name: n}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ids
}

func TestIndexUnindexedPacks(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	a := saveAll(t, r, []testBlob{{pack.DataBlob, noise("a", 3<<20)}, {pack.TreeBlob, text("t", 1000)}})
	bData := noise("b", 2<<20)
	b := killedBackup(t, r, be, []testBlob{{pack.DataBlob, bData}})
	// A file with a pack's name but no valid header: skipped, not deleted.
	junk := id.ID{0xff, 1, 2, 3}
	jh := backend.Handle{Type: backend.PackFile, Name: junk.String()}
	if err := be.Save(ctx, jh, backend.NewByteReader(bytes.Repeat([]byte{7}, 100))); err != nil {
		t.Fatal(err)
	}

	r2 := reopen(t, be)
	if !r2.HasBlob(a[0]) || r2.HasBlob(b[0]) {
		t.Fatal("setup: want a indexed and b not")
	}
	n, skipped, err := r2.IndexUnindexedPacks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || len(skipped) != 1 || skipped[0].Pack != junk {
		t.Fatalf("indexed %d packs, skipped %v; want 1 and the junk pack", n, skipped)
	}
	if !r2.HasBlob(b[0]) {
		t.Fatal("recovered blob is not in the in-memory index")
	}
	if _, err := be.Stat(ctx, jh); err != nil {
		t.Fatalf("junk pack was touched: %v", err)
	}

	// The new index file is stored: a fresh open sees the blob, and has
	// nothing left to recover.
	r3 := reopen(t, be)
	got, err := r3.LoadBlob(ctx, pack.DataBlob, b[0], nil)
	if err != nil || !bytes.Equal(got, bData) {
		t.Fatalf("load recovered blob: %v", err)
	}
	n, _, err = r3.IndexUnindexedPacks(ctx)
	if err != nil || n != 0 {
		t.Fatalf("second recovery indexed %d packs (%v), want 0", n, err)
	}
}

func TestRebuildIndex(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	a := saveAll(t, r, []testBlob{{pack.DataBlob, noise("a", 3<<20)}, {pack.TreeBlob, text("t", 1000)}})
	b := killedBackup(t, r, be, []testBlob{{pack.DataBlob, noise("b", 2<<20)}})
	c := saveAll(t, r, []testBlob{{pack.DataBlob, text("c", 5000)}})
	oldIndex := names(t, be, backend.IndexFile)
	packs := names(t, be, backend.PackFile)

	r2 := reopen(t, be)
	res, err := r2.RebuildIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.PacksIndexed != len(packs) || res.IndexFilesRemoved != len(oldIndex) || len(res.Skipped) != 0 {
		t.Fatalf("rebuild = %+v; want %d packs, %d index files removed", res, len(packs), len(oldIndex))
	}
	now := names(t, be, backend.IndexFile)
	if len(now) != 1 || slices.Contains(oldIndex, now[0]) {
		t.Fatalf("index files after rebuild: %v (before %v)", now, oldIndex)
	}
	after := names(t, be, backend.PackFile)
	slices.Sort(after)
	slices.Sort(packs)
	if !slices.Equal(after, packs) {
		t.Fatal("rebuild changed the packs")
	}
	r3 := reopen(t, be)
	for _, i := range append(append(a, b...), c...) {
		if !r3.HasBlob(i) {
			t.Errorf("blob %s lost by rebuild", i.Short())
		}
	}
	for _, i := range []id.ID{a[0], b[0], c[0]} {
		if _, err := r3.LoadBlob(ctx, pack.DataBlob, i, nil); err != nil {
			t.Errorf("load %s after rebuild: %v", i.Short(), err)
		}
	}
}
