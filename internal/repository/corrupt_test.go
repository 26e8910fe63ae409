package repository

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
)

// localRepoWithBlobs makes a local repository with a few blobs in one
// pack and returns the folder, the blobs, their IDs and the pack's ID.
func localRepoWithBlobs(t *testing.T) (string, []testBlob, []id.ID, id.ID) {
	t.Helper()
	r, dir := newLocalRepo(t)
	blobs := []testBlob{
		{pack.DataBlob, text("a", 50_000)},
		{pack.DataBlob, noise("b", 50_000)},
		{pack.DataBlob, noise("c", 1000)},
	}
	ids := saveAll(t, r, blobs)
	loc, ok := r.Index().Lookup(ids[0])
	if !ok {
		t.Fatal("blob not indexed")
	}
	for _, i := range ids[1:] {
		if l, _ := r.Index().Lookup(i); l.Pack != loc.Pack {
			t.Fatal("blobs landed in different packs")
		}
	}
	return dir, blobs, ids, loc.Pack
}

func packHandle(p id.ID) backend.Handle {
	return backend.Handle{Type: backend.PackFile, Name: p.String()}
}

// TestPackBitFlip flips one bit inside each blob of a stored pack in turn:
// loading that blob fails as corrupt and names the pack; the other blobs
// still load.
func TestPackBitFlip(t *testing.T) {
	ctx := context.Background()
	dir, blobs, ids, p := localRepoWithBlobs(t)
	path := localFile(dir, packHandle(p))
	for k := range ids {
		r0, err := openLocal(t, dir, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		if err := r0.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		loc, _ := r0.Index().Lookup(ids[k])
		// Flip a bit in the nonce of one blob, in the middle of the next,
		// in the tag of the last.
		at := int(loc.Offset) + []int{3, int(loc.Length) / 2, int(loc.Length) - 1}[k]
		rewrite(t, path, func(b []byte) []byte { b[at] ^= 0x04; return b })

		r, err := openLocal(t, dir, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		for j, i := range ids {
			got, err := r.LoadBlob(ctx, pack.DataBlob, i, nil)
			if j != k {
				if err != nil || !bytes.Equal(got, blobs[j].data) {
					t.Fatalf("flip in blob %d: intact blob %d: %v", k, j, err)
				}
				continue
			}
			if !errors.Is(err, ErrCorrupt) || got != nil {
				t.Fatalf("flip in blob %d: got %d bytes, %v; want ErrCorrupt", k, len(got), err)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), p.String()) {
				t.Fatalf("flip in blob %d: error does not name pack %s: %v", k, p, err)
			}
		}
		rewrite(t, path, func(b []byte) []byte { b[at] ^= 0x04; return b })
	}

	// A flip in the header: the blobs still load (the index does not need
	// the header) but reading the header fails.
	rewrite(t, path, func(b []byte) []byte { b[len(b)-pack.TrailerSize-10] ^= 1; return b })
	r, err := openLocal(t, dir, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadPackHeader(ctx, p); !errors.Is(err, ErrCorrupt) || !errors.Is(err, pack.ErrCorrupt) || !strings.Contains(err.Error(), p.String()) {
		t.Fatalf("damaged header: got %v, want ErrCorrupt naming %s", err, p)
	}
}

func TestTruncatedPack(t *testing.T) {
	ctx := context.Background()
	dir, _, ids, p := localRepoWithBlobs(t)
	path := localFile(dir, packHandle(p))
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{len(orig) - 1, len(orig) - pack.TrailerSize, len(orig) / 2, 100, pack.TrailerSize, 3, 0} {
		rewrite(t, path, func([]byte) []byte { return orig[:size] })
		r, err := openLocal(t, dir, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.ReadPackHeader(ctx, p)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p.String()) {
			t.Fatalf("pack cut to %d bytes: got %v, want ErrCorrupt naming the pack", size, err)
		}
		// The blob at the end of the pack is cut too.
		if err := r.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		last, _ := r.Index().Lookup(ids[len(ids)-1])
		_, err = r.LoadBlob(ctx, pack.DataBlob, last.ID, nil)
		if size < int(last.Offset+last.Length) && (err == nil || !strings.Contains(err.Error(), p.Short())) {
			t.Fatalf("pack cut to %d bytes: last blob: got %v, want an error naming the pack", size, err)
		}
	}
	rewrite(t, path, func([]byte) []byte { return orig })
	r, err := openLocal(t, dir, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if blobs, err := r.ReadPackHeader(ctx, p); err != nil || len(blobs) != len(ids) {
		t.Fatalf("restored pack: %d blobs, %v", len(blobs), err)
	}
	if _, err := r.ReadPackHeader(ctx, id.ID{1}); err == nil || !backend.IsNotExist(err) {
		t.Fatalf("missing pack: got %v, want not found", err)
	}
}

// TestLargePackHeader stores a pack whose header does not fit the first
// read of ReadPackHeader.
func TestLargePackHeader(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	var blobs []testBlob
	for k := range 3000 { // 3000 × 42 bytes of header: over 64 KiB
		blobs = append(blobs, testBlob{pack.DataBlob, noise(string(rune(k)), 20)})
	}
	saveAll(t, r, blobs)
	packs := names(t, be, backend.PackFile)
	if len(packs) != 1 {
		t.Fatalf("%d packs", len(packs))
	}
	p, _ := id.Parse(packs[0])
	got, err := reopen(t, be).ReadPackHeader(ctx, p)
	if err != nil || len(got) != len(blobs) {
		t.Fatalf("%d blobs, %v", len(got), err)
	}
}

// TestSwappedFiles stores files under names that are not theirs: a copy of
// one index or snapshot file under another name, and two packs exchanged.
func TestSwappedFiles(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	// Two packs, each holding one blob of the same size, so that the
	// blobs' offsets and lengths in the swapped packs match exactly.
	a := saveAll(t, r, []testBlob{{pack.DataBlob, noise("a", 5000)}})[0]
	b := saveAll(t, r, []testBlob{{pack.DataBlob, noise("b", 5000)}})[0]
	la, _ := r.Index().Lookup(a)
	lb, _ := r.Index().Lookup(b)
	if la.Pack == lb.Pack || la.Offset != lb.Offset || la.Length != lb.Length {
		t.Fatalf("test setup: %+v and %+v", la, lb)
	}
	pa, pb := memRead(t, be, packHandle(la.Pack)), memRead(t, be, packHandle(lb.Pack))
	memReplace(t, be, packHandle(la.Pack), pb)
	memReplace(t, be, packHandle(lb.Pack), pa)
	r2 := reopen(t, be)
	for _, c := range []struct {
		blob id.ID
		pack id.ID
	}{{a, la.Pack}, {b, lb.Pack}} {
		// The bytes decrypt with the repository key: only the ID check
		// can tell.
		_, err := r2.LoadBlob(ctx, pack.DataBlob, c.blob, nil)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.pack.String()) || !strings.Contains(err.Error(), "hash") {
			t.Fatalf("swapped pack: got %v, want ErrCorrupt naming %s and the hash", err, c.pack)
		}
	}

	// An index file copied under another name.
	idx := names(t, be, backend.IndexFile)
	content := memRead(t, be, backend.Handle{Type: backend.IndexFile, Name: idx[0]})
	var other id.ID
	other[0] = 0xaa
	memReplace(t, be, backend.Handle{Type: backend.IndexFile, Name: other.String()}, content)
	_, err := r2.LoadIndexFile(ctx, other)
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Object != "index/"+other.String() {
		t.Fatalf("renamed index file: got %v, want a CorruptError naming index/%s", err, other)
	}
	// LoadIndex goes on around it, and names it.
	r2.ResetIndex()
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatalf("LoadIndex with a renamed index file: %v", err)
	}
	if d := r2.IndexDamage(); d == nil || len(d.Files) != 1 || d.Files[0].File != other || !errors.Is(d.Files[0].Err, ErrCorrupt) {
		t.Fatalf("LoadIndex with a renamed index file: damage %+v, want index/%s", d, other)
	}

	// Two JSON files exchanged.
	s1, err := r.SaveJSON(ctx, backend.SnapshotFile, map[string]string{"n": "1"})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.SaveJSON(ctx, backend.SnapshotFile, map[string]string{"n": "2"})
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := backend.Handle{Type: backend.SnapshotFile, Name: s1.String()}, backend.Handle{Type: backend.SnapshotFile, Name: s2.String()}
	c1, c2 := memRead(t, be, h1), memRead(t, be, h2)
	var v map[string]string
	if err := r.LoadJSON(ctx, backend.SnapshotFile, s1, &v); err != nil || v["n"] != "1" {
		t.Fatalf("intact JSON file: %v, %v", v, err)
	}
	memReplace(t, be, h1, c2)
	memReplace(t, be, h2, c1)
	for _, s := range []id.ID{s1, s2} {
		err := r.LoadJSON(ctx, backend.SnapshotFile, s, &v)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "snapshots/"+s.String()) {
			t.Fatalf("swapped snapshot: got %v, want ErrCorrupt naming it", err)
		}
	}

	// A file whose name matches but whose content is not sealed with the
	// key, and one sealed but not JSON.
	junk := []byte("not sealed at all, just some bytes")
	hj := backend.Handle{Type: backend.SnapshotFile, Name: idOf(junk).String()}
	memReplace(t, be, hj, junk)
	if err := r.LoadJSON(ctx, backend.SnapshotFile, idOf(junk), &v); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unsealed file: got %v, want ErrCorrupt", err)
	}
	notJSON, err := r.saveSealed(ctx, backend.SnapshotFile, []byte("{"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadJSON(ctx, backend.SnapshotFile, notJSON, &v); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("sealed non-JSON: got %v, want ErrCorrupt", err)
	}
}
