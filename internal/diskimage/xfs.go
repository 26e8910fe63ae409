package diskimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrNotXFS says the device holds no XFS superblock.
var ErrNotXFS = errors.New("no XFS superblock")

// XFS on-disk constants (the kernel's fs/xfs/libxfs/xfs_format.h).
const (
	xfsSBMagic   = 0x58465342 // "XFSB"
	xfsAGFMagic  = 0x58414746 // "XAGF"
	xfsBnoMagic  = 0x41425442 // "ABTB", v4 by-block free-space btree
	xfsBno3Magic = 0x41423342 // "AB3B", v5 (CRC) one
	// maxXFSNodes bounds the btree blocks visited in one AG, so that a
	// corrupt tree (a cycle) cannot loop.
	maxXFSNodes = 1 << 20
)

// XFSAllocation reads the XFS filesystem on r, of size bytes, and
// returns which of its blocks are in use: all but the extents its
// by-block free-space B+trees (one per allocation group) list. It only
// reads. ErrNotXFS means r holds no XFS.
func XFSAllocation(r io.ReaderAt, size int64) (*Allocation, error) {
	be := binary.BigEndian
	sb := make([]byte, 512)
	if _, err := r.ReadAt(sb, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrNotXFS
		}
		return nil, fmt.Errorf("read the superblock: %w", err)
	}
	if be.Uint32(sb) != xfsSBMagic {
		return nil, ErrNotXFS
	}
	bs := int64(be.Uint32(sb[4:]))
	dblocks := be.Uint64(sb[8:])
	agblocks := uint64(be.Uint32(sb[84:]))
	agcount := uint64(be.Uint32(sb[88:]))
	sectsize := int64(be.Uint16(sb[102:]))
	crc := be.Uint16(sb[100:])&0xF == 5
	switch {
	case bs < 512 || bs > 65536 || bs&(bs-1) != 0:
		return nil, fmt.Errorf("xfs: block size %d is invalid", bs)
	case sectsize < 512 || sectsize > bs || sectsize&(sectsize-1) != 0:
		return nil, fmt.Errorf("xfs: sector size %d is invalid", sectsize)
	case dblocks == 0 || dblocks > maxExt4Blocks || int64(dblocks) > size/bs:
		return nil, fmt.Errorf("xfs: %d blocks of %d bytes do not fit the %d-byte device", dblocks, bs, size)
	case agblocks == 0 || agcount == 0 || agcount > dblocks || (agcount-1)*agblocks >= dblocks:
		return nil, fmt.Errorf("xfs: %d groups of %d blocks do not match %d blocks", agcount, agblocks, dblocks)
	}
	hdr := int64(16)
	magic := uint32(xfsBnoMagic)
	if crc {
		hdr, magic = 56, xfsBno3Magic
	}
	a := newAllocation(bs, dblocks)
	a.setRange(0, dblocks)
	buf := make([]byte, bs)
	for ag := range agcount {
		agStart := ag * agblocks
		agLen := min(agblocks, dblocks-agStart)
		agf := make([]byte, sectsize)
		if _, err := r.ReadAt(agf, int64(agStart)*bs+sectsize); err != nil {
			return nil, fmt.Errorf("read AG %d's header: %w", ag, err)
		}
		if be.Uint32(agf) != xfsAGFMagic {
			return nil, fmt.Errorf("xfs: AG %d's free-space header has a bad magic", ag)
		}
		root := uint64(be.Uint32(agf[16:]))
		levels := be.Uint32(agf[28:])
		if levels == 0 || levels > 16 {
			return nil, fmt.Errorf("xfs: AG %d's free-space tree has %d levels", ag, levels)
		}
		visited := 0
		var walk func(agbno uint64, level uint32) error
		walk = func(agbno uint64, level uint32) error {
			if visited++; visited > maxXFSNodes {
				return fmt.Errorf("xfs: AG %d's free-space tree is too large or loops", ag)
			}
			if agbno >= agLen {
				return fmt.Errorf("xfs: AG %d: tree block %d is outside the group", ag, agbno)
			}
			if _, err := r.ReadAt(buf, int64(agStart+agbno)*bs); err != nil {
				return fmt.Errorf("read AG %d block %d: %w", ag, agbno, err)
			}
			if be.Uint32(buf) != magic {
				return fmt.Errorf("xfs: AG %d block %d is not a free-space tree block", ag, agbno)
			}
			lvl := uint32(be.Uint16(buf[4:]))
			n := int64(be.Uint16(buf[6:]))
			if lvl != level {
				return fmt.Errorf("xfs: AG %d block %d is at level %d, want %d", ag, agbno, lvl, level)
			}
			if level == 0 {
				if hdr+n*8 > bs {
					return fmt.Errorf("xfs: AG %d block %d holds too many records", ag, agbno)
				}
				for i := range n {
					rec := buf[hdr+i*8:]
					start, count := uint64(be.Uint32(rec)), uint64(be.Uint32(rec[4:]))
					if start+count > agLen {
						return fmt.Errorf("xfs: AG %d: free extent %d+%d is outside the group", ag, start, count)
					}
					a.clearRange(agStart+start, count)
				}
				return nil
			}
			maxrecs := (bs - hdr) / 12
			if n > maxrecs {
				return fmt.Errorf("xfs: AG %d block %d holds too many keys", ag, agbno)
			}
			ptrs := make([]uint64, n)
			for i := range n {
				ptrs[i] = uint64(be.Uint32(buf[hdr+maxrecs*8+i*4:]))
			}
			for _, p := range ptrs {
				if err := walk(p, level-1); err != nil {
					return err
				}
			}
			return nil
		}
		if err := walk(root, levels-1); err != nil {
			return nil, err
		}
	}
	return a, nil
}
