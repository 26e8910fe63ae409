package tree

import "github.com/rewind-backup/rewind/internal/id"

// DefaultSplit is the size at which a directory listing is cut into a new
// tree blob, so that no single blob (and no single allocation) grows with the
// size of a directory.
const DefaultSplit = 512 << 10

// MaxInlineChunks is the largest chunk list kept inside a node; longer lists
// go to content-list blobs of at most this many chunks each.
const MaxInlineChunks = 8192

// Builder encodes the nodes of one directory, in name order, into one or
// more KindNodes blobs. Emit stores a finished blob and returns its ID.
type Builder struct {
	Emit  func(blob []byte) (id.ID, error)
	Split int

	buf []byte
	ids []id.ID
}

// Add appends one node, emitting a blob first if the current one is full.
func (b *Builder) Add(n *Node) error {
	if len(b.buf) == 0 {
		b.buf = append(b.buf, KindNodes)
	}
	b.buf = AppendNode(b.buf, n)
	split := b.Split
	if split == 0 {
		split = DefaultSplit
	}
	if len(b.buf) >= split {
		return b.flush()
	}
	return nil
}

func (b *Builder) flush() error {
	i, err := b.Emit(b.buf)
	if err != nil {
		return err
	}
	b.ids = append(b.ids, i)
	b.buf = b.buf[:0]
	return nil
}

// Finish emits what is left and returns the IDs of the directory's blobs,
// in order. An empty directory is one blob holding no nodes. The Builder can
// be reused afterwards.
func (b *Builder) Finish() ([]id.ID, error) {
	if len(b.buf) > 0 || len(b.ids) == 0 {
		if len(b.buf) == 0 {
			b.buf = append(b.buf, KindNodes)
		}
		if err := b.flush(); err != nil {
			return nil, err
		}
	}
	ids := b.ids
	b.ids = nil
	return ids, nil
}

// EncodeContentList returns a KindContentList blob for cs.
func EncodeContentList(cs []Chunk) []byte {
	buf := make([]byte, 1, 1+contentLen(cs))
	buf[0] = KindContentList
	return AppendContent(buf, cs)
}
