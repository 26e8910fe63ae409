package chunker

import (
	"fmt"
	"math/bits"
)

// Limits enforced by Params.Validate.
const (
	// MinSizeLimit is the smallest allowed Params.Min. It equals the gear
	// hash window (64 bytes), so the window never reaches across a cut.
	MinSizeLimit = 64
	// MaxSizeLimit is the largest allowed Params.Max (16 MiB).
	MaxSizeLimit = 16 << 20
)

// The named profiles. They are the only place chunk sizes are chosen; the
// repository records the profile's numbers, so tuning them later changes
// only new repositories.
var (
	// DefaultParams is for ordinary files.
	DefaultParams = Params{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}

	// SmallParams is for large files rewritten in place (databases, VM and
	// disk images), where small edits should re-store little data.
	SmallParams = Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
)

// Params are the chunk size bounds, in bytes.
type Params struct {
	// Min is the smallest chunk; only the last chunk of a stream may be
	// shorter.
	Min uint32
	// Avg is the normal size, a power of two. The mask changes at this
	// length (see the package doc); the mean chunk size on random data is
	// about 1.1×Avg with Min = Avg/4 and Max = 4×Avg.
	Avg uint32
	// Max is the largest chunk. A chunk reaching it is cut there.
	Max uint32
}

// Validate checks MinSizeLimit <= Min < Avg < Max <= MaxSizeLimit and that
// Avg is a power of two.
func (p Params) Validate() error {
	switch {
	case p.Min < MinSizeLimit:
		return fmt.Errorf("chunker params %v: min below %d", p, MinSizeLimit)
	case p.Max > MaxSizeLimit:
		return fmt.Errorf("chunker params %v: max above %d", p, MaxSizeLimit)
	case !(p.Min < p.Avg && p.Avg < p.Max):
		return fmt.Errorf("chunker params %v: want min < avg < max", p)
	case bits.OnesCount32(p.Avg) != 1:
		return fmt.Errorf("chunker params %v: avg is not a power of two", p)
	}
	return nil
}

// String formats the params as "min/avg/max" in bytes.
func (p Params) String() string {
	return fmt.Sprintf("%d/%d/%d", p.Min, p.Avg, p.Max)
}

// masks returns the two masks of normalized chunking, level normLevel:
// maskS (Avg bits + normLevel set bits, used before the normal size) and
// maskL (Avg bits − normLevel set bits, used from it on). Both take the
// top bits of the hash, whose window is the longest.
func (p Params) masks() (maskS, maskL uint64) {
	avgBits := bits.TrailingZeros32(p.Avg)
	top := func(n int) uint64 { return ^uint64(0) << (64 - n) }
	return top(avgBits + normLevel), top(avgBits - normLevel)
}
