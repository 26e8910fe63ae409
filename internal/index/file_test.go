package index_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// mkID returns an ID whose bytes all derive from n.
func mkID(n uint64) id.ID {
	var i id.ID
	for k := 0; k < id.Size; k += 8 {
		n = n*6364136223846793005 + 1442695040888963407
		binary.BigEndian.PutUint64(i[k:], n)
	}
	return i
}

// sampleFile is a fixed index file that uses every field, including the
// largest values Decode accepts.
func sampleFile() *index.File {
	return &index.File{
		Supersedes: []id.ID{mkID(1), mkID(2)},
		Packs: []index.PackEntry{
			{ID: mkID(10), Blobs: []pack.Blob{
				{Type: pack.DataBlob, ID: mkID(11), Offset: 0, Length: 140, RawLength: 100},
				{Type: pack.TreeBlob, ID: mkID(12), Offset: 140, Length: 90, RawLength: 200, Compressed: true},
				{Type: pack.DataBlob, ID: mkID(13), Offset: 230, Length: 40, RawLength: 0},
			}},
			{ID: mkID(20), Blobs: []pack.Blob{}},
			{ID: mkID(30), Blobs: []pack.Blob{
				{Type: pack.DataBlob, ID: mkID(31), Offset: 1<<32 - 1, Length: pack.MaxBlobSize + 1024, RawLength: pack.MaxBlobSize, Compressed: true},
			}},
		},
	}
}

// sameFile compares index files, taking nil and empty lists as equal.
func sameFile(a, b *index.File) bool {
	if len(a.Supersedes) != len(b.Supersedes) || len(a.Packs) != len(b.Packs) {
		return false
	}
	for i := range a.Supersedes {
		if a.Supersedes[i] != b.Supersedes[i] {
			return false
		}
	}
	for i := range a.Packs {
		pa, pb := a.Packs[i], b.Packs[i]
		if pa.ID != pb.ID || len(pa.Blobs) != len(pb.Blobs) {
			return false
		}
		for j := range pa.Blobs {
			if pa.Blobs[j] != pb.Blobs[j] {
				return false
			}
		}
	}
	return true
}

func TestFileRoundTrip(t *testing.T) {
	for _, f := range []*index.File{
		{},
		{Supersedes: []id.ID{mkID(5)}},
		{Packs: []index.PackEntry{{ID: mkID(6)}}},
		sampleFile(),
	} {
		enc := f.Encode()
		got, err := index.Decode(enc)
		if err != nil {
			t.Fatalf("decode %x: %v", enc, err)
		}
		if !sameFile(got, f) {
			t.Fatalf("round trip:\ngot  %+v\nwant %+v", got, f)
		}
		if again := got.Encode(); !bytes.Equal(again, enc) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, enc)
		}
	}
}

func TestFileManyPacks(t *testing.T) {
	f := &index.File{}
	for p := range 200 {
		pe := index.PackEntry{ID: mkID(uint64(p) << 20)}
		var off uint32
		for b := range p % 17 {
			l := uint32(40 + b*1000 + p)
			pe.Blobs = append(pe.Blobs, pack.Blob{Type: pack.BlobType(1 + b%2), ID: mkID(uint64(p)<<20 | uint64(b) + 1), Offset: off, Length: l, RawLength: l * 3, Compressed: b%3 == 0})
			off += l
		}
		f.Packs = append(f.Packs, pe)
	}
	got, err := index.Decode(f.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !sameFile(got, f) {
		t.Fatal("round trip of 200 packs differs")
	}
}

func TestDecodeRejects(t *testing.T) {
	good := sampleFile().Encode()
	// Offsets into good: version, superseded count, two IDs, pack count,
	// first pack ID, its blob count, first blob type and flags.
	const (
		firstPack = 1 + 1 + 2*id.Size + 1
		firstBlob = firstPack + id.Size + 1
	)
	set := func(off int, v byte) []byte {
		b := append([]byte{}, good...)
		b[off] = v
		return b
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 0", set(0, 0)},
		{"version 2", set(0, 2)},
		{"version only", []byte{1}},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"cut by one byte", good[:len(good)-1]},
		{"cut in a superseded ID", good[:1+1+id.Size/2]},
		{"cut before the pack count", good[:1+1+2*id.Size]},
		{"superseded count too large", set(1, 0x7f)},
		{"pack count too large", set(1+1+2*id.Size, 0x7f)},
		{"blob count too large", set(firstBlob-1, 0x7f)},
		{"blob type 0", set(firstBlob, 0)},
		{"blob type 3", set(firstBlob, 3)},
		{"blob flag 2", set(firstBlob+1, 2)},
		{"blob flag 0x81", set(firstBlob+1, 0x81)},
		{"unterminated varint", append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"plain length above the limit", manual(binary.AppendUvarint(nil, pack.MaxBlobSize+1), 100, 140)},
		{"sealed length above the limit", manual(binary.AppendUvarint(nil, 10), 100, pack.MaxBlobSize+1025)},
		{"offset above 4 GiB", manualOffset(1 << 32)},
	}
	for _, c := range cases {
		f, err := index.Decode(c.b)
		if err == nil {
			t.Errorf("%s: accepted as %+v", c.name, f)
			continue
		}
		if !errors.Is(err, index.ErrCorrupt) || f != nil {
			t.Errorf("%s: got %v, want ErrCorrupt and no file", c.name, err)
		}
	}
	if _, err := index.Decode(good); err != nil {
		t.Fatalf("the unmodified file is rejected: %v", err)
	}
}

// manual encodes a one-blob index file by hand; raw is the encoded plain
// length, so that tests can put values there Encode cannot produce.
func manual(raw []byte, offset, length uint64) []byte {
	b := []byte{1, 0, 1}
	p := mkID(1)
	b = append(b, p[:]...)
	b = append(b, 1, byte(pack.DataBlob), 0)
	b = binary.AppendUvarint(b, offset)
	b = binary.AppendUvarint(b, length)
	b = append(b, raw...)
	i := mkID(2)
	return append(b, i[:]...)
}

func manualOffset(offset uint64) []byte {
	return manual(binary.AppendUvarint(nil, 10), offset, 50)
}

// TestGoldenFile pins the index file encoding (docs/FORMAT.md, "Index
// files"). Regenerate with go test -run TestGoldenFile -update, only for a
// new format version: index files already written must keep decoding.
func TestGoldenFile(t *testing.T) {
	enc := sampleFile().Encode()
	golden := filepath.Join("testdata", "file-v1.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(hexLines(enc)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	want, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, want) {
		t.Errorf("index file encoding changed:\ngot  %x\nwant %x", enc, want)
	}
	f, err := index.Decode(want)
	if err != nil {
		t.Fatalf("golden index file does not decode: %v", err)
	}
	if !sameFile(f, sampleFile()) {
		t.Fatalf("golden index file decodes to %+v", f)
	}
	if !reflect.DeepEqual(f.Supersedes, sampleFile().Supersedes) {
		t.Fatal("supersedes differ")
	}
}

func hexLines(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}
