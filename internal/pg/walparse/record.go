// Package walparse decodes PostgreSQL 15 WAL: it walks the pages of WAL
// segments, reassembles records that span pages and decodes each record's
// header and block references, so that a base backup can learn which
// relation blocks changed in an LSN range (docs/POSTGRES.md, "Reading
// less: WAL-delta"). It reads the format PostgreSQL documents in
// access/xlogrecord.h and access/xlog_internal.h; little-endian servers
// only, 8 KiB pages.
package walparse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrBadRecord is wrapped by every error about a record's bytes.
var ErrBadRecord = errors.New("invalid WAL record")

// The record header (XLogRecord), 24 bytes:
//
//	offset size field
//	     0    4 xl_tot_len  length of the whole record, header included
//	     4    4 xl_xid      transaction ID
//	     8    8 xl_prev     LSN of the previous record
//	    16    1 xl_info     flags; the high 4 bits belong to the rmgr
//	    17    1 xl_rmid     resource manager
//	    18    2 (padding)
//	    20    4 xl_crc      CRC-32C of the rest of the record, then bytes 0..19
//
// It is followed by the block headers, the optional headers (main data
// length, origin, top-level XID), then the data of each block in order
// (image, then data), then the main data.
const (
	RecordHeaderSize = 24

	// block ids above the per-block ones (XLR_MAX_BLOCK_ID is 32)
	maxBlockID       = 32
	blockIDDataShort = 255
	blockIDDataLong  = 254
	blockIDOrigin    = 253
	blockIDTopXID    = 252

	// fork_flags bits (BKPBLOCK_*)
	bkpForkMask = 0x0F
	bkpHasImage = 0x10
	bkpHasData  = 0x20
	bkpWillInit = 0x40
	bkpSameRel  = 0x80

	// bimg_info bits (BKPIMAGE_*, PostgreSQL 15)
	bimgHasHole      = 0x01
	bimgApply        = 0x02
	bimgCompressPGLZ = 0x04
	bimgCompressLZ4  = 0x08
	bimgCompressZstd = 0x10
	bimgCompressed   = bimgCompressPGLZ | bimgCompressLZ4 | bimgCompressZstd

	// BlockSize is the relation and WAL page size rewind reads (BLCKSZ).
	BlockSize = 8192
	// maxForkNum is INIT_FORKNUM, the highest fork.
	maxForkNum = 3
	// maxRecordSize bounds xl_tot_len (PostgreSQL's XLogRecordMaxSize is
	// 1020 MiB).
	maxRecordSize = 1020 << 20
)

// Resource managers whose records rewind reads beyond their block
// references (access/rmgrlist.h).
const (
	RmXLOG       = 0
	RmXact       = 1
	RmSMGR       = 2
	RmDBase      = 4
	RmTblspc     = 5
	RmRelMap     = 7
	rmMaxBuiltin = 21
)

// SMGR record kinds (catalog/storage_xlog.h).
const (
	smgrCreate   = 0x10
	smgrTruncate = 0x20
)

// Forks (common/relpath.h).
const (
	ForkMain = 0
	ForkFSM  = 1
	ForkVM   = 2
	ForkInit = 3
)

// RelFileNode names a relation's files: tablespace, database and
// relfilenode OIDs (global objects have database 0 and tablespace 1664;
// the default tablespace is 1663).
type RelFileNode struct {
	Spc, DB, Rel uint32
}

func (n RelFileNode) String() string { return fmt.Sprintf("%d/%d/%d", n.Spc, n.DB, n.Rel) }

// BlockRef is one block reference of a record (XLogRecordBlockHeader and
// what follows it).
type BlockRef struct {
	ID    uint8
	Node  RelFileNode
	Fork  uint8
	Block uint32
	// HasImage: a full-page image; HasData: rmgr data for the block;
	// WillInit: redo rebuilds the page from scratch.
	HasImage, HasData, WillInit bool
	DataLen                     uint16
	// Image header, when HasImage.
	ImageLen, HoleOffset, HoleLen uint16
	ImageInfo                     uint8
}

// Record is a decoded WAL record.
type Record struct {
	// LSN is where the record starts; End is the LSN after its last byte.
	LSN, End uint64
	TotLen   uint32
	XID      uint32
	Prev     uint64
	Info     uint8
	RmID     uint8
	Blocks   []BlockRef
	MainData []byte
	Origin   uint16
	TopXID   uint32
}

func badf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRecord}, a...)...)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkCRC verifies xl_crc of the whole record rec: PostgreSQL computes
// CRC-32C over the bytes after the header, then over the header up to
// xl_crc.
func checkCRC(rec []byte) error {
	c := crc32.Update(0, castagnoli, rec[RecordHeaderSize:])
	c = crc32.Update(c, castagnoli, rec[:20])
	if want := binary.LittleEndian.Uint32(rec[20:]); c != want {
		return badf("CRC %08x, header says %08x", c, want)
	}
	return nil
}

// DecodeRecord decodes the whole record rec (its length is xl_tot_len),
// checking its CRC.
func DecodeRecord(rec []byte) (*Record, error) {
	if len(rec) < RecordHeaderSize {
		return nil, badf("%d bytes, shorter than a record header", len(rec))
	}
	if err := checkCRC(rec); err != nil {
		return nil, err
	}
	return decode(rec)
}

