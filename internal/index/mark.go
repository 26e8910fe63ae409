package index

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
)

const markVersion = 1

// maxMarkHeader bounds the JSON part of a mark, so that a corrupt length
// cannot make a reader allocate without limit.
const maxMarkHeader = 64 << 20

// Mark is a prune mark (docs/FORMAT.md §12): packs condemned by the first
// phase of a prune, with every blob they hold, and what is needed to decide
// later whether they may be deleted.
type Mark struct {
	// Time is when the mark was made (the prune's clock).
	Time time.Time `json:"time"`
	// Host is the host that ran the prune.
	Host string `json:"host"`
	// Snapshots lists every snapshot the prune saw. A snapshot that is not
	// in this list is new, and may reference condemned blobs.
	Snapshots []id.ID `json:"snapshots"`
	// Fenced is true once Locks has been recorded, after the index files
	// that still listed the condemned packs were superseded.
	Fenced bool `json:"fenced"`
	// Locks lists the IDs of the locks that were held when the fence was
	// recorded. The packs may be deleted once none of them is held.
	Locks []string `json:"locks"`
	// Packs are the condemned packs with all their blobs.
	Packs []PackEntry `json:"-"`
}

// Encode returns the plaintext of a mark: version byte, uvarint length
// and the JSON header, then the condemned packs encoded as an index file.
func (m *Mark) Encode() []byte {
	hdr, err := json.Marshal(m)
	if err != nil {
		// Only plain fields; marshalling cannot fail.
		panic(err)
	}
	b := []byte{markVersion}
	b = binary.AppendUvarint(b, uint64(len(hdr)))
	b = append(b, hdr...)
	return append(b, (&File{Packs: m.Packs}).Encode()...)
}

// DecodeMark parses the plaintext of a mark.
func DecodeMark(b []byte) (*Mark, error) {
	if len(b) == 0 || b[0] != markVersion {
		return nil, fmt.Errorf("%w: mark: unknown version", ErrCorrupt)
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > maxMarkHeader || n > uint64(len(b)-1-k) {
		return nil, fmt.Errorf("%w: mark: bad header length", ErrCorrupt)
	}
	hdr := b[1+k : 1+k+int(n)]
	m := &Mark{}
	if err := json.Unmarshal(hdr, m); err != nil {
		return nil, fmt.Errorf("%w: mark header: %v", ErrCorrupt, err)
	}
	f, err := Decode(b[1+k+int(n):])
	if err != nil {
		return nil, fmt.Errorf("mark packs: %w", err)
	}
	if len(f.Supersedes) != 0 {
		return nil, fmt.Errorf("%w: mark supersedes index files", ErrCorrupt)
	}
	m.Packs = f.Packs
	return m, nil
}
