package index_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
)

// randomID returns an ID of random bytes.
func randomID(rng *rand.Rand) id.ID {
	var i id.ID
	for k := range i {
		i[k] = byte(rng.Uint32())
	}
	return i
}

// blobsFor makes n blobs of alternating type and compression, laid out one
// after the other as in a pack.
func blobsFor(rng *rand.Rand, n int) []pack.Blob {
	blobs := make([]pack.Blob, n)
	var off uint32
	for k := range blobs {
		l := 40 + uint32(rng.IntN(1<<20))
		blobs[k] = pack.Blob{
			Type: pack.BlobType(1 + k%2), ID: randomID(rng), Offset: off, Length: l,
			RawLength: uint32(rng.IntN(pack.MaxBlobSize + 1)), Compressed: k%3 == 0,
		}
		off += l
	}
	return blobs
}

// checkAll fails unless every blob of every pack is found where it was
// added.
func checkAll(t *testing.T, x *index.Index, packs map[id.ID][]pack.Blob) {
	t.Helper()
	for p, blobs := range packs {
		for _, b := range blobs {
			loc, ok := x.Lookup(b.ID)
			if !ok || !x.Has(b.ID) {
				t.Fatalf("blob %s of pack %s not found", b.ID.Short(), p.Short())
			}
			if want := (index.Location{Pack: p, Blob: b}); loc != want {
				t.Fatalf("blob %s: got %+v, want %+v", b.ID.Short(), loc, want)
			}
		}
	}
}

func TestAddPackAndMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := index.New()
	if x.Has(randomID(rng)) || x.Len() != 0 {
		t.Fatal("a new index is not empty")
	}
	packs := map[id.ID][]pack.Blob{}
	for round := range 4 {
		for range 5 {
			p, blobs := randomID(rng), blobsFor(rng, 1+rng.IntN(50))
			x.AddPack(p, blobs)
			packs[p] = blobs
		}
		// Pending blobs are found before the merge, and sorted ones after.
		checkAll(t, x, packs)
		x.Merge()
		checkAll(t, x, packs)
		x.Merge() // nothing pending: a no-op
		checkAll(t, x, packs)
		n := 0
		for _, b := range packs {
			n += len(b)
		}
		if x.Len() != n {
			t.Fatalf("round %d: Len %d, want %d", round, x.Len(), n)
		}
		if len(x.Packs()) != len(packs) {
			t.Fatalf("round %d: %d packs, want %d", round, len(x.Packs()), len(packs))
		}
	}
	for range 1000 {
		if i := randomID(rng); x.Has(i) {
			t.Fatalf("absent blob %s found", i.Short())
		}
	}
}

func TestAddFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	f := &index.File{}
	packs := map[id.ID][]pack.Blob{}
	for range 10 {
		p, blobs := randomID(rng), blobsFor(rng, 20)
		f.Packs = append(f.Packs, index.PackEntry{ID: p, Blobs: blobs})
		packs[p] = blobs
	}
	x := index.New()
	x.AddFile(f)
	checkAll(t, x, packs)
	x.Merge()
	checkAll(t, x, packs)
}

// TestDuplicateKeepsFirst stores one blob in several packs: the first
// location seen must win, whether the later ones arrive before or after a
// Merge, and the blob must count once.
func TestDuplicateKeepsFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	b := blobsFor(rng, 1)[0]
	other := blobsFor(rng, 1)[0]
	p1, p2, p3, p4 := randomID(rng), randomID(rng), randomID(rng), randomID(rng)
	at := func(off uint32) pack.Blob { c := b; c.Offset = off; return c }

	x := index.New()
	x.AddPack(p1, []pack.Blob{at(0)})
	x.AddPack(p2, []pack.Blob{at(100), other}) // duplicate while pending
	check := func(when string) {
		t.Helper()
		loc, ok := x.Lookup(b.ID)
		if !ok || loc.Pack != p1 || loc.Offset != 0 {
			t.Fatalf("%s: blob found at %s+%d, want %s+0", when, loc.Pack.Short(), loc.Offset, p1.Short())
		}
		if x.Len() != 2 {
			t.Fatalf("%s: Len %d, want 2", when, x.Len())
		}
		n := 0
		x.Each(func(l index.Location) {
			if l.ID == b.ID {
				n++
			}
		})
		if n != 1 {
			t.Fatalf("%s: Each visits the blob %d times", when, n)
		}
	}
	check("pending duplicate")
	x.Merge()
	check("after merge")
	x.AddPack(p3, []pack.Blob{at(200)}) // duplicate of a merged blob
	check("duplicate of a merged blob")
	x.Merge()
	check("after second merge")
	x.AddPack(p4, []pack.Blob{at(300), at(400)}) // twice in one pack
	check("twice in one pack")
	x.Merge()
	check("after third merge")
}

