package chunker

import (
	"encoding/binary"
	"fmt"

	"github.com/zeebo/blake3"
)

// SecretSize is the length of the per-repository chunker secret.
const SecretSize = 32

// windowSize is the number of bytes a gear hash value depends on: each
// step shifts the hash left by one bit, so a byte's table entry has left
// all 64 bits after 64 more steps.
const windowSize = 64

// normLevel is the normalized chunking level: the mask has this many bits
// more than log2(Avg) before the normal size and this many fewer after it.
const normLevel = 2

// gearContext is the message hashed, under the secret as BLAKE3 key, to
// derive the gear table.
const gearContext = "rewind chunker gear table v1"

// Chunker finds content-defined chunk boundaries for one secret and one
// set of Params. It is immutable after New and safe to share between
// goroutines; the state of one stream lives in a Reader.
type Chunker struct {
	gear  [256]uint64
	min   int
	avg   int
	max   int
	maskS uint64
	maskL uint64
}

// New validates p and derives the gear table from secret (see the package
// doc). It costs a few microseconds; build one Chunker per repository and
// profile and reuse it.
func New(secret [SecretSize]byte, p Params) (*Chunker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Chunker{min: int(p.Min), avg: int(p.Avg), max: int(p.Max)}
	c.maskS, c.maskL = p.masks()

	h, err := blake3.NewKeyed(secret[:])
	if err != nil {
		return nil, fmt.Errorf("chunker: gear table: %w", err)
	}
	_, _ = h.WriteString(gearContext)
	var raw [256 * 8]byte
	if _, err := h.Digest().Read(raw[:]); err != nil {
		return nil, fmt.Errorf("chunker: gear table: %w", err)
	}
	for i := range c.gear {
		c.gear[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return c, nil
}

// Params returns the size bounds the Chunker was built with.
func (c *Chunker) Params() Params {
	return Params{Min: uint32(c.min), Avg: uint32(c.avg), Max: uint32(c.max)}
}

// Cut returns the length of the first chunk of data, taking data as the
// rest of the stream: a boundary found within Max bytes, else
// min(len(data), Max). It returns len(data) when len(data) <= Min. To cut
// a stream whose end is not in data yet, data must hold at least Max bytes;
// Reader does that bookkeeping.
func (c *Chunker) Cut(data []byte) int {
	n := len(data)
	if n <= c.min {
		return n
	}
	if n > c.max {
		n = c.max
	}
	data = data[:n]

	// A cut after data[i] makes a chunk of i+1 bytes. Lengths below Avg
	// test maskS, lengths from Avg on test maskL.
	normal := min(c.avg-1, n)
	if i := scan(&c.gear, data, c.min-1, normal, c.maskS); i >= 0 {
		return i + 1
	}
	if i := scan(&c.gear, data, normal, n, c.maskL); i >= 0 {
		return i + 1
	}
	return n
}

// CutFinal is Cut for a stream that may still grow: final tells whether
// the cut stays where it is whatever bytes are appended to data. It does
// when a boundary was found before data's end (Cut's scans look for the
// first hit and the ranges they scan only grow with data, the mask of a
// length never changes) or the chunk reached Max. A chunk that merely ends
// with data is not final. Since a chunk's boundary depends only on its own
// bytes, a growing file is chunked incrementally by keeping its final
// chunks and cutting again from the last final boundary.
func (c *Chunker) CutFinal(data []byte) (n int, final bool) {
	n = c.Cut(data)
	return n, n < len(data) || n == c.max
}
