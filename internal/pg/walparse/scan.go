package walparse

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Page headers (XLogPageHeaderData, XLogLongPageHeaderData): every 8 KiB
// WAL page starts with a short header (24 bytes), the first page of a
// segment with a long one (40 bytes):
//
//	offset size field
//	     0    2 xlp_magic     0xD110 for PostgreSQL 15
//	     2    2 xlp_info      XLP_* flags
//	     4    4 xlp_tli       timeline of the page's first record
//	     8    8 xlp_pageaddr  LSN of the page's first byte
//	    16    4 xlp_rem_len   bytes of a record continued from the previous page
//	    20    4 (padding)
//	    24    8 xlp_sysid     (long header) system identifier
//	    32    4 xlp_seg_size  (long header) segment size
//	    36    4 xlp_xlog_blcksz (long header) page size
//
// A record starts at an 8-byte aligned LSN, after the page header when it
// starts a page; its bytes continue on the next pages after their headers,
// which then have XLP_FIRST_IS_CONTRECORD and xlp_rem_len set.
const (
	shortHeaderSize = 24
	longHeaderSize  = 40
	// Magic is xlp_magic of PostgreSQL 15's WAL.
	Magic = 0xD110

	xlpFirstIsContRecord = 0x0001
	xlpLongHeader        = 0x0002
	xlpAllFlags          = 0x000F

	// xlogSwitch is XLOG_SWITCH, an RM_XLOG_ID record that ends its
	// segment.
	xlogSwitch = 0x40
)

// ErrBadPage is wrapped by errors about a WAL page header.
var ErrBadPage = errors.New("invalid WAL page")

// ErrMissing is wrapped when Load has no segment for an LSN.
var ErrMissing = errors.New("WAL segment missing")

// Scanner reads the records of one timeline's WAL.
type Scanner struct {
	// SegSize is the segment size (wal_segment_size).
	SegSize uint64
	// Timeline is the timeline the WAL is read on: page headers may name it
	// or an older one (the start of a timeline's first segment).
	Timeline uint32
	// SystemID, when not 0, must be the segments' system identifier.
	SystemID uint64
	// Load returns the bytes of segment segno of Timeline; an error
	// wrapping ErrMissing when there is none.
	Load func(segno uint64) ([]byte, error)

	seg   []byte
	segNo uint64
	have  bool
}

// page returns the page holding lsn and its header length, checked.
func (s *Scanner) page(lsn uint64) ([]byte, int, uint32, error) {
	if s.SegSize < 2*BlockSize || s.SegSize&(s.SegSize-1) != 0 {
		return nil, 0, 0, fmt.Errorf("%w: segment size %d", ErrBadPage, s.SegSize)
	}
	no := lsn / s.SegSize
	if !s.have || s.segNo != no {
		seg, err := s.Load(no)
		if err != nil {
			return nil, 0, 0, err
		}
		if uint64(len(seg)) != s.SegSize {
			return nil, 0, 0, fmt.Errorf("%w: segment %d has %d bytes, not %d", ErrBadPage, no, len(seg), s.SegSize)
		}
		s.seg, s.segNo, s.have = seg, no, true
	}
	start := lsn &^ (BlockSize - 1)
	off := start - no*s.SegSize
	pg := s.seg[off : off+BlockSize]
	le := binary.LittleEndian
	magic, info, tli, addr := le.Uint16(pg[0:]), le.Uint16(pg[2:]), le.Uint32(pg[4:]), le.Uint64(pg[8:])
	switch {
	case magic != Magic:
		return nil, 0, 0, fmt.Errorf("%w at %s: magic %04X, not PostgreSQL 15's %04X", ErrBadPage, lsnString(start), magic, Magic)
	case addr != start:
		return nil, 0, 0, fmt.Errorf("%w at %s: the page says it is at %s (recycled or foreign)", ErrBadPage, lsnString(start), lsnString(addr))
	case info&^xlpAllFlags != 0:
		return nil, 0, 0, fmt.Errorf("%w at %s: flags %04X", ErrBadPage, lsnString(start), info)
	case tli == 0 || tli > s.Timeline:
		return nil, 0, 0, fmt.Errorf("%w at %s: timeline %d, reading timeline %d", ErrBadPage, lsnString(start), tli, s.Timeline)
	}
	hl := shortHeaderSize
	if off == 0 {
		if info&xlpLongHeader == 0 {
			return nil, 0, 0, fmt.Errorf("%w at %s: a segment's first page without a long header", ErrBadPage, lsnString(start))
		}
		sys, segSize, blcksz := le.Uint64(pg[24:]), le.Uint32(pg[32:]), le.Uint32(pg[36:])
		if s.SystemID != 0 && sys != s.SystemID {
			return nil, 0, 0, fmt.Errorf("%w at %s: system identifier %d, not %d", ErrBadPage, lsnString(start), sys, s.SystemID)
		}
		if uint64(segSize) != s.SegSize || blcksz != BlockSize {
			return nil, 0, 0, fmt.Errorf("%w at %s: segment size %d, page size %d", ErrBadPage, lsnString(start), segSize, blcksz)
		}
		hl = longHeaderSize
	} else if info&xlpLongHeader != 0 {
		return nil, 0, 0, fmt.Errorf("%w at %s: long header inside a segment", ErrBadPage, lsnString(start))
	}
	remLen := le.Uint32(pg[16:])
	if info&xlpFirstIsContRecord == 0 {
		remLen = 0
	}
	return pg, hl, remLen, nil
}