func TestManyBlobs(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	rng := rand.New(rand.NewPCG(4, 4))
	x := index.New()
	want := make(map[id.ID]index.Location, n)
	for len(want) < n {
		p := randomID(rng)
		blobs := blobsFor(rng, 100)
		x.AddPack(p, blobs)
		for _, b := range blobs {
			want[b.ID] = index.Location{Pack: p, Blob: b}
		}
		if len(want)%20_000 == 0 {
			x.Merge() // several merges, as several index files give
		}
	}
	x.Merge()
	if x.Len() != len(want) {
		t.Fatalf("Len %d, want %d", x.Len(), len(want))
	}
	for i, l := range want {
		got, ok := x.Lookup(i)
		if !ok || got != l {
			t.Fatalf("blob %s: got %+v, %v; want %+v", i.Short(), got, ok, l)
		}
	}
	absent := 0
	for range n {
		i := randomID(rng)
		if _, ok := want[i]; ok {
			continue
		}
		absent++
		if x.Has(i) {
			t.Fatalf("absent blob %s found", i.Short())
		}
		// Neighbours of a stored ID share its bucket.
		for s := range want {
			near := s
			near[id.Size-1] ^= 1
			if _, ok := want[near]; !ok && x.Has(near) {
				t.Fatalf("neighbour %s of a stored blob found", near.Short())
			}
			break
		}
	}
	// Edge IDs exercise the first and last bucket.
	var lo, hi id.ID
	for k := range hi {
		hi[k] = 0xff
	}
	for _, e := range []id.ID{lo, hi} {
		_, stored := want[e]
		if x.Has(e) != stored {
			t.Fatalf("edge ID %s: Has %v", e.Short(), x.Has(e))
		}
	}
	x.AddPack(randomID(rng), []pack.Blob{{Type: pack.DataBlob, ID: lo, Length: 40}, {Type: pack.TreeBlob, ID: hi, Length: 41}})
	x.Merge()
	if !x.Has(lo) || !x.Has(hi) {
		t.Fatal("edge IDs not found once added")
	}
	seen := make(map[id.ID]bool, x.Len())
	x.Each(func(l index.Location) {
		if seen[l.ID] {
			t.Fatalf("Each visits %s twice", l.ID.Short())
		}
		seen[l.ID] = true
	})
	if len(seen) != len(want)+2 {
		t.Fatalf("Each visits %d blobs, want %d", len(seen), len(want)+2)
	}
}

func TestEach(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	x := index.New()
	x.Each(func(index.Location) { t.Fatal("Each on an empty index calls fn") })
	want := map[id.ID]index.Location{}
	add := func() {
		p, blobs := randomID(rng), blobsFor(rng, 30)
		x.AddPack(p, blobs)
		for _, b := range blobs {
			want[b.ID] = index.Location{Pack: p, Blob: b}
		}
	}
	add()
	x.Merge()
	add() // some sorted, some pending
	got := map[id.ID]index.Location{}
	x.Each(func(l index.Location) { got[l.ID] = l })
	if len(got) != len(want) {
		t.Fatalf("Each visits %d blobs, want %d", len(got), len(want))
	}
	for i, l := range want {
		if got[i] != l {
			t.Fatalf("Each gives %+v for %s, want %+v", got[i], i.Short(), l)
		}
	}
}

// TestConcurrent runs Has and Lookup while packs are added and merged; run
// it with -race.
func TestConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	x := index.New()
	const writers, packsEach = 4, 50
	all := make([][]pack.Blob, writers*packsEach)
	pids := make([]id.ID, len(all))
	for k := range all {
		all[k], pids[k] = blobsFor(rng, 20), randomID(rng)
	}
	// Blobs added before the readers start must stay visible throughout.
	x.AddPack(pids[0], all[0])
	x.Merge()

	stop := make(chan struct{})
	var readers, adders sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(r), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				b := all[0][rr.IntN(len(all[0]))]
				if loc, ok := x.Lookup(b.ID); !ok || loc.Pack != pids[0] || !x.Has(b.ID) {
					t.Errorf("blob %s lost during concurrent updates", b.ID.Short())
					return
				}
				k := rr.IntN(len(all))
				x.Has(all[k][0].ID)
				_ = x.Len()
			}
		})
	}
	for w := range writers {
		adders.Go(func() {
			for k := w * packsEach; k < (w+1)*packsEach; k++ {
				if k == 0 {
					continue
				}
				x.AddPack(pids[k], all[k])
				if k%7 == 0 {
					x.Merge()
				}
			}
		})
	}
	adders.Wait()
	x.Merge()
	close(stop)
	readers.Wait()
	want := map[id.ID][]pack.Blob{}
	for k := range all {
		want[pids[k]] = all[k]
	}
	checkAll(t, x, want)
}

// BenchmarkLookup looks up blobs in random order in an index of 2^20
// blobs (a repository of about 1 TB at 1 MiB average chunks); the table
// does not fit a CPU cache, so most of the cost is memory latency.
func BenchmarkLookup(b *testing.B) {
	const n = 1 << 20
	rng := rand.New(rand.NewPCG(8, 8))
	x := index.New()
	ids := make([]id.ID, 0, n)
	for len(ids) < n {
		blobs := blobsFor(rng, 1000)
		x.AddPack(randomID(rng), blobs)
		for _, bl := range blobs {
			ids = append(ids, bl.ID)
		}
	}
	x.Merge()
	b.Run("present", func(b *testing.B) {
		k := 0
		for b.Loop() {
			if _, ok := x.Lookup(ids[k&(n-1)]); !ok {
				b.Fatal("blob not found")
			}
			k += 7919
		}
	})
	// An absent ID next to a stored one lands in the same bucket and takes
	// the whole binary search.
	b.Run("absent", func(b *testing.B) {
		k := 0
		for b.Loop() {
			q := ids[k&(n-1)]
			q[id.Size-1] ^= 0x5a
			x.Has(q)
			k += 7919
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			k := rand.IntN(n)
			for pb.Next() {
				x.Lookup(ids[k&(n-1)])
				k += 7919
			}
		})
	})
}
