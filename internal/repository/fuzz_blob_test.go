package repository

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/rewind-backup/rewind/internal/pack"
)

// FuzzOpenBlob opens arbitrary stored blobs. The fuzzed bytes are sealed
// with the repository's key first, so that the fuzzer explores what comes
// after authentication: decompression, the length check and the ID check.
// OpenBlob must never panic, and must return exactly the blob's content
// or an error: content is returned only when it hashes to the ID the
// header gives and has the length it gives.
func FuzzOpenBlob(f *testing.F) {
	r, _ := newMemRepo(f)
	text := bytes.Repeat([]byte("rewind blob content, compressible. "), 200)
	for _, plain := range [][]byte{nil, []byte("x"), text} {
		f.Add(plain, false, true, uint32(0))
		f.Add(r.compress(nil, plain), true, true, uint32(0))
	}
	frame := r.compress(nil, text)
	f.Add(frame[:len(frame)/2], true, true, uint32(0))
	f.Add(frame, true, false, uint32(len(text)))
	f.Add(frame, false, true, uint32(0))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0x58, 0, 0, 0}, true, true, uint32(0))

	// A second decoder gives what the stored bytes decompress to.
	ref, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<24))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(ref.Close)
	// buf is handed to OpenBlob dirty, as restore and check reuse theirs.
	buf := make([]byte, 0, 64<<10)
	f.Fuzz(func(t *testing.T, stored []byte, compressed, rightID bool, rawLength uint32) {
		content := stored
		if compressed {
			var err error
			if content, err = ref.DecodeAll(stored, nil); err != nil {
				content = nil
			}
		}
		b := pack.Blob{Type: pack.DataBlob, Compressed: compressed, RawLength: rawLength % (1 << 20)}
		if rightID {
			b.ID = r.key.BlobID(content)
			b.RawLength = uint32(len(content))
		}
		sealed := r.key.Seal(nil, stored)
		b.Length = uint32(len(sealed))

		dirty := buf[:cap(buf)]
		for i := range dirty {
			dirty[i] = 0xee
		}
		out, err := r.OpenBlob(b, sealed, buf)
		if err != nil {
			if out != nil {
				t.Fatalf("error %v with %d bytes of content", err, len(out))
			}
			return
		}
		if len(out) != int(b.RawLength) || r.key.BlobID(out) != b.ID {
			t.Fatalf("returned %d bytes that are not the blob (%d bytes, ID %s)", len(out), b.RawLength, b.ID.Short())
		}
		if content != nil && !bytes.Equal(out, content) {
			t.Fatalf("returned %d bytes that differ from the stored content", len(out))
		}
	})
}
