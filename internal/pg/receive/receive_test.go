package receive

import (
	"testing"

	"github.com/rewind-backup/rewind/internal/pg/wal"
)

func TestHistoryTimelineOf(t *testing.T) {
	h := []byte("1\t0/3000000\tno recovery target specified\n\n2\t0/5000000\tat restore point \"x\"\n")
	for _, c := range []struct {
		lsn  wal.LSN
		want uint32
	}{{0x1000000, 1}, {0x3000000, 2}, {0x4FFFFFF, 2}, {0x5000000, 3}, {0x9000000, 3}} {
		if got := historyTimelineOf(h, 3, c.lsn); got != c.want {
			t.Errorf("%s: timeline %d, want %d", c.lsn, got, c.want)
		}
	}
}

func TestParseSegmentSize(t *testing.T) {
	for in, want := range map[string]uint32{"16MB": 16 << 20, "1GB": 1 << 30, "1024kB": 1 << 20} {
		if got, err := parseSegmentSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "3MB", "2GB", "MB", "-16MB", "512kB"} {
		if _, err := parseSegmentSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzHistoryTimelineOf(f *testing.F) {
	f.Add([]byte("1\t0/3000000\treason\n"), uint32(2), uint64(0x2000000))
	f.Fuzz(func(t *testing.T, content []byte, tli uint32, lsn uint64) {
		_ = historyTimelineOf(content, tli, wal.LSN(lsn))
	})
}

func FuzzParseSegmentSize(f *testing.F) {
	f.Add("16MB")
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseSegmentSize(s); err == nil && (n < 1<<20 || n&(n-1) != 0) {
			t.Fatalf("%q: %d", s, n)
		}
	})
}
