package walparse

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// RelFork is one fork of a relation.
type RelFork struct {
	RelFileNode
	Fork uint8
}

// Changes is what the WAL of an LSN range says about relation files: the
// blocks its records reference, and the relations whose files it creates
// or truncates (their files must be read whole).
type Changes struct {
	// Blocks are the referenced blocks of each relation fork.
	Blocks map[RelFork]map[uint32]struct{}
	// Whole are relations created or truncated in the range, with why.
	Whole map[RelFileNode]string
	// Structural, when set, says why no file may be trusted from the
	// parent: a database or tablespace was created or dropped.
	Structural string
	// Records counts the records read; BlockRefs their block references.
	Records, BlockRefs int64
}

// NewChanges returns an empty set.
func NewChanges() *Changes {
	return &Changes{Blocks: map[RelFork]map[uint32]struct{}{}, Whole: map[RelFileNode]string{}}
}

// Add records what rec changes.
func (c *Changes) Add(rec *Record) {
	c.Records++
	for _, b := range rec.Blocks {
		c.BlockRefs++
		k := RelFork{b.Node, b.Fork}
		m := c.Blocks[k]
		if m == nil {
			m = map[uint32]struct{}{}
			c.Blocks[k] = m
		}
		m[b.Block] = struct{}{}
	}
	info := rec.Info & 0xF0
	le := binary.LittleEndian
	switch rec.RmID {
	case RmSMGR:
		// xl_smgr_create: rnode (12 bytes), fork (4); xl_smgr_truncate:
		// blkno (4), rnode (12), flags (4).
		d := rec.MainData
		switch {
		case info == smgrCreate && len(d) >= 12:
			n := RelFileNode{le.Uint32(d[0:]), le.Uint32(d[4:]), le.Uint32(d[8:])}
			c.Whole[n] = "created at " + lsnString(rec.LSN)
		case info == smgrTruncate && len(d) >= 16:
			n := RelFileNode{le.Uint32(d[4:]), le.Uint32(d[8:]), le.Uint32(d[12:])}
			c.Whole[n] = "truncated at " + lsnString(rec.LSN)
		default:
			if c.Structural == "" {
				c.Structural = fmt.Sprintf("a storage record (info %02X) at %s that rewind does not read", rec.Info, lsnString(rec.LSN))
			}
		}
	case RmDBase, RmTblspc:
		if c.Structural == "" {
			what := "database"
			if rec.RmID == RmTblspc {
				what = "tablespace"
			}
			c.Structural = fmt.Sprintf("a %s was created or dropped at %s", what, lsnString(rec.LSN))
		}
	}
}

// Count returns how many distinct blocks the set holds.
func (c *Changes) Count() int64 {
	var n int64
	for _, m := range c.Blocks {
		n += int64(len(m))
	}
	return n
}

// FileBlocks returns the sorted blocks of fork k that fall in segment
// file segNo of the relation (RELSEG_SIZE blocks per file), as block
// numbers within that file.
func (c *Changes) FileBlocks(k RelFork, segNo uint32) []uint32 {
	const relSeg = 1 << 30 / BlockSize
	var out []uint32
	lo := uint64(segNo) * relSeg
	for b := range c.Blocks[k] {
		if uint64(b) >= lo && uint64(b) < lo+relSeg {
			out = append(out, uint32(uint64(b)-lo))
		}
	}
	slices.Sort(out)
	return out
}
