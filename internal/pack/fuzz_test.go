package pack_test

import (
	"errors"
	"testing"

	"github.com/rewind-backup/rewind/internal/pack"
)

// FuzzParseHeader seals arbitrary header plaintexts with a real key, so that
// the fuzzer explores the decoding rather than the authentication. It must
// never panic; what it accepts must tile the pack exactly up to the header
// and re-encode to the same plaintext.
func FuzzParseHeader(f *testing.F) {
	key := testKey(f, 1)
	for _, specs := range [][]blobSpec{
		nil,
		{{typ: pack.DataBlob, plain: []byte("a")}},
		{{typ: pack.TreeBlob, plain: make([]byte, 300), compressed: true}, {typ: pack.DataBlob, plain: []byte("bc")}},
		{{typ: pack.DataBlob}, {typ: pack.DataBlob, compressed: true}, {typ: pack.TreeBlob}},
	} {
		p, _ := buildPack(f, key, specs)
		sealed, start := sealedHeader(f, p)
		plain, err := key.Open(nil, sealed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(plain, start)
		f.Add(plain, start+1)
		f.Add(plain[:len(plain)-1], start)
	}
	f.Add([]byte{}, int64(0))
	f.Add([]byte{1}, int64(-1))
	f.Add(append([]byte{1}, entry(1, 1, pack.MaxBlobSize+1024, pack.MaxBlobSize, fakeID(3))...), int64(pack.MaxBlobSize+1024))

	f.Fuzz(func(t *testing.T, plain []byte, headerOffset int64) {
		// Unsealed bytes never authenticate.
		if blobs, err := pack.ParseHeader(key, plain, headerOffset); !errors.Is(err, pack.ErrCorrupt) || blobs != nil {
			t.Fatalf("unsealed header: %d blobs, %v", len(blobs), err)
		}
		if len(plain) >= pack.TrailerSize {
			if n, err := pack.HeaderLength(plain[:pack.TrailerSize], headerOffset); err == nil {
				if n < 0 || n > pack.MaxHeaderSize || int64(n)+pack.TrailerSize > headerOffset {
					t.Fatalf("HeaderLength accepted %d for a pack of %d bytes", n, headerOffset)
				}
			} else if !errors.Is(err, pack.ErrCorrupt) {
				t.Fatalf("HeaderLength error does not wrap ErrCorrupt: %v", err)
			}
		}

		blobs, err := pack.ParseHeader(key, key.Seal(nil, plain), headerOffset)
		if err != nil {
			if !errors.Is(err, pack.ErrCorrupt) || blobs != nil {
				t.Fatalf("rejected with %d blobs and %v", len(blobs), err)
			}
			return
		}
		var off int64
		for i, b := range blobs {
			if int64(b.Offset) != off {
				t.Fatalf("blob %d at %d, previous blob ends at %d", i, b.Offset, off)
			}
			if b.Type != pack.DataBlob && b.Type != pack.TreeBlob {
				t.Fatalf("blob %d has type %d", i, b.Type)
			}
			if b.RawLength > pack.MaxBlobSize || b.Length > pack.MaxBlobSize+1024 {
				t.Fatalf("blob %d has lengths %d/%d", i, b.Length, b.RawLength)
			}
			off += int64(b.Length)
		}
		if off != headerOffset {
			t.Fatalf("blobs cover %d bytes, header at %d", off, headerOffset)
		}
		if enc := encodeHeader(blobs); string(enc) != string(plain) {
			t.Fatalf("accepted header re-encodes differently:\nin  %x\nout %x", plain, enc)
		}
	})
}
