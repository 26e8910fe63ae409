package walparse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func parseLSN(t *testing.T, s string) uint64 {
	t.Helper()
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("LSN %q", s)
	}
	return h<<32 | l
}

// pgWAL loads segments of timeline 1 from a running cluster's pg_wal.
func pgWAL(dataDir string, segSize uint64) func(uint64) ([]byte, error) {
	return func(no uint64) ([]byte, error) {
		name := fmt.Sprintf("%08X%08X%08X", 1, no/(0x100000000/segSize), no%(0x100000000/segSize))
		b, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrMissing, name)
		}
		return b, err
	}
}

// TestRealWAL decodes the WAL a real PostgreSQL 15 wrote while one row of a
// known table was updated: the row's heap block must be among the changed
// blocks, with the table's relfilenode; a table not touched must not be.
func TestRealWAL(t *testing.T) {
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	pg.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;")
	pg.Exec(t, "CREATE TABLE quiet (id int); INSERT INTO quiet SELECT generate_series(1, 1000);")
	pg.Exec(t, "CHECKPOINT")
	start := parseLSN(t, pg.QueryValue(t, "SELECT redo_lsn FROM pg_control_checkpoint()"))
	// A row far into the table: its block is not 0.
	ctid := pg.QueryValue(t, "SELECT ctid FROM t WHERE id = 15000")
	blk, _ := strconv.ParseUint(strings.Split(strings.Trim(ctid, "()"), ",")[0], 10, 32)
	if blk == 0 {
		t.Fatalf("ctid %s", ctid)
	}
	pg.Exec(t, "UPDATE t SET v = 'changed' WHERE id = 15000")
	// A segment switch: the rest of the segment is unused, the WAL goes on
	// after the next segment's long header.
	startSeg := start / (16 << 20)
	pg.Exec(t, "SELECT pg_switch_wal()")
	// A long record spanning pages: a full-page image of a fresh page is
	// one, and many rows in one insert make records cross pages too.
	pg.Exec(t, "CREATE TABLE big (b text); INSERT INTO big SELECT repeat(md5(g::text), 300) FROM generate_series(1, 50) g;")
	end := parseLSN(t, pg.QueryValue(t, "SELECT pg_current_wal_insert_lsn()"))
	rel, _ := strconv.ParseUint(pg.QueryValue(t, "SELECT pg_relation_filenode('t')"), 10, 32)
	quiet, _ := strconv.ParseUint(pg.QueryValue(t, "SELECT pg_relation_filenode('quiet')"), 10, 32)
	db, _ := strconv.ParseUint(pg.QueryValue(t, "SELECT oid FROM pg_database WHERE datname = current_database()"), 10, 32)
	bigRel, _ := strconv.ParseUint(pg.QueryValue(t, "SELECT pg_relation_filenode('big')"), 10, 32)
	segSize := uint64(16 << 20)
	s := &Scanner{SegSize: segSize, Timeline: 1, SystemID: pg.SystemID(t), Load: pgWAL(pg.DataDir, segSize)}
	ch := NewChanges()
	spans := 0
	if err := s.Scan(start, end, func(r *Record) error {
		if r.LSN/BlockSize != (r.End-1)/BlockSize {
			spans++
		}
		ch.Add(r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records, %d block references, %d blocks, %d records spanning pages", ch.Records, ch.BlockRefs, ch.Count(), spans)
	k := RelFork{RelFileNode{1663, uint32(db), uint32(rel)}, ForkMain}
	if _, ok := ch.Blocks[k][uint32(blk)]; !ok {
		t.Fatalf("block %d of %v not in the changed set %v", blk, k, ch.FileBlocks(k, 0))
	}
	if got := ch.FileBlocks(k, 0); len(got) > 3 {
		t.Errorf("one row updated, %d blocks of t changed: %v", len(got), got)
	}
	if m := ch.Blocks[RelFork{RelFileNode{1663, uint32(db), uint32(quiet)}, ForkMain}]; len(m) != 0 {
		t.Errorf("untouched table has changed blocks %v", m)
	}
	if _, ok := ch.Whole[RelFileNode{1663, uint32(db), uint32(bigRel)}]; !ok {
		t.Errorf("the table created in the range is not marked for a whole read: %v", ch.Whole)
	}
	if spans == 0 {
		t.Errorf("no record spanning pages was read")
	}
	if end/segSize == startSeg {
		t.Errorf("the range does not cross a segment switch")
	}

	// The same WAL from the middle of a record: refused, not misread.
	if err := s.Scan(start+8, end, func(*Record) error { return nil }); err == nil {
		t.Errorf("scan from inside a record succeeded")
	}
	// Beyond what was written: an error naming where the WAL ends.
	err := s.Scan(start, end+4*segSize, func(*Record) error { return nil })
	if err == nil {
		t.Errorf("scan past the end of the WAL succeeded")
	}
	t.Logf("past the end: %v", err)
}

// record builds a record with a valid CRC from its body (after the header).
func record(rmid, info uint8, prev uint64, body []byte) []byte {
	rec := make([]byte, RecordHeaderSize, RecordHeaderSize+len(body))
	rec = append(rec, body...)
	le := binary.LittleEndian
	le.PutUint32(rec[0:], uint32(len(rec)))
	le.PutUint64(rec[8:], prev)
	rec[16], rec[17] = info, rmid
	c := crc32.Update(0, castagnoli, rec[RecordHeaderSize:])
	c = crc32.Update(c, castagnoli, rec[:20])
	le.PutUint32(rec[20:], c)
	return rec
}

func TestDecodeRecord(t *testing.T) {
	le := binary.LittleEndian
	// block 0: data of 3 bytes on 1663/5/16384 block 7; block 1: same rel,
	// block 9, with a full-page image with a hole; main data 2 bytes.
	var body []byte
	body = append(body, 0, bkpHasData, 3, 0)
	body = le.AppendUint32(body, 1663)
	body = le.AppendUint32(body, 5)
	body = le.AppendUint32(body, 16384)
	body = le.AppendUint32(body, 7)
	body = append(body, 1, bkpHasImage|bkpSameRel|ForkMain, 0, 0)
	body = le.AppendUint16(body, 100) // image length
	body = le.AppendUint16(body, 40)  // hole offset
	body = append(body, bimgHasHole)
	body = le.AppendUint32(body, 9)
	body = append(body, blockIDDataShort, 2)
	body = append(body, 'a', 'b', 'c')
	body = append(body, make([]byte, 100)...)
	body = append(body, 'm', 'd')
	rec := record(10, 0, 0, body)
	r, err := DecodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Blocks) != 2 || r.Blocks[1].Node != (RelFileNode{1663, 5, 16384}) || r.Blocks[1].Block != 9 || r.Blocks[1].HoleLen != BlockSize-100 || string(r.MainData) != "md" {
		t.Fatalf("%+v", r)
	}
	rec[30] ^= 1
	if _, err := DecodeRecord(rec); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("corrupt CRC: %v", err)
	}
	for _, bad := range [][]byte{
		{0, bkpSameRel, 0, 0, 1, 0, 0, 0},         // same rel first
		{0, bkpHasData, 0, 0},                     // data flag, no length
		{40, 0, 0, 0},                             // block id 40
		{0, 0x0F, 0, 0},                           // fork 15
		{blockIDDataLong, 0xFF, 0xFF, 0xFF, 0x7F}, // main data past the end
	} {
		if _, err := DecodeRecord(record(10, 0, 0, bad)); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte{0, bkpHasData, 3, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 255, 1, 'a', 'b', 'c', 'd'})
	f.Add([]byte{255, 0})
	f.Add([]byte{0, bkpHasImage, 0, 0, 0, 32, 0, 0, bimgHasHole})
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decode(record(2, smgrTruncate, 0, body)[:RecordHeaderSize+len(body)])
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error without ErrBadRecord: %v", err)
			}
			return
		}
		c := NewChanges()
		r.LSN = 16
		c.Add(r)
	})
}

