// Package wal stores PostgreSQL's write-ahead log in a rewind repository:
// WAL segments, timeline history files and backup history files, pushed
// one at a time by `rewind pg wal-push` (PostgreSQL's archive_command) and
// read back by `rewind pg wal-fetch` (restore_command).
//
// A file's bytes are content blobs, chunked like any stream; what is
// stored is recorded in WAL index files (backend.WALFile, folder wal/),
// one per push, each naming its cluster (a name and PostgreSQL's system
// identifier). Load reads and merges them into a Catalog that answers
// which stored segment covers an LSN on a timeline. docs/FORMAT.md §17
// specifies the files.
package wal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the kind of file PostgreSQL archives, told by its name.
type Kind string

// The kinds of archived file.
const (
	// KindSegment is a WAL segment: TTTTTTTTXXXXXXXXYYYYYYYY.
	KindSegment Kind = "segment"
	// KindPartial is the last, incomplete segment of a timeline that a
	// promotion left behind: a segment name with ".partial".
	KindPartial Kind = "partial"
	// KindHistory is a timeline history file: TTTTTTTT.history.
	KindHistory Kind = "history"
	// KindBackup is a backup history file written by pg_backup_stop:
	// TTTTTTTTXXXXXXXXYYYYYYYY.OOOOOOOO.backup.
	KindBackup Kind = "backup"
)

// ErrBadName is wrapped by ParseName's errors.
var ErrBadName = errors.New("not a PostgreSQL WAL file name")

// Name is a parsed archived file name.
type Name struct {
	// Kind is what the file is.
	Kind Kind
	// Timeline is the timeline in the name.
	Timeline uint32
	// Log and Seg are the two halves of the segment number as written in
	// the name (XXXXXXXX and YYYYYYYY); zero for a history file. The
	// segment number is Log*(0x100000000/segment size)+Seg.
	Log, Seg uint32
	// Offset is a backup history file's start offset in its segment.
	Offset uint32
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex32(s string) uint32 {
	v, _ := strconv.ParseUint(s, 16, 32)
	return uint32(v)
}

// ParseName parses the base name of a file PostgreSQL archives (upper-case
// hex, as PostgreSQL writes them).
func ParseName(name string) (Name, error) {
	bad := func(why string) (Name, error) {
		return Name{}, fmt.Errorf("%w: %q (%s)", ErrBadName, name, why)
	}
	switch {
	case len(name) == 24:
		if !isHex(name) {
			return bad("a segment name is 24 upper-case hex digits")
		}
		n := Name{Kind: KindSegment, Timeline: hex32(name[:8]), Log: hex32(name[8:16]), Seg: hex32(name[16:24])}
		if n.Timeline == 0 {
			return bad("timeline 0")
		}
		return n, nil
	case len(name) == 24+len(".partial") && strings.HasSuffix(name, ".partial"):
		n, err := ParseName(name[:24])
		if err != nil {
			return n, err
		}
		n.Kind = KindPartial
		return n, nil
	case len(name) == 8+len(".history") && strings.HasSuffix(name, ".history"):
		if !isHex(name[:8]) {
			return bad("a history file is 8 upper-case hex digits and .history")
		}
		n := Name{Kind: KindHistory, Timeline: hex32(name[:8])}
		if n.Timeline == 0 {
			return bad("timeline 0")
		}
		return n, nil
	case len(name) == 24+1+8+len(".backup") && strings.HasSuffix(name, ".backup") && name[24] == '.':
		n, err := ParseName(name[:24])
		if err != nil {
			return n, err
		}
		if !isHex(name[25:33]) {
			return bad("the backup offset is 8 upper-case hex digits")
		}
		n.Kind, n.Offset = KindBackup, hex32(name[25:33])
		return n, nil
	}
	return bad("want a segment, .partial, .history or .backup file")
}

// String returns the file name n was parsed from.
func (n Name) String() string {
	switch n.Kind {
	case KindHistory:
		return fmt.Sprintf("%08X.history", n.Timeline)
	case KindPartial:
		return fmt.Sprintf("%08X%08X%08X.partial", n.Timeline, n.Log, n.Seg)
	case KindBackup:
		return fmt.Sprintf("%08X%08X%08X.%08X.backup", n.Timeline, n.Log, n.Seg, n.Offset)
	}
	return fmt.Sprintf("%08X%08X%08X", n.Timeline, n.Log, n.Seg)
}

// SegNo returns the segment number for a segment size (a power of two
// from 1 MiB to 1 GiB).
func (n Name) SegNo(segSize uint32) uint64 {
	return uint64(n.Log)*(0x100000000/uint64(segSize)) + uint64(n.Seg)
}

// SegmentName returns the name of segment segno on timeline tli.
func SegmentName(tli uint32, segno uint64, segSize uint32) string {
	per := 0x100000000 / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, uint32(segno/per), uint32(segno%per))
}

// LSN is a position in the WAL (a byte offset in its stream).
type LSN uint64

// String writes l as PostgreSQL does: two hex halves, "16/B374D848".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// ParseLSN reads an LSN written as PostgreSQL does ("16/B374D848").
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil || hi == "" || lo == "" {
		return 0, fmt.Errorf("LSN %q: want two hex numbers as PostgreSQL writes it, such as 16/B374D848", s)
	}
	return LSN(h<<32 | l), nil
}
