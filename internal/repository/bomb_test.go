package repository

import (
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/rewind-backup/rewind/internal/pack"
)

// TestOpenBlobRefusesDecompressionBomb: a compressed blob whose frame
// expands far beyond the plain length the index records fails without
// allocating what the frame claims.
func TestOpenBlobRefusesDecompressionBomb(t *testing.T) {
	r, _ := newMemRepo(t)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	frame := enc.EncodeAll(make([]byte, 200<<20), nil)
	enc.Close()
	sealed := r.key.Seal(nil, frame)
	plain := []byte("0123456789")
	b := pack.Blob{Type: pack.DataBlob, ID: r.key.BlobID(plain), Length: uint32(len(sealed)), RawLength: uint32(len(plain)), Compressed: true}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = r.OpenBlob(b, sealed, nil)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a blob expanding to 200 MiB was accepted for a 10-byte plain length")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("refusing the bomb allocated %d MiB", grew>>20)
	}
	t.Logf("frame of %d bytes refused: %v", len(frame), err)
}
