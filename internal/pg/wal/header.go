package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The long page header that starts every WAL segment
// (XLogLongPageHeaderData in PostgreSQL's access/xlog_internal.h), in the
// server's byte order; rewind reads little-endian servers only:
//
//	offset size field
//	     0    2 xlp_magic       WAL format version (0xD110 for PostgreSQL 15)
//	     2    2 xlp_info        flag bits; XLP_LONG_HEADER (0x0002) is set
//	     4    4 xlp_tli         timeline of the page's first record
//	     8    8 xlp_pageaddr    LSN of the page's first byte
//	    16    4 xlp_rem_len     bytes of a record continued from the last page
//	    20    4 (padding)
//	    24    8 xlp_sysid       the cluster's system identifier
//	    32    4 xlp_seg_size    segment size in bytes
//	    36    4 xlp_xlog_blcksz WAL page size in bytes
const (
	// LongHeaderSize is the size of the long page header.
	LongHeaderSize = 40
	xlpLongHeader  = 0x0002
)

// ErrNotWAL is wrapped by ParseLongHeader's errors.
var ErrNotWAL = errors.New("not a PostgreSQL WAL segment")

// Header is what rewind reads from a segment's first page header.
type Header struct {
	Magic     uint16
	Info      uint16
	Timeline  uint32
	PageAddr  LSN
	SystemID  uint64
	SegSize   uint32
	BlockSize uint32
}

// ParseLongHeader decodes the long page header at the start of a WAL
// segment, b being at least its first LongHeaderSize bytes, and checks that
// it is one: the long-header flag set, a power-of-two segment size from
// 1 MiB to 1 GiB and page size from 1 KiB to 64 KiB, a page address at
// the start of a segment, and a system identifier.
func ParseLongHeader(b []byte) (Header, error) {
	if len(b) < LongHeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than a page header (%d)", ErrNotWAL, len(b), LongHeaderSize)
	}
	le := binary.LittleEndian
	h := Header{
		Magic:     le.Uint16(b[0:]),
		Info:      le.Uint16(b[2:]),
		Timeline:  le.Uint32(b[4:]),
		PageAddr:  LSN(le.Uint64(b[8:])),
		SystemID:  le.Uint64(b[24:]),
		SegSize:   le.Uint32(b[32:]),
		BlockSize: le.Uint32(b[36:]),
	}
	pow2 := func(v, lo, hi uint32) bool { return v >= lo && v <= hi && v&(v-1) == 0 }
	switch {
	case h.Magic&0xFF00 != 0xD100:
		return Header{}, fmt.Errorf("%w: page magic %#04x (PostgreSQL writes 0xD1xx)", ErrNotWAL, h.Magic)
	case h.Info&xlpLongHeader == 0:
		return Header{}, fmt.Errorf("%w: the first page has no long header (flags %#04x)", ErrNotWAL, h.Info)
	case !pow2(h.SegSize, 1<<20, 1<<30):
		return Header{}, fmt.Errorf("%w: segment size %d is not a power of two from 1 MiB to 1 GiB", ErrNotWAL, h.SegSize)
	case !pow2(h.BlockSize, 1<<10, 1<<16):
		return Header{}, fmt.Errorf("%w: WAL page size %d is not a power of two from 1 KiB to 64 KiB", ErrNotWAL, h.BlockSize)
	case uint64(h.PageAddr)%uint64(h.SegSize) != 0:
		return Header{}, fmt.Errorf("%w: first page at %s, not at the start of a segment", ErrNotWAL, h.PageAddr)
	case h.SystemID == 0:
		return Header{}, fmt.Errorf("%w: system identifier 0", ErrNotWAL)
	case h.Timeline == 0:
		return Header{}, fmt.Errorf("%w: timeline 0", ErrNotWAL)
	}
	return h, nil
}

// ControlSystemID reads the system identifier of the cluster in pgdata
// from global/pg_control, whose first field it is.
func ControlSystemID(pgdata string) (uint64, error) {
	f, err := os.Open(filepath.Join(pgdata, "global", "pg_control"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	id := binary.LittleEndian.Uint64(b[:])
	if id == 0 {
		return 0, fmt.Errorf("%s: system identifier 0", f.Name())
	}
	return id, nil
}
