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
