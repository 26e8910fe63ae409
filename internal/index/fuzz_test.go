package index_test

import (
	"errors"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
)

// FuzzDecode feeds arbitrary bytes to Decode. It must never panic or
// allocate beyond what the input could describe; what it accepts must hold
// only valid entries and survive Encode and Decode unchanged, and an index
// built from it must find every blob.
func FuzzDecode(f *testing.F) {
	f.Add(sampleFile().Encode())
	f.Add((&index.File{}).Encode())
	f.Add((&index.File{Supersedes: []id.ID{mkID(3)}}).Encode())
	f.Add((&index.File{Packs: []index.PackEntry{{ID: mkID(4)}}}).Encode())
	f.Add(manualOffset(1 << 32))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := index.Decode(b)
		if err != nil {
			if !errors.Is(err, index.ErrCorrupt) || file != nil {
				t.Fatalf("rejected with %v and %v", file, err)
			}
			return
		}
		n := 0
		for _, p := range file.Packs {
			for _, e := range p.Blobs {
				if e.Type != pack.DataBlob && e.Type != pack.TreeBlob {
					t.Fatalf("blob %s has type %d", e.ID.Short(), e.Type)
				}
				if e.RawLength > pack.MaxBlobSize || e.Length > pack.MaxBlobSize+1024 {
					t.Fatalf("blob %s has lengths %d/%d", e.ID.Short(), e.Length, e.RawLength)
				}
				n++
			}
		}
		// Each blob takes at least 37 bytes, each pack 33.
		if n*(id.Size+5)+len(file.Packs)*(id.Size+1)+len(file.Supersedes)*id.Size > len(b) {
			t.Fatalf("%d bytes decoded into more than they can hold", len(b))
		}
		enc := file.Encode()
		if len(enc) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(enc))
		}
		again, err := index.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded file rejected: %v", err)
		}
		if !sameFile(again, file) {
			t.Fatal("re-encoded file decodes differently")
		}
		x := index.New()
		x.AddFile(file)
		x.Merge()
		first := map[id.ID]index.Location{}
		for _, p := range file.Packs {
			for _, e := range p.Blobs {
				if _, ok := first[e.ID]; !ok {
					first[e.ID] = index.Location{Pack: p.ID, Blob: e}
				}
			}
		}
		if x.Len() != len(first) {
			t.Fatalf("index holds %d blobs, file lists %d distinct ones", x.Len(), len(first))
		}
		for i, want := range first {
			if loc, ok := x.Lookup(i); !ok || loc != want {
				t.Fatalf("blob %s: got %+v, want its first location %+v", i.Short(), loc, want)
			}
		}
	})
}
