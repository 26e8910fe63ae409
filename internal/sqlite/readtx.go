package sqlite

// Reading a database inside a read transaction, without a copy.
//
// The backup API copies every page through SQLite's pager into a new
// file: about 2 s for 200 MB here, plus the check. backup and watch
// capture the same databases again and again, so they read them in
// place instead, inside a read transaction held on the database:
//
//   - Rollback journal: the transaction's SHARED lock keeps every writer
//     from committing (writers wait, their busy timeout), so the file's
//     bytes are those of the last commit while it is held.
//   - WAL: the database file holds the pages checkpointed so far, the
//     -wal the commits since. While the transaction is held, no
//     checkpoint copies a frame past its snapshot into the database file.
//     The version is the database file with, for each page, the newest
//     frame of the -wal up to the last commit frame whose checksum chain
//     is valid (frames appended since the transaction began are whole
//     commits on top of it: the version is then a later, still
//     consistent, one). Its size is that commit frame's database size.
//     The frames are read into memory when the -wal is indexed, and the
//     -wal indexed again after: a transaction that began when every frame
//     was checkpointed reads the database file only, and a writer may
//     then restart the -wal, overwriting frames, while it is read. A -wal
//     whose committed pages exceed maxWALBytes is left to Capture.
//
// The -wal format is https://www.sqlite.org/fileformat.html#the_write_ahead_log.
// Anything unexpected (a hot journal, an unreadable -wal) makes
// ReadInPlace fail, and the caller falls back to Capture.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// MethodReadTx names a version read in place inside a read transaction.
const MethodReadTx = "read-transaction"

// InPlace is a version of a database read in place (ReadInPlace): its
// bytes, as an io.ReaderAt of Size bytes, stay valid until Close ends
// the read transaction.
type InPlace struct {
	Size     int64
	PageSize int
	Pages    int64
	Mode     Mode

	// Salts are the -wal generation's salts when the -wal had a valid
	// header (HasSalts); walPages are the pages of every frame of that
	// generation whose checksum chain is valid, committed or not.
	Salts    [8]byte
	HasSalts bool
	walPages []uint32

	db     *os.File
	frames map[uint32][]byte // page number → its newest committed frame's data
	conn   *sql.Conn
	sqldb  *sql.DB
}

// maxWALBytes bounds the committed pages of a -wal read into memory.
const maxWALBytes = 256 << 20

// ReadInPlace opens a read transaction on the database src (waiting up to
// timeout for a writer's lock) and returns its current version, read in
// place. The caller must Close it soon: in rollback-journal mode writers
// wait until then.
func ReadInPlace(ctx context.Context, src string, timeout time.Duration) (*InPlace, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	sqldb, err := sql.Open("sqlite", fileURI(src, fmt.Sprintf("mode=ro&_pragma=busy_timeout(%d)", timeout.Milliseconds())))
	if err != nil {
		return nil, err
	}
	ok := false
	ip := &InPlace{sqldb: sqldb}
	defer func() {
		if !ok {
			ip.Close()
		}
	}()
	if ip.conn, err = sqldb.Conn(ctx); err != nil {
		return nil, err
	}
	if _, err := ip.conn.ExecContext(ctx, "BEGIN"); err != nil {
		return nil, err
	}
	var n int
	if err := ip.conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		return nil, err
	}
	if ip.db, err = os.Open(src); err != nil {
		return nil, err
	}
	hb := make([]byte, HeaderLen)
	if _, err := ip.db.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return nil, err
	}
	ip.PageSize, ip.Mode = h.PageSize, h.Mode
	fi, err := ip.db.Stat()
	if err != nil {
		return nil, err
	}
	pages := fi.Size() / int64(h.PageSize)
	if h.Mode == ModeWAL {
		wp, err := ip.readWAL(src+"-wal", h.PageSize)
		if err != nil {
			return nil, err
		}
		if wp > 0 {
			pages = wp
		}
	}
	// In rollback-journal mode nothing more: the transaction began, so
	// no hot journal was left, and while it holds its SHARED lock a
	// writer changes only its -journal, never the database file.
	ip.Pages, ip.Size = pages, pages*int64(h.PageSize)
	ok = true
	return ip, nil
}

// readWAL indexes the committed frames of the -wal and returns the
// database size in pages after the last commit, 0 when the -wal holds no
// commit (or is absent).
func (ip *InPlace) readWAL(path string, pageSize int) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w, err := parseWALAll(f, pageSize)
	if err != nil {
		return 0, err
	}
	frames, pages, salts := w.committed, w.pages, w.salts
	if int64(len(frames))*int64(pageSize) > maxWALBytes {
		return 0, fmt.Errorf("-wal: %d committed pages, more than read into memory", len(frames))
	}
	ip.frames = make(map[uint32][]byte, len(frames))
	for pg, off := range frames {
		b := make([]byte, pageSize)
		if _, err := f.ReadAt(b, off); err != nil {
			return 0, err
		}
		ip.frames[pg] = b
	}
	// A frame read now may have been overwritten since it was checked,
	// if the -wal was restarted meanwhile (see above). A restart gives
	// the -wal new salts, and committed frames change only then: the
	// same salts now mean the frames read are the ones checked.
	if len(frames) > 0 {
		var hdr [32]byte
		if _, err := f.ReadAt(hdr[:], 0); err != nil || !bytes.Equal(hdr[16:24], salts[:]) {
			return 0, errors.New("-wal restarted while it was read")
		}
	}
	if w.valid {
		ip.Salts, ip.HasSalts, ip.walPages = salts, true, w.all
	}
	return pages, nil
}

