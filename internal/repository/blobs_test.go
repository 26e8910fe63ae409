package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
)

// blobCase is one blob of TestBlobRoundTrip and whether zstd should be
// kept for it.
type blobCase struct {
	name       string
	blob       testBlob
	compressed bool
}

func blobCases() []blobCase {
	// No empty blob here: an empty data blob and an empty tree blob have
	// the same ID, so the second would be deduplicated (see TestEmptyBlob).
	var cs []blobCase
	for _, typ := range []pack.BlobType{pack.DataBlob, pack.TreeBlob} {
		for _, size := range []int{1, 10, 63, 1000, 100_000, 4 << 20} {
			for _, kind := range []string{"text", "noise"} {
				seed := fmt.Sprintf("%s-%d-%s", typ, size, kind)
				data := noise(seed, size)
				if kind == "text" {
					data = text(seed, size)
				}
				cs = append(cs, blobCase{
					name:       seed,
					blob:       testBlob{typ, data},
					compressed: kind == "text" && size >= 1000,
				})
			}
		}
	}
	return cs
}

func TestBlobRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	cases := blobCases()
	blobs := make([]testBlob, len(cases))
	for k, c := range cases {
		blobs[k] = c.blob
	}
	ids := saveAll(t, r, blobs)
	check := func(r *Repository, when string) {
		t.Helper()
		for k, c := range cases {
			if ids[k] != r.Key().BlobID(c.blob.data) {
				t.Fatalf("%s: ID is not the keyed hash of the content", c.name)
			}
			loc, ok := r.Index().Lookup(ids[k])
			if !ok {
				t.Fatalf("%s, %s: not in the index", when, c.name)
			}
			if loc.Type != c.blob.typ || loc.RawLength != uint32(len(c.blob.data)) || loc.Compressed != c.compressed {
				t.Errorf("%s, %s: indexed as %+v", when, c.name, loc.Blob)
			}
			if !c.compressed && loc.Length != uint32(len(c.blob.data)+crypto.Overhead) {
				t.Errorf("%s, %s: stored %d bytes for %d", when, c.name, loc.Length, len(c.blob.data))
			}
			if c.compressed && loc.Length >= uint32(len(c.blob.data)) {
				t.Errorf("%s, %s: compressed to %d bytes from %d", when, c.name, loc.Length, len(c.blob.data))
			}
			got, err := r.LoadBlob(ctx, c.blob.typ, ids[k], nil)
			if err != nil {
				t.Fatalf("%s, %s: %v", when, c.name, err)
			}
			if !bytes.Equal(got, c.blob.data) {
				t.Fatalf("%s, %s: loaded other content", when, c.name)
			}
			// Into a buffer that holds other bytes.
			buf := bytes.Repeat([]byte{0xee}, 100)
			got, err = r.LoadBlob(ctx, c.blob.typ, ids[k], buf)
			if err != nil || !bytes.Equal(got, c.blob.data) {
				t.Fatalf("%s, %s: loading into a used buffer: %v", when, c.name, err)
			}
		}
	}
	check(r, "same session")
	check(reopen(t, be), "reopened")

	st := r.Stats()
	if st.DataBlobs.Load() != int64(len(cases)/2) || st.TreeBlobs.Load() != int64(len(cases)/2) {
		t.Errorf("stats count %d data and %d tree blobs", st.DataBlobs.Load(), st.TreeBlobs.Load())
	}
	var plain int64
	for _, c := range cases {
		if c.blob.typ == pack.DataBlob {
			plain += int64(len(c.blob.data))
		}
	}
	if st.DataAdded.Load() != plain {
		t.Errorf("stats count %d data bytes, want %d", st.DataAdded.Load(), plain)
	}
	var packBytes int64
	for _, n := range names(t, be, backend.PackFile) {
		fi, err := be.Stat(ctx, backend.Handle{Type: backend.PackFile, Name: n})
		if err != nil {
			t.Fatal(err)
		}
		packBytes += fi.Size
	}
	if st.PackBytes.Load() != packBytes || st.Packs.Load() != int64(len(names(t, be, backend.PackFile))) {
		t.Errorf("stats count %d packs of %d bytes; stored: %d bytes", st.Packs.Load(), st.PackBytes.Load(), packBytes)
	}
}

