package pg

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in the WAL (a pg_lsn), printed as PostgreSQL prints
// it: two hexadecimal halves separated by a slash, "0/16B3748".
type LSN uint64

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// MarshalText writes the PostgreSQL form, so that JSON shows "0/16B3748".
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads the PostgreSQL form.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLSN reads "HI/LO" in hexadecimal, as pg_lsn's text form.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("LSN %q: want two hexadecimal numbers separated by a slash, e.g. 0/16B3748", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("LSN %q: want two hexadecimal numbers separated by a slash, e.g. 0/16B3748", s)
	}
	return LSN(h<<32 | l), nil
}

// DefaultSegmentSize is the WAL segment size of a cluster initdb'd
// without --wal-segsize.
const DefaultSegmentSize = 16 << 20

// SegmentName is the WAL file name of the segment holding lsn on
// timeline tli, for segments of segSize bytes (a power of two from 1 MiB
// to 1 GiB), as PostgreSQL's XLogFileName makes it.
func SegmentName(tli uint32, lsn LSN, segSize uint64) string {
	segno := uint64(lsn) / segSize
	perID := (uint64(1) << 32) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, uint32(segno/perID), uint32(segno%perID))
}

// Segments names the WAL files a base backup needs on timeline tli: from
// the one holding start to the one holding the last byte before stop.
func Segments(tli uint32, start, stop LSN, segSize uint64) ([]string, error) {
	if segSize == 0 || segSize&(segSize-1) != 0 {
		return nil, fmt.Errorf("WAL segment size %d is not a power of two", segSize)
	}
	if stop < start {
		return nil, fmt.Errorf("backup stop LSN %s is before its start LSN %s", stop, start)
	}
	last := stop
	if last > start {
		last--
	}
	var out []string
	for seg := uint64(start) / segSize; seg <= uint64(last)/segSize; seg++ {
		out = append(out, SegmentName(tli, LSN(seg*segSize), segSize))
	}
	return out, nil
}
