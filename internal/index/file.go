// Package index maps blob IDs to their place in packs. Index files are
// written alongside the packs a backup adds; in memory all of them merge
// into one compact, sorted table (see Index).
package index

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
)

// ErrCorrupt is wrapped by every error about a malformed index file.
var ErrCorrupt = errors.New("corrupt index")

const fileVersion = 1

// PackEntry lists the blobs of one pack.
type PackEntry struct {
	ID    id.ID
	Blobs []pack.Blob
}

// File is the content of one index file. Supersedes names older index files
// whose content this one includes (written by compaction); readers that see
// both use this one and ignore the others.
type File struct {
	Supersedes []id.ID
	Packs      []PackEntry
}

// Encode returns the plaintext encoding of f (docs/FORMAT.md, "Index
// files"): version byte, uvarint count and IDs of superseded files, uvarint
// pack count, then per pack its ID, uvarint blob count, and per blob
// type (1), flags (1), uvarint offset, uvarint sealed length, uvarint plain
// length and the 32-byte blob ID.
func (f *File) Encode() []byte {
	n := 16 + len(f.Supersedes)*id.Size
	for _, p := range f.Packs {
		n += id.Size + 4 + len(p.Blobs)*(id.Size+14)
	}
	b := make([]byte, 0, n)
	b = append(b, fileVersion)
	b = binary.AppendUvarint(b, uint64(len(f.Supersedes)))
	for _, s := range f.Supersedes {
		b = append(b, s[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(f.Packs)))
	for _, p := range f.Packs {
		b = append(b, p.ID[:]...)
		b = binary.AppendUvarint(b, uint64(len(p.Blobs)))
		for _, e := range p.Blobs {
			var flags byte
			if e.Compressed {
				flags = pack.FlagCompressed
			}
			b = append(b, byte(e.Type), flags)
			b = binary.AppendUvarint(b, uint64(e.Offset))
			b = binary.AppendUvarint(b, uint64(e.Length))
			b = binary.AppendUvarint(b, uint64(e.RawLength))
			b = append(b, e.ID[:]...)
		}
	}
	return b
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint(max uint64, what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > max {
		r.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) id(what string) (i id.ID) {
	if r.err != nil {
		return i
	}
	if len(r.b) < id.Size {
		r.err = fmt.Errorf("%w: %s cut short", ErrCorrupt, what)
		return i
	}
	copy(i[:], r.b)
	r.b = r.b[id.Size:]
	return i
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = fmt.Errorf("%w: %s cut short", ErrCorrupt, what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Decode parses the plaintext of an index file.
func Decode(b []byte) (*File, error) {
	if len(b) == 0 || b[0] != fileVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	r := &reader{b: b[1:]}
	f := &File{}
	// Counts are bounded by what the remaining bytes could hold, so that a
	// corrupt count cannot cause a huge allocation.
	ns := r.uvarint(uint64(len(r.b)/id.Size), "superseded count")
	for i := uint64(0); i < ns && r.err == nil; i++ {
		f.Supersedes = append(f.Supersedes, r.id("superseded ID"))
	}
	np := r.uvarint(uint64(len(r.b)/(id.Size+1)), "pack count")
	f.Packs = make([]PackEntry, 0, np)
	for i := uint64(0); i < np && r.err == nil; i++ {
		p := PackEntry{ID: r.id("pack ID")}
		nb := r.uvarint(uint64(len(r.b)/(id.Size+5)), "blob count")
		p.Blobs = make([]pack.Blob, 0, nb)
		for j := uint64(0); j < nb && r.err == nil; j++ {
			var e pack.Blob
			e.Type = pack.BlobType(r.byte("blob type"))
			flags := r.byte("blob flags")
			e.Compressed = flags&pack.FlagCompressed != 0
			e.Offset = uint32(r.uvarint(1<<32-1, "offset"))
			e.Length = uint32(r.uvarint(pack.MaxBlobSize+1024, "length"))
			e.RawLength = uint32(r.uvarint(pack.MaxBlobSize, "plain length"))
			e.ID = r.id("blob ID")
			if r.err == nil && (e.Type != pack.DataBlob && e.Type != pack.TreeBlob || flags&^pack.FlagCompressed != 0) {
				r.err = fmt.Errorf("%w: blob %s has bad type or flags", ErrCorrupt, e.ID.Short())
			}
			p.Blobs = append(p.Blobs, e)
		}
		f.Packs = append(f.Packs, p)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return f, nil
}