// Scan calls visit for each record that starts at or after start and
// before end; start must be where a record starts (a backup's start LSN,
// the redo point of its checkpoint, is one). Every record read is checked
// (page headers, xl_prev, CRC); the WAL must hold every record that starts
// before end, and an error says where it does not. A record's MainData is
// valid only during its visit.
func (s *Scanner) Scan(start, end uint64, visit func(*Record) error) error {
	pos := start
	var prev uint64
	var buf []byte
	for pos < end {
		pg, hl, _, err := s.page(pos)
		if err != nil {
			return err
		}
		off := int(pos % BlockSize)
		if off < hl {
			// A record never starts inside a page header: it starts after it.
			off = hl
			pos = pos - pos%BlockSize + uint64(hl)
			if pos >= end {
				return nil
			}
		}
		if off%8 != 0 {
			return badf("record at %s is not 8-byte aligned", lsnString(pos))
		}
		// xl_tot_len is on the record's first page: records are 8-byte
		// aligned and pages end on an 8-byte boundary.
		tot := binary.LittleEndian.Uint32(pg[off:])
		if tot < RecordHeaderSize || tot > maxRecordSize {
			return badf("record at %s has length %d: the WAL ends there, before %s", lsnString(pos), tot, lsnString(end))
		}
		buf = buf[:0]
		cur := pos
		for uint32(len(buf)) < tot {
			if cur%BlockSize == 0 {
				pg, hl, rem, err := s.page(cur)
				if err != nil {
					return fmt.Errorf("record at %s continues at %s: %w", lsnString(pos), lsnString(cur), err)
				}
				if want := tot - uint32(len(buf)); rem != want {
					return badf("record at %s: the page at %s continues %d bytes of it, not %d", lsnString(pos), lsnString(cur), rem, want)
				}
				off, cur = hl, cur+uint64(hl)
				pgRef := pg
				n := min(int(tot)-len(buf), BlockSize-off)
				buf = append(buf, pgRef[off:off+n]...)
				cur += uint64(n)
				continue
			}
			o := int(cur % BlockSize)
			n := min(int(tot)-len(buf), BlockSize-o)
			if o == int(pos%BlockSize) {
				// the first page, already loaded
				buf = append(buf, pg[o:o+n]...)
			} else {
				p, _, _, err := s.page(cur)
				if err != nil {
					return err
				}
				buf = append(buf, p[o:o+n]...)
			}
			cur += uint64(n)
		}
		rec, err := DecodeRecord(buf)
		if err != nil {
			return fmt.Errorf("record at %s: %w", lsnString(pos), err)
		}
		if prev != 0 && rec.Prev != prev {
			return badf("record at %s points back to %s, not to the record before it at %s", lsnString(pos), lsnString(rec.Prev), lsnString(prev))
		}
		rec.LSN, rec.End = pos, cur
		if err := visit(rec); err != nil {
			return err
		}
		prev = pos
		pos = (cur + 7) &^ 7
		if rec.RmID == RmXLOG && rec.Info&0xF0 == xlogSwitch {
			// The rest of the segment is unused: the next record starts
			// the next segment.
			pos = (cur + s.SegSize - 1) / s.SegSize * s.SegSize
		}
	}
	return nil
}

func lsnString(l uint64) string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }
