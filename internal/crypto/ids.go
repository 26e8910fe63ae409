package crypto

import (
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/zeebo/blake3"
)

// BlobID returns the keyed BLAKE3 hash of a blob's plaintext under the
// ID key. It does not allocate: hashers keyed once are reused through a
// pool (cloning the keyed hasher would copy and allocate ~11 KB a call;
// see BenchmarkBlobIDStrategies).
func (k *Key) BlobID(data []byte) id.ID {
	h := k.hashers.Get().(*blake3.Hasher)
	_, _ = h.Write(data)
	var out id.ID
	h.Sum(out[:0])
	h.Reset()
	k.hashers.Put(h)
	return out
}

// FileID returns the unkeyed BLAKE3 hash of a stored file's bytes, which
// names packs, indexes, snapshots and key files.
func FileID(data []byte) id.ID {
	return blake3.Sum256(data)
}

// BlobHasher computes BlobID over data given in pieces: after writing
// the pieces p1, p2, ... Sum returns BlobID(p1 || p2 || ...), and writing
// may go on after Sum (pg receive hashes its growing partial segment this
// way, one appended piece at a time).
type BlobHasher struct {
	h *blake3.Hasher
	n int64
}

// NewBlobHasher returns a BlobHasher with nothing written yet.
func (k *Key) NewBlobHasher() *BlobHasher { return &BlobHasher{h: k.idProto.Clone()} }

// Write adds p to the hashed data.
func (b *BlobHasher) Write(p []byte) {
	_, _ = b.h.Write(p)
	b.n += int64(len(p))
}

// Len returns how many bytes were written.
func (b *BlobHasher) Len() int64 { return b.n }

// Sum returns the BlobID of all bytes written so far; it does not change
// the state.
func (b *BlobHasher) Sum() id.ID {
	var out id.ID
	b.h.Sum(out[:0])
	return out
}