// FuzzScan feeds one small segment (two pages) to the scanner.
func FuzzScan(f *testing.F) {
	const segSize = 2 * BlockSize
	seg := make([]byte, segSize)
	le := binary.LittleEndian
	le.PutUint16(seg[0:], Magic)
	le.PutUint16(seg[2:], xlpLongHeader)
	le.PutUint32(seg[4:], 1)
	le.PutUint32(seg[32:], segSize)
	le.PutUint32(seg[36:], BlockSize)
	r1 := record(10, 0, 0, []byte{255, 1, 'x'})
	copy(seg[longHeaderSize:], r1)
	le.PutUint16(seg[BlockSize:], Magic)
	le.PutUint32(seg[BlockSize+4:], 1)
	le.PutUint64(seg[BlockSize+8:], BlockSize)
	f.Add(seg[:longHeaderSize+64], uint16(longHeaderSize), uint16(200))
	f.Fuzz(func(t *testing.T, data []byte, start, end uint16) {
		b := make([]byte, segSize)
		copy(b, seg)
		copy(b, data)
		s := &Scanner{SegSize: segSize, Timeline: 1, Load: func(no uint64) ([]byte, error) {
			if no != 0 {
				return nil, ErrMissing
			}
			return b, nil
		}}
		c := NewChanges()
		_ = s.Scan(uint64(start), uint64(end), func(r *Record) error { c.Add(r); return nil })
	})
}
