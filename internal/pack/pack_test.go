package pack_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/pack"
)

func TestRoundTrip(t *testing.T) {
	key := testKey(t, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 50, 500} {
		specs := make([]blobSpec, n)
		for i := range specs {
			plain := make([]byte, rng.IntN(5000))
			for j := range plain {
				plain[j] = byte(rng.Uint32())
			}
			typ := pack.DataBlob
			if i%3 == 1 {
				typ = pack.TreeBlob
			}
			specs[i] = blobSpec{typ: typ, plain: plain, compressed: i%2 == 0}
		}
		p, written := buildPack(t, key, specs)
		got, err := splitPack(key, p)
		if err != nil {
			t.Fatalf("%d blobs: %v", n, err)
		}
		if len(got) != n || len(written) != n {
			t.Fatalf("%d blobs: header lists %d, Finish returned %d", n, len(got), len(written))
		}
		var off uint32
		for i, b := range got {
			want := pack.Blob{
				Type: specs[i].typ, ID: fakeID(i), Offset: off,
				Length:    uint32(len(specs[i].plain) + crypto.Overhead),
				RawLength: uint32(len(specs[i].plain)), Compressed: specs[i].compressed,
			}
			if b != want || written[i] != want {
				t.Fatalf("%d blobs: blob %d parsed as %+v, Finish said %+v, want %+v", n, i, b, written[i], want)
			}
			plain, err := key.Open(nil, p[b.Offset:b.Offset+b.Length])
			if err != nil {
				t.Fatalf("%d blobs: blob %d at its offset does not open: %v", n, i, err)
			}
			if !bytes.Equal(plain, specs[i].plain) {
				t.Fatalf("%d blobs: blob %d has other content", n, i)
			}
			off += b.Length
		}
		_, start := sealedHeader(t, p)
		if int64(off) != start {
			t.Fatalf("%d blobs: blobs end at %d, header starts at %d", n, off, start)
		}
		// The header is one version byte and one entry per blob.
		if want := len(p) - int(start) - pack.TrailerSize - crypto.Overhead; want != 1+n*pack.EntrySize {
			t.Fatalf("%d blobs: sealed header holds %d plain bytes, want %d", n, want, 1+n*pack.EntrySize)
		}
	}
}

