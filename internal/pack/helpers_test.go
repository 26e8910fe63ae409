package pack_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
)

// testKey returns a master key made from fixed material, so that failures
// reproduce.
func testKey(t testing.TB, seed byte) *crypto.Key {
	t.Helper()
	m := make([]byte, crypto.MaterialSize)
	for i := range m {
		m[i] = seed + byte(i*7)
	}
	k, err := crypto.KeyFromMaterial(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// blobSpec is one blob to put in a test pack.
type blobSpec struct {
	typ        pack.BlobType
	plain      []byte
	compressed bool
}

// fakeID derives a distinct blob ID from n. The pack layer never hashes
// blobs, so any 32 bytes do.
func fakeID(n int) id.ID {
	var i id.ID
	binary.LittleEndian.PutUint64(i[:], uint64(n)*0x9e3779b97f4a7c15)
	i[31] = byte(n)
	return i
}

// buildPack writes specs as sealed blobs through a Writer and returns the
// whole pack and what Finish reported.
func buildPack(t testing.TB, key pack.Sealer, specs []blobSpec) ([]byte, []pack.Blob) {
	t.Helper()
	var buf bytes.Buffer
	w := pack.NewWriter(&buf)
	for n, s := range specs {
		sealed := key.Seal(nil, s.plain)
		if err := w.Add(s.typ, fakeID(n), sealed, len(s.plain), s.compressed); err != nil {
			t.Fatalf("add blob %d: %v", n, err)
		}
		if w.Count() != n+1 || w.Size() > int64(buf.Len()) {
			t.Fatalf("after blob %d: Count %d, Size %d, %d bytes written", n, w.Count(), w.Size(), buf.Len())
		}
	}
	blobs, size, err := w.Finish(key)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(buf.Len()) {
		t.Fatalf("Finish reports %d bytes, %d were written", size, buf.Len())
	}
	return buf.Bytes(), blobs
}

// splitPack finds the header of a whole pack, as a reader of a stored pack
// does, and parses it.
func splitPack(key pack.Sealer, p []byte) ([]pack.Blob, error) {
	if len(p) < pack.TrailerSize {
		return pack.ParseHeader(key, nil, 0)
	}
	hl, err := pack.HeaderLength(p[len(p)-pack.TrailerSize:], int64(len(p)))
	if err != nil {
		return nil, err
	}
	start := len(p) - pack.TrailerSize - hl
	return pack.ParseHeader(key, p[start:len(p)-pack.TrailerSize], int64(start))
}

// sealedHeader returns the sealed header of a whole pack and where it
// starts.
func sealedHeader(t testing.TB, p []byte) ([]byte, int64) {
	t.Helper()
	hl, err := pack.HeaderLength(p[len(p)-pack.TrailerSize:], int64(len(p)))
	if err != nil {
		t.Fatal(err)
	}
	start := len(p) - pack.TrailerSize - hl
	return p[start : len(p)-pack.TrailerSize], int64(start)
}

// entry encodes one header entry field by field, so that tests can put any
// value in any field.
func entry(typ, flags byte, length, raw uint32, i id.ID) []byte {
	b := []byte{typ, flags}
	b = binary.LittleEndian.AppendUint32(b, length)
	b = binary.LittleEndian.AppendUint32(b, raw)
	return append(b, i[:]...)
}

// encodeHeader is an independent encoding of a header plaintext, used to
// check what ParseHeader accepted against what it was given.
func encodeHeader(blobs []pack.Blob) []byte {
	b := []byte{1}
	for _, e := range blobs {
		var flags byte
		if e.Compressed {
			flags = pack.FlagCompressed
		}
		b = append(b, entry(byte(e.Type), flags, e.Length, e.RawLength, e.ID)...)
	}
	return b
}

// plainSealer seals nothing: it makes a pack deterministic, for golden
// files of the layout.
type plainSealer struct{}

func (plainSealer) Seal(dst, plaintext []byte) []byte { return append(dst, plaintext...) }
func (plainSealer) Open(dst, ciphertext []byte) ([]byte, error) {
	return append(dst, ciphertext...), nil
}
