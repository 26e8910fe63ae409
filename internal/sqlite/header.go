package sqlite

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// HeaderLen is the length of a SQLite database header.
const HeaderLen = 100

// magic opens every SQLite 3 database file.
const magic = "SQLite format 3\x00"

// Mode is a database's journal mode as its header records it.
type Mode string

// Journal modes: WAL (header bytes 18 and 19 are 2) or a rollback
// journal (1; DELETE, TRUNCATE, PERSIST and MEMORY all write 1).
const (
	ModeWAL      Mode = "wal"
	ModeRollback Mode = "rollback"
)

// Header is what rewind reads of a database header (the "Database Header
// Format" of https://www.sqlite.org/fileformat.html).
type Header struct {
	PageSize int
	Mode     Mode
	// Pages is the in-header database size; 0 when the header says it is
	// not valid (a file last written by an old SQLite).
	Pages int64
}

// IsDatabase reports whether header (the first bytes of a file, at least
// the 16-byte magic and the page size after it) looks like a SQLite 3
// database: the magic string and a page size SQLite accepts.
func IsDatabase(header []byte) bool {
	_, err := ParseHeader(header)
	return err == nil
}

// ParseHeader reads a database header. It needs the first 20 bytes at
// least (magic, page size, format versions); with all HeaderLen bytes it
// also reads the database size.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 20 {
		return Header{}, fmt.Errorf("header too short (%d bytes)", len(b))
	}
	if !bytes.Equal(b[:16], []byte(magic)) {
		return Header{}, fmt.Errorf("no SQLite 3 magic string")
	}
	ps := int(binary.BigEndian.Uint16(b[16:18]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return Header{}, fmt.Errorf("page size %d is not a power of two from 512 to 65536", ps)
	}
	h := Header{PageSize: ps}
	// Byte 18 is the write version, 19 the read version; SQLite opens the
	// WAL when the read version is 2, and reads a file whose write
	// version is newer than it knows read-only.
	switch {
	case b[18] == 0:
		return Header{}, fmt.Errorf("file format write version 0")
	case b[19] == 1:
		h.Mode = ModeRollback
	case b[19] == 2:
		h.Mode = ModeWAL
	default:
		return Header{}, fmt.Errorf("unknown file format read version %d", b[19])
	}
	if len(b) >= HeaderLen {
		// The in-header size is valid when the change counter (24) equals
		// "version-valid-for" (92) and it is not zero.
		n := binary.BigEndian.Uint32(b[28:32])
		if n != 0 && bytes.Equal(b[24:28], b[92:96]) {
			h.Pages = int64(n)
		}
	}
	return h, nil
}