func TestBlobTypeString(t *testing.T) {
	for typ, want := range map[pack.BlobType]string{pack.DataBlob: "data", pack.TreeBlob: "tree", 0: "blobtype(0)", 9: "blobtype(9)"} {
		if got := typ.String(); got != want {
			t.Errorf("BlobType(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk on fire")
	}
	w.after--
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	key := testKey(t, 1)
	w := pack.NewWriter(&failWriter{after: 1})
	if err := w.Add(pack.DataBlob, fakeID(1), key.Seal(nil, []byte("a")), 1, false); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(pack.DataBlob, fakeID(2), key.Seal(nil, []byte("b")), 1, false); err == nil {
		t.Fatal("Add with a failing writer succeeded")
	}
	if w.Count() != 1 {
		t.Fatalf("a failed Add was counted: Count %d", w.Count())
	}
	w = pack.NewWriter(&failWriter{after: 1})
	if err := w.Add(pack.DataBlob, fakeID(1), key.Seal(nil, []byte("a")), 1, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Finish(key); err == nil {
		t.Fatal("Finish with a failing writer succeeded")
	}
}

func TestHeaderLength(t *testing.T) {
	le := func(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }
	cases := []struct {
		name    string
		trailer []byte
		size    int64
		want    int // -1: an error
	}{
		{"empty header, trailer only", le(0), 4, 0},
		{"header fills the pack", le(100), 104, 100},
		{"header with blobs before it", le(100), 1000, 100},
		{"largest header", le(pack.MaxHeaderSize), 1 << 30, pack.MaxHeaderSize},
		{"header one byte too long", le(101), 104, -1},
		{"header longer than the pack", le(1000), 104, -1},
		{"header above the limit", le(pack.MaxHeaderSize + 1), 1 << 30, -1},
		{"all ones", le(1<<32 - 1), 1 << 40, -1},
		{"all ones, huge pack", le(1<<32 - 1), 1<<63 - 1, -1},
		{"pack shorter than a trailer", le(0), 3, -1},
		{"empty pack", nil, 0, -1},
		{"negative size", le(0), -1, -1},
		{"short trailer", []byte{0, 0, 0}, 100, -1},
		{"long trailer", []byte{0, 0, 0, 0, 0}, 100, -1},
	}
	for _, c := range cases {
		got, err := pack.HeaderLength(c.trailer, c.size)
		switch {
		case c.want < 0 && err == nil:
			t.Errorf("%s: got %d, want an error", c.name, got)
		case c.want < 0 && !errors.Is(err, pack.ErrCorrupt):
			t.Errorf("%s: error %v does not wrap ErrCorrupt", c.name, err)
		case c.want >= 0 && (err != nil || got != c.want):
			t.Errorf("%s: got %d, %v, want %d", c.name, got, err, c.want)
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	key := testKey(t, 1)
	i1, i2 := fakeID(1), fakeID(2)
	good := func() []byte {
		b := []byte{1}
		b = append(b, entry(1, 0, 100, 50, i1)...)
		return append(b, entry(2, 1, 60, 200, i2)...)
	}
	const goodOffset = 160
	if blobs, err := pack.ParseHeader(key, key.Seal(nil, good()), goodOffset); err != nil || len(blobs) != 2 {
		t.Fatalf("the unmodified header is rejected: %v", err)
	}
	// set changes one field of the first entry of the good header.
	set := func(off int, v ...byte) []byte {
		b := good()
		copy(b[1+off:], v)
		return b
	}
	setLen := func(off int, n uint32) []byte {
		return set(off, binary.LittleEndian.AppendUint32(nil, n)...)
	}
	cases := []struct {
		name   string
		plain  []byte
		offset int64
	}{
		{"empty plaintext", nil, 0},
		{"version 0", append([]byte{0}, good()[1:]...), goodOffset},
		{"version 2", append([]byte{2}, good()[1:]...), goodOffset},
		{"version 255", append([]byte{255}, good()[1:]...), goodOffset},
		{"trailing byte", append(good(), 0), goodOffset},
		{"entry cut short", good()[:len(good())-1], goodOffset},
		{"half an entry", good()[:1+pack.EntrySize/2], 0},
		{"type 0", set(0, 0), goodOffset},
		{"type 3", set(0, 3), goodOffset},
		{"type 255", set(0, 255), goodOffset},
		{"flag 2", set(1, 2), goodOffset},
		{"flag 0x80", set(1, 0x80), goodOffset},
		{"compressed and unknown flag", set(1, 0x81), goodOffset},
		{"sealed length above the limit", setLen(2, pack.MaxBlobSize+1025), pack.MaxBlobSize + 1025 + 60},
		{"sealed length all ones", setLen(2, 1<<32-1), 1<<32 - 1 + 60},
		{"plain length above the limit", setLen(6, pack.MaxBlobSize+1), goodOffset},
		{"plain length all ones", setLen(6, 1<<32-1), goodOffset},
		{"blobs reach past the header", setLen(2, 101), goodOffset},
		{"blobs stop short of the header", setLen(2, 99), goodOffset},
		{"header offset too small", good(), goodOffset - 1},
		{"header offset too large", good(), goodOffset + 1},
		{"no blobs but an offset", []byte{1}, 1},
		{"negative offset", []byte{1}, -1},
		{"negative offset with blobs", good(), -goodOffset},
	}
	for _, c := range cases {
		blobs, err := pack.ParseHeader(key, key.Seal(nil, c.plain), c.offset)
		if err == nil {
			t.Errorf("%s: accepted as %+v", c.name, blobs)
			continue
		}
		if !errors.Is(err, pack.ErrCorrupt) || blobs != nil {
			t.Errorf("%s: got %v and %d blobs, want ErrCorrupt and none", c.name, err, len(blobs))
		}
	}

	sealed := key.Seal(nil, good())
	for _, c := range []struct {
		name   string
		sealed []byte
		key    pack.Sealer
	}{
		{"bit flipped in the nonce", flip(sealed, 0), key},
		{"bit flipped in the ciphertext", flip(sealed, crypto.NonceSize+5), key},
		{"bit flipped in the tag", flip(sealed, len(sealed)-1), key},
		{"truncated", sealed[:len(sealed)-1], key},
		{"shorter than the overhead", sealed[:crypto.Overhead-1], key},
		{"empty", nil, key},
		{"wrong key", sealed, testKey(t, 2)},
	} {
		blobs, err := pack.ParseHeader(c.key, c.sealed, goodOffset)
		if !errors.Is(err, pack.ErrCorrupt) || blobs != nil {
			t.Errorf("%s: got %v and %d blobs, want ErrCorrupt and none", c.name, err, len(blobs))
		}
	}
}

func TestParseHeaderLimits(t *testing.T) {
	key := testKey(t, 1)
	plain := append([]byte{1}, entry(1, 1, pack.MaxBlobSize+1024, pack.MaxBlobSize, fakeID(1))...)
	blobs, err := pack.ParseHeader(key, key.Seal(nil, plain), pack.MaxBlobSize+1024)
	if err != nil {
		t.Fatalf("a blob at both limits is rejected: %v", err)
	}
	want := pack.Blob{Type: pack.DataBlob, ID: fakeID(1), Length: pack.MaxBlobSize + 1024, RawLength: pack.MaxBlobSize, Compressed: true}
	if len(blobs) != 1 || blobs[0] != want {
		t.Fatalf("got %+v, want %+v", blobs, want)
	}
	// A pack without blobs is valid: its header is the version byte.
	blobs, err = pack.ParseHeader(key, key.Seal(nil, []byte{1}), 0)
	if err != nil || len(blobs) != 0 {
		t.Fatalf("empty header: %v, %d blobs", err, len(blobs))
	}
}

// TestCorruptPack damages whole packs the way storage does and checks that
// reading the header fails cleanly.
func TestCorruptPack(t *testing.T) {
	key := testKey(t, 1)
	p, _ := buildPack(t, key, []blobSpec{
		{typ: pack.DataBlob, plain: []byte("one")},
		{typ: pack.TreeBlob, plain: bytes.Repeat([]byte("two"), 100)},
	})
	if _, err := splitPack(key, p); err != nil {
		t.Fatal(err)
	}
	hdr, start := sealedHeader(t, p)
	for _, c := range []struct {
		name string
		p    []byte
	}{
		{"truncated by one byte", p[:len(p)-1]},
		{"truncated to the trailer", p[len(p)-pack.TrailerSize:]},
		{"truncated below a trailer", p[:3]},
		{"empty", nil},
		{"header cut off", p[:start]},
		{"blob bytes missing", append(append([]byte{}, p[1:start]...), p[start:]...)},
		{"extra byte before the header", append(append(append([]byte{}, p[:start]...), 0), p[start:]...)},
		{"extra byte at the end", append(append([]byte{}, p...), 0)},
		{"trailer says one more", withTrailer(p, len(hdr)+1)},
		{"trailer says one less", withTrailer(p, len(hdr)-1)},
		{"trailer says zero", withTrailer(p, 0)},
		{"header bit flipped", flip(p, int(start)+crypto.NonceSize+3)},
	} {
		if blobs, err := splitPack(key, c.p); !errors.Is(err, pack.ErrCorrupt) {
			t.Errorf("%s: got %d blobs, %v; want ErrCorrupt", c.name, len(blobs), err)
		}
	}
}

func withTrailer(p []byte, n int) []byte {
	q := append([]byte{}, p...)
	binary.LittleEndian.PutUint32(q[len(q)-pack.TrailerSize:], uint32(n))
	return q
}

// flip returns a copy of b with one bit of byte i inverted.
func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x10
	return c
}
