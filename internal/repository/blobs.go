package repository

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
)

// minCompressGain: a compressed blob is kept only when it saves at least
// 1/minCompressGain of the plain size; otherwise the plain bytes are
// stored and reading it costs no decompression.
const minCompressGain = 32

// SaveBlob stores data as a blob of type t unless a blob with the same ID
// is stored or being stored. It returns the ID and whether this call added
// it. data may be reused by the caller after SaveBlob returns.
func (r *Repository) SaveBlob(ctx context.Context, t pack.BlobType, data []byte) (id.ID, bool, error) {
	i := r.key.BlobID(data)
	added, err := r.SaveBlobID(ctx, t, i, data)
	return i, added, err
}

// SaveBlobID is SaveBlob for a caller that has already computed the ID.
func (r *Repository) SaveBlobID(ctx context.Context, t pack.BlobType, i id.ID, data []byte) (bool, error) {
	if r.idx.Has(i) {
		return false, nil
	}
	ok, err := r.Reserve(i)
	if !ok || err != nil {
		return false, err
	}
	return true, r.SaveReserved(ctx, t, i, data)
}

// SaveReserved compresses, seals and packs a blob whose ID the caller
// reserved with Reserve. Every reserved ID must be saved (or the write
// session abandoned), or later SaveBlob calls for it would skip it.
func (r *Repository) SaveReserved(ctx context.Context, t pack.BlobType, i id.ID, data []byte) error {
	if len(data) > pack.MaxBlobSize {
		return fmt.Errorf("blob of %d bytes exceeds the limit of %d", len(data), pack.MaxBlobSize)
	}
	buf := getBuf(len(data) + len(data)/16 + 128)
	defer putBuf(buf)
	plain, compressed := data, false
	if r.cfg.Compression == "zstd" && len(data) >= 64 && !looksIncompressible(data) {
		c := r.compress((*buf)[:0], data)
		if len(c) < len(data)-len(data)/minCompressGain {
			plain, compressed = c, true
		}
		*buf = c[:0]
	}
	sbuf := getBuf(len(plain) + 64)
	defer putBuf(sbuf)
	sealed := r.key.Seal((*sbuf)[:0], plain)
	*sbuf = sealed[:0]
	if err := r.addSealed(ctx, t, i, sealed, len(data), compressed); err != nil {
		return err
	}
	r.stats.addBlob(t, int64(len(data)), int64(len(sealed)))
	return nil
}

// LoadBlob reads, decrypts, decompresses and verifies a blob, appending it
// to buf[:0]. A blob whose bytes do not hash to its ID is reported as
// corrupt, never returned.
func (r *Repository) LoadBlob(ctx context.Context, t pack.BlobType, i id.ID, buf []byte) ([]byte, error) {
	if t == pack.TreeBlob {
		if b, ok := r.trees.get(i); ok {
			return append(buf[:0], b...), nil
		}
	}
	loc, ok := r.idx.Lookup(i)
	if !ok {
		if loc, ok = r.lookupCondemned(i); !ok {
			return nil, fmt.Errorf("%w: %s blob %s", ErrBlobNotFound, t, i)
		}
	}
	sealedBuf := getBuf(int(loc.Length))
	defer putBuf(sealedBuf)
	sealed := (*sealedBuf)[:loc.Length]
	h := backend.Handle{Type: backend.PackFile, Name: loc.Pack.String()}
	err := r.be.Load(ctx, h, int(loc.Length), int64(loc.Offset), func(rd io.Reader) error {
		_, err := io.ReadFull(rd, sealed)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load blob %s: %w", i.Short(), backend.Wrap("load", h.String(), err))
	}
	out, err := r.openBlob(loc.Blob, sealed, buf)
	if err != nil {
		return nil, &CorruptError{Op: "load blob " + i.String() + " from", Object: h.String(), Err: err}
	}
	if t == pack.TreeBlob {
		r.trees.add(i, out)
	}
	return out, nil
}

// openBlob decrypts, decompresses and verifies one sealed blob.
func (r *Repository) openBlob(b pack.Blob, sealed, buf []byte) ([]byte, error) {
	var out []byte
	if b.Compressed {
		pbuf := getBuf(len(sealed))
		defer putBuf(pbuf)
		plain, err := r.key.Open((*pbuf)[:0], sealed)
		if err != nil {
			return nil, err
		}
		*pbuf = plain[:0]
		if cap(buf) < int(b.RawLength) {
			buf = make([]byte, 0, b.RawLength)
		}
		out, err = r.zblob.DecodeAll(plain, buf[:0:int(b.RawLength)])
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
	} else {
		var err error
		out, err = r.key.Open(buf[:0], sealed)
		if err != nil {
			return nil, err
		}
	}
	if len(out) != int(b.RawLength) {
		return nil, fmt.Errorf("plain length %d, index says %d", len(out), b.RawLength)
	}
	if r.key.BlobID(out) != b.ID {
		return nil, fmt.Errorf("content does not hash to the blob ID")
	}
	return out, nil
}

// OpenBlob decrypts and verifies a sealed blob read by the caller (for
// example a whole pack read at once by check or restore).
func (r *Repository) OpenBlob(b pack.Blob, sealed, buf []byte) ([]byte, error) {
	return r.openBlob(b, sealed, buf)
}

// HasBlob reports whether a blob is stored (or being stored).
func (r *Repository) HasBlob(i id.ID) bool { return r.idx.Has(i) }

// CopySealed stores a blob that is already sealed (read from another pack)
// in a new pack, even though the index lists it: prune moves the live blobs
// out of the packs it condemns this way, without decompressing and
// compressing them again. The caller has verified the blob with OpenBlob.
// It must be called between StartWriting and Flush.
func (r *Repository) CopySealed(ctx context.Context, b pack.Blob, sealed []byte) error {
	w := r.w
	if w == nil {
		return errors.New("internal error: blob copied outside StartWriting/Flush")
	}
	w.mu.Lock()
	if _, dup := w.inflight[b.ID]; dup {
		w.mu.Unlock()
		return nil
	}
	w.inflight[b.ID] = struct{}{}
	w.mu.Unlock()
	return r.addSealed(ctx, b.Type, b.ID, sealed, int(b.RawLength), b.Compressed)
}
