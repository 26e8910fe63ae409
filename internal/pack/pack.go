// Package pack reads and writes pack files: many encrypted blobs followed by
// an encrypted header that lists them, so that a pack describes itself and
// the index can be rebuilt from the packs alone.
//
// Layout (docs/FORMAT.md, "Packs"):
//
//	blob 0 | blob 1 | ... | blob n-1 | sealed header | header length (uint32 LE)
//
// Each blob is an object sealed by crypto.Key.Seal (nonce, ciphertext, tag)
// whose plaintext is the blob's bytes, zstd-compressed when the Compressed
// flag is set. The header plaintext is one version byte (1) followed by one
// 42-byte entry per blob, in file order:
//
//	type (1) | flags (1) | sealed length (uint32 LE) | plain length (uint32 LE) | blob ID (32)
package pack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/rewind-backup/rewind/internal/id"
)

// BlobType says what a blob holds. The numbers are part of the format.
type BlobType uint8

// Blob types.
const (
	DataBlob BlobType = 1
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// Flag bits of a header entry.
const (
	FlagCompressed uint8 = 1
)

const (
	headerVersion = 1
	// EntrySize is the size of one header entry.
	EntrySize = 42
	// TrailerSize is the size of the header length at the end of a pack.
	TrailerSize = 4
	// MaxBlobSize bounds the plain length of one blob.
	MaxBlobSize = 64 << 20
	// MaxHeaderSize bounds the sealed header, so a corrupt trailer cannot
	// make a reader allocate without limit.
	MaxHeaderSize = 16 << 20
)

// ErrCorrupt is wrapped by every error about a malformed pack.
var ErrCorrupt = errors.New("corrupt pack")

// Blob locates one blob inside a pack.
type Blob struct {
	Type       BlobType
	ID         id.ID
	Offset     uint32
	Length     uint32 // sealed length in the pack
	RawLength  uint32 // plain length of the blob
	Compressed bool
}

// Sealer is the part of a repository key that packs need.
type Sealer interface {
	Seal(dst, plaintext []byte) []byte
	Open(dst, ciphertext []byte) ([]byte, error)
}

// Writer writes one pack to an io.Writer as blobs are added. It is not
// safe for concurrent use.
type Writer struct {
	w     io.Writer
	off   int64
	blobs []Blob
}

// NewWriter returns a writer that writes a pack to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// Add appends a sealed blob.
func (w *Writer) Add(t BlobType, i id.ID, sealed []byte, rawLen int, compressed bool) error {
	if w.off+int64(len(sealed)) > 1<<32-1 {
		return fmt.Errorf("pack would exceed 4 GiB")
	}
	if _, err := w.w.Write(sealed); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	w.blobs = append(w.blobs, Blob{
		Type: t, ID: i, Offset: uint32(w.off), Length: uint32(len(sealed)),
		RawLength: uint32(rawLen), Compressed: compressed,
	})
	w.off += int64(len(sealed))
	return nil
}

// Size returns the bytes written so far.
func (w *Writer) Size() int64 { return w.off }

// Count returns the number of blobs added.
func (w *Writer) Count() int { return len(w.blobs) }

// Finish writes the sealed header and trailer and returns the blobs and
// the pack's total size. The Writer must not be used afterwards.
func (w *Writer) Finish(key Sealer) ([]Blob, int64, error) {
	hdr := make([]byte, 1, 1+len(w.blobs)*EntrySize)
	hdr[0] = headerVersion
	for _, b := range w.blobs {
		hdr = appendEntry(hdr, b)
	}
	sealed := key.Seal(nil, hdr)
	sealed = binary.LittleEndian.AppendUint32(sealed, uint32(len(sealed)))
	if _, err := w.w.Write(sealed); err != nil {
		return nil, 0, fmt.Errorf("write pack header: %w", err)
	}
	return w.blobs, w.off + int64(len(sealed)), nil
}

func appendEntry(b []byte, e Blob) []byte {
	var flags uint8
	if e.Compressed {
		flags |= FlagCompressed
	}
	b = append(b, byte(e.Type), flags)
	b = binary.LittleEndian.AppendUint32(b, e.Length)
	b = binary.LittleEndian.AppendUint32(b, e.RawLength)
	return append(b, e.ID[:]...)
}

// HeaderLength reads the trailer of a pack of the given size and returns the
// sealed header length.
func HeaderLength(trailer []byte, packSize int64) (int, error) {
	if len(trailer) != TrailerSize || packSize < TrailerSize {
		return 0, fmt.Errorf("%w: pack of %d bytes is too short", ErrCorrupt, packSize)
	}
	n := int64(binary.LittleEndian.Uint32(trailer))
	if n > MaxHeaderSize || n+TrailerSize > packSize {
		return 0, fmt.Errorf("%w: header length %d does not fit a pack of %d bytes", ErrCorrupt, n, packSize)
	}
	return int(n), nil
}

// ParseHeader decrypts and decodes a sealed header. headerOffset is where
// the header starts in the pack; blobs must tile the pack up to it exactly.
func ParseHeader(key Sealer, sealed []byte, headerOffset int64) ([]Blob, error) {
	hdr, err := key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCorrupt, err)
	}
	if len(hdr) < 1 || hdr[0] != headerVersion {
		return nil, fmt.Errorf("%w: unknown header version", ErrCorrupt)
	}
	hdr = hdr[1:]
	if len(hdr)%EntrySize != 0 {
		return nil, fmt.Errorf("%w: header of %d bytes is not whole entries", ErrCorrupt, len(hdr))
	}
	blobs := make([]Blob, 0, len(hdr)/EntrySize)
	var off int64
	for ; len(hdr) > 0; hdr = hdr[EntrySize:] {
		b := Blob{
			Type:       BlobType(hdr[0]),
			Compressed: hdr[1]&FlagCompressed != 0,
			Offset:     uint32(off),
			Length:     binary.LittleEndian.Uint32(hdr[2:]),
			RawLength:  binary.LittleEndian.Uint32(hdr[6:]),
		}
		copy(b.ID[:], hdr[10:42])
		if b.Type != DataBlob && b.Type != TreeBlob {
			return nil, fmt.Errorf("%w: blob %s has unknown type %d", ErrCorrupt, b.ID.Short(), hdr[0])
		}
		if hdr[1]&^FlagCompressed != 0 || b.RawLength > MaxBlobSize || b.Length > MaxBlobSize+1024 {
			return nil, fmt.Errorf("%w: blob %s has bad flags or length", ErrCorrupt, b.ID.Short())
		}
		off += int64(b.Length)
		if off > headerOffset {
			return nil, fmt.Errorf("%w: blob %s reaches past the header", ErrCorrupt, b.ID.Short())
		}
		blobs = append(blobs, b)
	}
	if off != headerOffset {
		return nil, fmt.Errorf("%w: blobs cover %d bytes, header starts at %d", ErrCorrupt, off, headerOffset)
	}
	return blobs, nil
}