// parseWAL indexes the committed frames of a -wal read from f: for each
// page, the offset in f of its newest frame's data up to the last commit
// frame whose checksum chain is valid, the database size in pages after
// that commit (0, with no frames, when there is none), and the -wal
// header's salts.
func parseWAL(f io.ReaderAt, pageSize int) (frames map[uint32]int64, pages int64, salts [8]byte, err error) {
	w, err := parseWALAll(f, pageSize)
	return w.committed, w.pages, w.salts, err
}

// walIndex is what parseWALAll finds in a -wal.
type walIndex struct {
	committed map[uint32]int64 // page → offset of its newest committed frame's data
	pages     int64            // database pages after the last commit
	salts     [8]byte
	// valid is true when the header's checksum is valid (salts name a
	// generation); all lists the pages of every frame whose checksum
	// chain is valid, committed or not, each once.
	valid bool
	all   []uint32
}

// parseWALAll is parseWAL, also saying whether the header was valid and
// which pages every valid frame names.
func parseWALAll(f io.ReaderAt, pageSize int) (walIndex, error) {
	var w walIndex
	var hdr [32]byte
	if n, err := f.ReadAt(hdr[:], 0); n < len(hdr) {
		if n == 0 && (err == io.EOF || err == nil) {
			return w, nil // empty after a TRUNCATE checkpoint
		}
		return w, fmt.Errorf("-wal header: %w", err)
	}
	magic := binary.BigEndian.Uint32(hdr[0:4])
	if magic&^1 != 0x377f0682 {
		return w, fmt.Errorf("-wal: bad magic %#x", magic)
	}
	var order binary.ByteOrder = binary.LittleEndian
	if magic&1 == 1 {
		order = binary.BigEndian
	}
	if ps := int(binary.BigEndian.Uint32(hdr[8:12])); ps != pageSize && !(ps == 1 && pageSize == 65536) {
		// A -wal left by an earlier database of another page size is
		// ignored by SQLite, as it is here.
		return w, nil
	}
	salt1, salt2 := binary.BigEndian.Uint32(hdr[16:20]), binary.BigEndian.Uint32(hdr[20:24])
	copy(w.salts[:], hdr[16:24])
	s0, s1 := walChecksum(order, hdr[:24], 0, 0)
	if s0 != binary.BigEndian.Uint32(hdr[24:28]) || s1 != binary.BigEndian.Uint32(hdr[28:32]) {
		return w, nil // a -wal being reset: no valid frames
	}
	w.valid = true
	seen := map[uint32]bool{}
	frameLen := int64(24 + pageSize)
	buf := make([]byte, frameLen)
	pending := map[uint32]int64{}
	committed := map[uint32]int64{}
	var dbPages int64
	for off := int64(32); ; off += frameLen {
		n, err := f.ReadAt(buf, off)
		if n < len(buf) {
			if err != nil && err != io.EOF {
				return walIndex{}, err
			}
			break
		}
		fh := buf[:24]
		if binary.BigEndian.Uint32(fh[8:12]) != salt1 || binary.BigEndian.Uint32(fh[12:16]) != salt2 {
			break
		}
		s0, s1 = walChecksum(order, fh[:8], s0, s1)
		s0, s1 = walChecksum(order, buf[24:], s0, s1)
		if s0 != binary.BigEndian.Uint32(fh[16:20]) || s1 != binary.BigEndian.Uint32(fh[20:24]) {
			break
		}
		pg := binary.BigEndian.Uint32(fh[0:4])
		pending[pg] = off + 24
		if !seen[pg] {
			seen[pg] = true
			w.all = append(w.all, pg)
		}
		if size := binary.BigEndian.Uint32(fh[4:8]); size != 0 {
			for p, o := range pending {
				committed[p] = o
			}
			clear(pending)
			dbPages = int64(size)
		}
	}
	w.committed, w.pages = committed, dbPages
	return w, nil
}

// walChecksum continues the -wal checksum (s0, s1) over b, whose length
// is a multiple of 8, read as 32-bit words in the -wal's byte order.
func walChecksum(order binary.ByteOrder, b []byte, s0, s1 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

// ReadAt reads the version's bytes: each page from the -wal's newest
// committed frame of it, else from the database file.
func (ip *InPlace) ReadAt(p []byte, off int64) (int, error) {
	if off >= ip.Size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := ip.Size - off; int64(want) > rest {
		want = int(rest)
	}
	ps := int64(ip.PageSize)
	n := 0
	for n < want {
		pos := off + int64(n)
		page := uint32(pos/ps) + 1
		in := pos % ps
		k := min(int64(want-n), ps-in)
		var err error
		var got int
		if fr, ok := ip.frames[page]; ok {
			got = copy(p[n:n+int(k)], fr[in:in+k])
		} else {
			got, err = ip.db.ReadAt(p[n:n+int(k)], pos)
			if err == io.EOF && int64(got) < k {
				// A page past the file's end that no frame holds: SQLite
				// reads it as zeros.
				clear(p[n+got : n+int(k)])
				got, err = int(k), nil
			}
		}
		if err != nil && !(err == io.EOF && int64(got) == k) {
			return n + got, err
		}
		n += int(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Close ends the read transaction and closes the files.
func (ip *InPlace) Close() error {
	if ip.db != nil {
		ip.db.Close()
	}
	if ip.conn != nil {
		ip.conn.ExecContext(context.Background(), "ROLLBACK")
		ip.conn.Close()
	}
	return ip.sqldb.Close()
}
