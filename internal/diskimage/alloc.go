// Package diskimage reads what a backup of a whole device or disk image
// needs to know about it: its size, whether it is mounted, and, for the
// filesystems it can parse (ext2/3/4, XFS), which blocks are in use, so that
// free space is recorded as holes without being read.
package diskimage

// Allocation says which blocks of a filesystem are in use. Bytes past
// the filesystem's end count as in use: a backup reads them.
type Allocation struct {
	// BlockSize is the filesystem's block size in bytes.
	BlockSize int64
	// Blocks is the filesystem's size in blocks.
	Blocks uint64
	bits   []uint64
}

func newAllocation(bs int64, blocks uint64) *Allocation {
	return &Allocation{BlockSize: bs, Blocks: blocks, bits: make([]uint64, (blocks+63)/64)}
}

func (a *Allocation) set(b uint64) { a.bits[b/64] |= 1 << (b % 64) }

// InUse reports whether block b is in use.
func (a *Allocation) InUse(b uint64) bool {
	return b >= a.Blocks || a.bits[b/64]&(1<<(b%64)) != 0
}

// setRange marks n blocks from start in use, clipped to the filesystem.
func (a *Allocation) setRange(start, n uint64) {
	end := min(start+n, a.Blocks)
	b := start
	for ; b < end && b%64 != 0; b++ {
		a.set(b)
	}
	for ; b+64 <= end; b += 64 {
		a.bits[b/64] = ^uint64(0)
	}
	for ; b < end; b++ {
		a.set(b)
	}
}

// orBits marks in use the blocks from start whose bit is set in the
// little-endian bitmap bm, for its first n bits.
func (a *Allocation) orBits(start uint64, bm []byte, n uint64) {
	for i := uint64(0); i < n && i/8 < uint64(len(bm)); i++ {
		if bm[i/8]&(1<<(i%8)) != 0 && start+i < a.Blocks {
			a.set(start + i)
		}
	}
}

// UsedBytes is the size of the blocks in use.
func (a *Allocation) UsedBytes() int64 {
	var n int64
	for b := range a.Blocks {
		if a.InUse(b) {
			n += a.BlockSize
		}
	}
	return n
}

// Run is a range of bytes.
type Run struct{ Off, Len int64 }

// Runs returns the byte ranges in use within [off, off+n), in order and
// merged.
func (a *Allocation) Runs(off, n int64) []Run {
	var out []Run
	end := off + n
	for p := off; p < end; {
		b := uint64(p / a.BlockSize)
		next := min(int64(b+1)*a.BlockSize, end)
		if a.InUse(b) {
			if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == p {
				out[k-1].Len += next - p
			} else {
				out = append(out, Run{Off: p, Len: next - p})
			}
		}
		p = next
	}
	return out
}

// clearRange marks n blocks from start free, clipped to the filesystem.
func (a *Allocation) clearRange(start, n uint64) {
	for b := start; b < start+n && b < a.Blocks; b++ {
		a.bits[b/64] &^= 1 << (b % 64)
	}
}
