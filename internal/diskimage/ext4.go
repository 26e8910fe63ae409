package diskimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ext4 on-disk constants (the kernel's Documentation/filesystems/ext4).
const (
	ext4SuperOff = 1024
	ext4Magic    = 0xEF53

	ext4IncompatMetaBG = 0x10
	ext4Incompat64Bit  = 0x80

	ext4RoCompatSparseSuper = 0x1
	ext4RoCompatBigalloc    = 0x200
	ext4CompatSparseSuper2  = 0x200

	ext4BGBlockUninit = 0x2

	// maxExt4Blocks bounds the filesystems read (2^40 blocks: 4 PiB of
	// 4 KiB blocks) so that a corrupt superblock cannot ask for a
	// bitmap larger than memory.
	maxExt4Blocks = 1 << 40
)

// ErrNotExt4 says the device holds no ext4 (nor ext2/ext3) superblock.
var ErrNotExt4 = errors.New("no ext2/3/4 superblock")

// ext4Super holds the superblock fields the bitmap reader needs.
type ext4Super struct {
	blockSize      int64
	blocks         uint64
	firstDataBlock uint64
	blocksPerGroup uint64
	inodesPerGroup uint64
	inodeSize      uint64
	descSize       uint64
	reservedGDT    uint64
	compat         uint32
	incompat       uint32
	roCompat       uint32
	backupBGs      [2]uint64
}

// parseExt4Super decodes the 1024-byte superblock b.
func parseExt4Super(b []byte) (*ext4Super, error) {
	if len(b) < 1024 {
		return nil, ErrNotExt4
	}
	le := binary.LittleEndian
	if le.Uint16(b[0x38:]) != ext4Magic {
		return nil, ErrNotExt4
	}
	s := &ext4Super{
		blocks:         uint64(le.Uint32(b[0x04:])),
		firstDataBlock: uint64(le.Uint32(b[0x14:])),
		blocksPerGroup: uint64(le.Uint32(b[0x20:])),
		inodesPerGroup: uint64(le.Uint32(b[0x28:])),
		inodeSize:      uint64(le.Uint16(b[0x58:])),
		compat:         le.Uint32(b[0x5C:]),
		incompat:       le.Uint32(b[0x60:]),
		roCompat:       le.Uint32(b[0x64:]),
		reservedGDT:    uint64(le.Uint16(b[0xCE:])),
		descSize:       32,
	}
	logBS := le.Uint32(b[0x18:])
	if logBS > 6 {
		return nil, fmt.Errorf("ext4: block size 1024<<%d is not supported", logBS)
	}
	s.blockSize = 1024 << logBS
	if le.Uint32(b[0x4C:]) == 0 { // revision 0: fixed 128-byte inodes
		s.inodeSize = 128
	}
	if s.incompat&ext4Incompat64Bit != 0 {
		s.blocks |= uint64(le.Uint32(b[0x150:])) << 32
		s.descSize = uint64(le.Uint16(b[0xFE:]))
		if s.descSize < 32 || s.descSize > 1024 || s.descSize&(s.descSize-1) != 0 {
			return nil, fmt.Errorf("ext4: group descriptor size %d is invalid", s.descSize)
		}
	}
	s.backupBGs = [2]uint64{uint64(le.Uint32(b[0x24C:])), uint64(le.Uint32(b[0x250:]))}
	switch {
	case s.incompat&ext4IncompatMetaBG != 0:
		return nil, errors.New("ext4: the meta_bg layout is not supported")
	case s.roCompat&ext4RoCompatBigalloc != 0:
		return nil, errors.New("ext4: bigalloc (cluster bitmaps) is not supported")
	case s.blocks == 0 || s.blocks > maxExt4Blocks:
		return nil, fmt.Errorf("ext4: block count %d is out of range", s.blocks)
	case s.blocksPerGroup == 0 || s.blocksPerGroup > uint64(s.blockSize)*8:
		return nil, fmt.Errorf("ext4: %d blocks per group do not fit one bitmap block", s.blocksPerGroup)
	case s.firstDataBlock >= s.blocks:
		return nil, fmt.Errorf("ext4: first data block %d is beyond the %d blocks", s.firstDataBlock, s.blocks)
	case s.inodeSize < 128 || s.inodeSize > uint64(s.blockSize):
		return nil, fmt.Errorf("ext4: inode size %d is invalid", s.inodeSize)
	}
	return s, nil
}

// groups is the number of block groups.
func (s *ext4Super) groups() uint64 {
	return (s.blocks - s.firstDataBlock + s.blocksPerGroup - 1) / s.blocksPerGroup
}

// hasSuperBackup reports whether group g starts with a superblock and
// the group descriptor table (group 0, and backups).
func (s *ext4Super) hasSuperBackup(g uint64) bool {
	if g == 0 {
		return true
	}
	if s.compat&ext4CompatSparseSuper2 != 0 {
		return g == s.backupBGs[0] || g == s.backupBGs[1]
	}
	if s.roCompat&ext4RoCompatSparseSuper == 0 {
		return true
	}
	if g == 1 {
		return true
	}
	for _, p := range []uint64{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}

// Ext4Allocation reads the ext4 (or ext2/ext3) filesystem on r, of size
// bytes, and returns which of its blocks are in use: those its block
// bitmaps mark, and for a group whose bitmap was never initialized
// (BLOCK_UNINIT) the metadata the kernel would mark. It only reads.
// ErrNotExt4 means r holds no such filesystem.
func Ext4Allocation(r io.ReaderAt, size int64) (*Allocation, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, ext4SuperOff); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrNotExt4
		}
		return nil, fmt.Errorf("read the superblock: %w", err)
	}
	s, err := parseExt4Super(sb)
	if err != nil {
		return nil, err
	}
	if int64(s.blocks) > size/s.blockSize {
		return nil, fmt.Errorf("ext4: %d blocks of %d bytes do not fit the %d-byte device", s.blocks, s.blockSize, size)
	}
	ngroups := s.groups()
	gdt := make([]byte, ngroups*s.descSize)
	gdtOff := int64(s.firstDataBlock+1) * s.blockSize
	if _, err := r.ReadAt(gdt, gdtOff); err != nil {
		return nil, fmt.Errorf("read the group descriptors: %w", err)
	}
	return ext4Bitmaps(r, s, gdt)
}

