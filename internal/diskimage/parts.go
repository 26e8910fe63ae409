package diskimage

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// Map says which byte ranges of a device must be read.
type Map interface {
	Runs(off, n int64) []Run
}

// Runs makes Allocation a Map of a filesystem at the device's start.
var _ Map = (*Allocation)(nil)

// Partition is a filesystem found in a partition, and its allocation.
type Partition struct {
	Off, Len int64
	Method   string
	Alloc    *Allocation
}

// Partitioned is the Map of a partitioned disk: in the partitions whose
// filesystem was read, the blocks in use; everywhere else (the partition
// table, gaps, other partitions), everything.
type Partitioned struct {
	Parts []Partition
}

// Runs returns the ranges of [off, off+n) to read, in order and merged.
func (p *Partitioned) Runs(off, n int64) []Run {
	var out []Run
	add := func(r Run) {
		if r.Len <= 0 {
			return
		}
		if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == r.Off {
			out[k-1].Len += r.Len
			return
		}
		out = append(out, r)
	}
	end := off + n
	pos := off
	for _, pt := range p.Parts {
		ps, pe := max(pt.Off, off), min(pt.Off+pt.Len, end)
		if ps >= pe {
			continue
		}
		add(Run{pos, ps - pos})
		for _, r := range pt.Alloc.Runs(ps-pt.Off, pe-ps) {
			add(Run{r.Off + pt.Off, r.Len})
		}
		pos = pe
	}
	add(Run{pos, end - pos})
	return out
}

// partitionTable reads an MBR or GPT partition table from the start of
// r and returns the partitions' byte ranges, sorted, or nil when there
// is none. Extended MBR partitions are not followed (they are read
// whole).
func partitionTable(r io.ReaderAt, size int64) ([]Run, error) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, nil
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, nil
	}
	le := binary.LittleEndian
	var parts []Run
	gpt := false
	for i := range 4 {
		e := mbr[446+16*i:]
		typ := e[4]
		start, count := int64(le.Uint32(e[8:])), int64(le.Uint32(e[12:]))
		switch typ {
		case 0:
		case 0xEE:
			gpt = true
		case 0x05, 0x0F, 0x85:
			// extended: left to be read whole
		default:
			parts = append(parts, Run{start * 512, count * 512})
		}
	}
	if gpt {
		hdr := make([]byte, 512)
		if _, err := r.ReadAt(hdr, 512); err != nil || string(hdr[:8]) != "EFI PART" {
			return nil, fmt.Errorf("a protective MBR without a GPT header")
		}
		lba, n, esz := int64(le.Uint64(hdr[72:])), int64(le.Uint32(hdr[80:])), int64(le.Uint32(hdr[84:]))
		if esz < 128 || esz > 4096 || n > 1024 || lba*512 >= size {
			return nil, fmt.Errorf("GPT header: entry count %d, entry size %d bytes, entries at sector %d (not a table rewind can read)", n, esz, lba)
		}
		ents := make([]byte, n*esz)
		if _, err := r.ReadAt(ents, lba*512); err != nil {
			return nil, fmt.Errorf("read the GPT entries: %w", err)
		}
		parts = parts[:0]
		for i := range n {
			e := ents[i*esz:]
			if string(e[:16]) == string(make([]byte, 16)) {
				continue
			}
			first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
			if last >= first {
				parts = append(parts, Run{first * 512, (last - first + 1) * 512})
			}
		}
	}
	slices.SortFunc(parts, func(a, b Run) int { return int(a.Off/512 - b.Off/512) })
	for i, p := range parts {
		if p.Off < 0 || p.Len <= 0 || p.Off+p.Len > size || (i > 0 && parts[i-1].Off+parts[i-1].Len > p.Off) {
			return nil, fmt.Errorf("partition %d (%d bytes at %d) overlaps another or leaves the disk", i+1, p.Len, p.Off)
		}
	}
	return parts, nil
}

// PartitionsAllocation reads the partition table of the disk r and the
// ext2/3/4 or XFS filesystem of each partition. It returns nil when the
// disk has no partition table or no partition holds one of them.
func PartitionsAllocation(r io.ReaderAt, size int64) (*Partitioned, error) {
	parts, err := partitionTable(r, size)
	if err != nil || len(parts) == 0 {
		return nil, err
	}
	out := &Partitioned{}
	for _, p := range parts {
		sr := io.NewSectionReader(r, p.Off, p.Len)
		method := "ext4-bitmap"
		a, err := Ext4Allocation(sr, p.Len)
		if err != nil {
			method = "xfs-btree"
			a, err = XFSAllocation(sr, p.Len)
		}
		if err != nil {
			continue
		}
		out.Parts = append(out.Parts, Partition{Off: p.Off, Len: p.Len, Method: method, Alloc: a})
	}
	if len(out.Parts) == 0 {
		return nil, nil
	}
	return out, nil
}