// decode decodes rec without checking its CRC.
func decode(rec []byte) (*Record, error) {
	le := binary.LittleEndian
	if len(rec) < RecordHeaderSize {
		return nil, badf("%d bytes, shorter than a record header", len(rec))
	}
	r := &Record{
		TotLen: le.Uint32(rec[0:]),
		XID:    le.Uint32(rec[4:]),
		Prev:   le.Uint64(rec[8:]),
		Info:   rec[16],
		RmID:   rec[17],
	}
	if int64(r.TotLen) != int64(len(rec)) {
		return nil, badf("xl_tot_len %d, record has %d bytes", r.TotLen, len(rec))
	}
	if r.RmID > rmMaxBuiltin && r.RmID < 128 {
		return nil, badf("unknown resource manager %d", r.RmID)
	}
	p := rec[RecordHeaderSize:]
	need := func(n int, what string) error {
		if len(p) < n {
			return badf("record ends inside %s", what)
		}
		return nil
	}
	var dataTotal int64
	var mainLen uint32
	var last *RelFileNode
	maxID := -1
	for len(p) > 0 && int64(len(p)) > dataTotal+int64(mainLen) {
		id := p[0]
		switch {
		case id == blockIDDataShort:
			if err := need(2, "main data length"); err != nil {
				return nil, err
			}
			mainLen = uint32(p[1])
			p = p[2:]
			goto data
		case id == blockIDDataLong:
			if err := need(5, "main data length"); err != nil {
				return nil, err
			}
			mainLen = le.Uint32(p[1:])
			p = p[5:]
			goto data
		case id == blockIDOrigin:
			if err := need(3, "origin"); err != nil {
				return nil, err
			}
			r.Origin = le.Uint16(p[1:])
			p = p[3:]
		case id == blockIDTopXID:
			if err := need(5, "top-level XID"); err != nil {
				return nil, err
			}
			r.TopXID = le.Uint32(p[1:])
			p = p[5:]
		case id <= maxBlockID:
			if int(id) <= maxID {
				return nil, badf("block id %d out of order", id)
			}
			maxID = int(id)
			if err := need(4, "block header"); err != nil {
				return nil, err
			}
			b := BlockRef{ID: id, Fork: p[1] & bkpForkMask, DataLen: le.Uint16(p[2:])}
			flags := p[1]
			b.HasImage, b.HasData, b.WillInit = flags&bkpHasImage != 0, flags&bkpHasData != 0, flags&bkpWillInit != 0
			p = p[4:]
			if b.Fork > maxForkNum {
				return nil, badf("block %d: fork %d", id, b.Fork)
			}
			if b.HasData != (b.DataLen > 0) {
				return nil, badf("block %d: data flag %v with data length %d", id, b.HasData, b.DataLen)
			}
			dataTotal += int64(b.DataLen)
			if b.HasImage {
				if err := need(5, "block image header"); err != nil {
					return nil, err
				}
				b.ImageLen, b.HoleOffset, b.ImageInfo = le.Uint16(p[0:]), le.Uint16(p[2:]), p[4]
				p = p[5:]
				hasHole, compressed := b.ImageInfo&bimgHasHole != 0, b.ImageInfo&bimgCompressed != 0
				if hasHole && compressed {
					if err := need(2, "block image hole length"); err != nil {
						return nil, err
					}
					b.HoleLen = le.Uint16(p)
					p = p[2:]
				} else if hasHole {
					b.HoleLen = BlockSize - b.ImageLen
				}
				switch {
				case b.ImageLen == 0:
					return nil, badf("block %d: empty image", id)
				case hasHole && (b.HoleOffset == 0 || b.HoleLen == 0 || b.ImageLen == BlockSize || int(b.HoleOffset)+int(b.HoleLen) > BlockSize):
					return nil, badf("block %d: image hole offset %d length %d, image length %d", id, b.HoleOffset, b.HoleLen, b.ImageLen)
				case !hasHole && (b.HoleOffset != 0 || (!compressed && b.ImageLen != BlockSize)):
					return nil, badf("block %d: image without hole has offset %d, length %d", id, b.HoleOffset, b.ImageLen)
				case compressed && b.ImageLen >= BlockSize:
					return nil, badf("block %d: compressed image of %d bytes", id, b.ImageLen)
				}
				dataTotal += int64(b.ImageLen)
			}
			if flags&bkpSameRel == 0 {
				if err := need(12, "relfilenode"); err != nil {
					return nil, err
				}
				n := RelFileNode{Spc: le.Uint32(p[0:]), DB: le.Uint32(p[4:]), Rel: le.Uint32(p[8:])}
				last = &n
				p = p[12:]
			} else if last == nil {
				return nil, badf("block %d: same relation as a previous block, but it is the first", id)
			}
			b.Node = *last
			if err := need(4, "block number"); err != nil {
				return nil, err
			}
			b.Block = le.Uint32(p)
			p = p[4:]
			r.Blocks = append(r.Blocks, b)
		default:
			return nil, badf("block id %d", id)
		}
	}
data:
	if int64(len(p)) != dataTotal+int64(mainLen) {
		return nil, badf("headers announce %d bytes of data, the record has %d", dataTotal+int64(mainLen), len(p))
	}
	if mainLen > 0 {
		r.MainData = p[len(p)-int(mainLen):]
	}
	return r, nil
}