// ext4Bitmaps builds the allocation from the group descriptors gdt.
func ext4Bitmaps(r io.ReaderAt, s *ext4Super, gdt []byte) (*Allocation, error) {
	le := binary.LittleEndian
	a := newAllocation(s.blockSize, s.blocks)
	ngroups := s.groups()
	gdtBlocks := (ngroups*s.descSize + uint64(s.blockSize) - 1) / uint64(s.blockSize)
	itableBlocks := (s.inodesPerGroup*s.inodeSize + uint64(s.blockSize) - 1) / uint64(s.blockSize)
	// Blocks before the first data block (the boot block of 1 KiB
	// filesystems) hold the superblock's sector: kept.
	a.setRange(0, s.firstDataBlock+1)
	buf := make([]byte, s.blockSize)
	for g := range ngroups {
		d := gdt[g*s.descSize : (g+1)*s.descSize]
		blockBitmap := uint64(le.Uint32(d[0x0:]))
		inodeBitmap := uint64(le.Uint32(d[0x4:]))
		inodeTable := uint64(le.Uint32(d[0x8:]))
		flags := le.Uint16(d[0x12:])
		if s.descSize >= 64 {
			blockBitmap |= uint64(le.Uint32(d[0x20:])) << 32
			inodeBitmap |= uint64(le.Uint32(d[0x24:])) << 32
			inodeTable |= uint64(le.Uint32(d[0x28:])) << 32
		}
		// A group's own metadata is in use whatever its bitmap says (an
		// uninitialized bitmap does not list it).
		a.setRange(blockBitmap, 1)
		a.setRange(inodeBitmap, 1)
		a.setRange(inodeTable, itableBlocks)
		start := s.firstDataBlock + g*s.blocksPerGroup
		n := min(s.blocksPerGroup, s.blocks-start)
		if s.hasSuperBackup(g) {
			a.setRange(start, 1+gdtBlocks+s.reservedGDT)
		}
		if flags&ext4BGBlockUninit != 0 {
			continue
		}
		if blockBitmap >= s.blocks {
			return nil, fmt.Errorf("ext4: group %d's block bitmap at block %d is beyond the filesystem", g, blockBitmap)
		}
		if _, err := r.ReadAt(buf, int64(blockBitmap)*s.blockSize); err != nil {
			return nil, fmt.Errorf("read group %d's block bitmap: %w", g, err)
		}
		a.orBits(start, buf, n)
	}
	return a, nil
}