func TestEmptyBlob(t *testing.T) {
	r, be := newMemRepo(t)
	ids := saveAll(t, r, []testBlob{{pack.DataBlob, nil}})
	got, err := reopen(t, be).LoadBlob(context.Background(), pack.DataBlob, ids[0], []byte("junk"))
	if err != nil || len(got) != 0 {
		t.Fatalf("empty blob: %q, %v", got, err)
	}
}

func TestNoCompression(t *testing.T) {
	be := mem.New()
	r := testInit(t, be, InitOptions{Compression: "none"})
	data := text("plain", 100_000)
	ids := saveAll(t, r, []testBlob{{pack.DataBlob, data}})
	loc, _ := r.Index().Lookup(ids[0])
	if loc.Compressed || loc.Length != uint32(len(data)+crypto.Overhead) {
		t.Fatalf("compression \"none\" stored %+v", loc.Blob)
	}
	got, err := reopen(t, be).LoadBlob(context.Background(), pack.DataBlob, ids[0], nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load: %v", err)
	}
}

func TestBlobErrors(t *testing.T) {
	ctx := context.Background()
	r, _ := newMemRepo(t)
	var unknown id.ID
	unknown[0] = 1
	if _, err := r.LoadBlob(ctx, pack.DataBlob, unknown, nil); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("unknown blob: got %v, want ErrBlobNotFound", err)
	}
	r.StartWriting(ctx)
	if _, _, err := r.SaveBlob(ctx, pack.DataBlob, make([]byte, pack.MaxBlobSize+1)); err == nil {
		t.Fatal("a blob above MaxBlobSize was accepted")
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDedup stores the same content again, in the same session and in a
// later one: nothing is added, neither blobs nor bytes nor files.
func TestDedup(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	data := noise("dedup", 200_000)
	r.StartWriting(ctx)
	i1, added, err := r.SaveBlob(ctx, pack.DataBlob, data)
	if err != nil || !added {
		t.Fatalf("first save: added %v, %v", added, err)
	}
	stored := r.Stats().BlobsStored.Load()
	i2, added, err := r.SaveBlob(ctx, pack.DataBlob, data)
	if err != nil || added || i2 != i1 {
		t.Fatalf("second save in the session: added %v, %v", added, err)
	}
	if r.Stats().BlobsStored.Load() != stored || r.Stats().DataBlobs.Load() != 1 {
		t.Fatal("the duplicate added bytes")
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, added, _ := r.SaveBlob(ctx, pack.DataBlob, data); added {
		t.Fatal("save after Flush added a stored blob")
	}
	packs, indexes := names(t, be, backend.PackFile), names(t, be, backend.IndexFile)

	// A new process knows the blob from the index.
	r2 := reopen(t, be)
	r2.StartWriting(ctx)
	if _, added, err := r2.SaveBlob(ctx, pack.DataBlob, data); err != nil || added {
		t.Fatalf("save after reopening: added %v, %v", added, err)
	}
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.Stats().BlobsStored.Load() != 0 || r2.Stats().Packs.Load() != 0 {
		t.Fatal("a known blob was stored again")
	}
	if len(names(t, be, backend.PackFile)) != len(packs) || len(names(t, be, backend.IndexFile)) != len(indexes) {
		t.Fatal("a session that added nothing wrote files")
	}
}

// TestConcurrentSave saves overlapping sets of blobs from several
// goroutines: each blob is added exactly once. Run with -race.
func TestConcurrentSave(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{PackSize: 1 << 20})
	const n = 200
	blobs := make([][]byte, n)
	for k := range blobs {
		blobs[k] = noise(fmt.Sprint("c", k), 10_000+k)
	}
	r.StartWriting(ctx)
	var added [n]int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for k := range n {
				typ := pack.BlobType(1 + (k+w)%2)
				_, ok, err := r.SaveBlob(ctx, typ, blobs[(k*(w+1))%n])
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					added[(k*(w+1))%n]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for k, c := range added {
		if c != 1 {
			t.Fatalf("blob %d added %d times", k, c)
		}
	}
	r2 := reopen(t, be)
	if r2.Index().Len() != n {
		t.Fatalf("index has %d blobs, want %d", r2.Index().Len(), n)
	}
	for k := range blobs {
		loc, ok := r2.Index().Lookup(r2.Key().BlobID(blobs[k]))
		if !ok {
			t.Fatalf("blob %d not indexed", k)
		}
		got, err := r2.LoadBlob(ctx, loc.Type, loc.ID, nil)
		if err != nil || !bytes.Equal(got, blobs[k]) {
			t.Fatalf("blob %d: %v", k, err)
		}
	}
}

// TestFlushWritesIndex checks that Flush lists every new pack in an index
// file, that the index file agrees with the pack headers, and that a new
// process finds every blob.
func TestFlushWritesIndex(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{PackSize: 1 << 20})
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush without StartWriting: %v", err)
	}
	r.StartWriting(ctx)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(names(t, be, backend.IndexFile)); n != 0 {
		t.Fatalf("an empty session wrote %d index files", n)
	}

	// 40 packs of one blob each: one index file is written after 32
	// packs, and one by Flush.
	var blobs []testBlob
	for k := range 40 {
		blobs = append(blobs, testBlob{pack.DataBlob, noise(fmt.Sprint("p", k), 1<<20)})
	}
	blobs = append(blobs, testBlob{pack.TreeBlob, text("tree", 5000)})
	ids := saveAll(t, r, blobs)
	packNames := names(t, be, backend.PackFile)
	if len(packNames) != 41 {
		t.Fatalf("%d packs stored, want 41", len(packNames))
	}
	idxNames, err := r.List(ctx, backend.IndexFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(idxNames) != 2 {
		t.Fatalf("%d index files, want 2", len(idxNames))
	}
	listed := map[id.ID][]pack.Blob{}
	for _, n := range idxNames {
		f, err := r.LoadIndexFile(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Packs {
			if _, dup := listed[p.ID]; dup {
				t.Fatalf("pack %s listed twice", p.ID.Short())
			}
			listed[p.ID] = p.Blobs
		}
	}
	if len(listed) != len(packNames) {
		t.Fatalf("index files list %d packs, %d stored", len(listed), len(packNames))
	}
	for p, blobs := range listed {
		hdr, err := r.ReadPackHeader(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(hdr) != len(blobs) {
			t.Fatalf("pack %s: header lists %d blobs, index %d", p.Short(), len(hdr), len(blobs))
		}
		for k := range hdr {
			if hdr[k] != blobs[k] {
				t.Fatalf("pack %s blob %d: header %+v, index %+v", p.Short(), k, hdr[k], blobs[k])
			}
		}
	}

	r2, err := Open(ctx, be, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer closeCodecs(r2)
	if _, err := r2.LoadBlob(ctx, pack.DataBlob, ids[0], nil); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("before LoadIndex: got %v, want ErrBlobNotFound", err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for k, i := range ids {
		got, err := r2.LoadBlob(ctx, blobs[k].typ, i, nil)
		if err != nil || !bytes.Equal(got, blobs[k].data) {
			t.Fatalf("blob %d after LoadIndex: %v", k, err)
		}
	}
}

// TestSupersededIndex writes an index file that supersedes the others, as
// compaction does: LoadIndex must skip the superseded files.
func TestSupersededIndex(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	one := saveAll(t, r, []testBlob{{pack.DataBlob, []byte("one")}})[0]
	first, err := r.List(ctx, backend.IndexFile)
	if err != nil || len(first) != 1 {
		t.Fatalf("%d index files, %v", len(first), err)
	}
	two := saveAll(t, r, []testBlob{{pack.DataBlob, []byte("two")}})[0]
	all, err := r.List(ctx, backend.IndexFile)
	if err != nil || len(all) != 2 {
		t.Fatalf("%d index files, %v", len(all), err)
	}
	a, err := r.LoadIndexFile(ctx, first[0])
	if err != nil {
		t.Fatal(err)
	}
	// A compacted file that lists only the first pack but supersedes both
	// files: the second blob must vanish, which shows that the second file
	// was skipped.
	if err := r.saveIndexFile(ctx, &index.File{Supersedes: all, Packs: a.Packs}); err != nil {
		t.Fatal(err)
	}
	r2 := reopen(t, be)
	if !r2.HasBlob(one) || r2.HasBlob(two) {
		t.Fatalf("with both files superseded: has one %v, has two %v", r2.HasBlob(one), r2.HasBlob(two))
	}
	if r2.Index().Len() != 1 {
		t.Fatalf("index holds %d blobs, want 1", r2.Index().Len())
	}
}
