package wal

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	good := map[string]Name{
		"000000010000000000000003":                 {Kind: KindSegment, Timeline: 1, Seg: 3},
		"0000000200000001000000FF.partial":         {Kind: KindPartial, Timeline: 2, Log: 1, Seg: 0xFF},
		"00000002.history":                         {Kind: KindHistory, Timeline: 2},
		"000000010000000000000002.00000028.backup": {Kind: KindBackup, Timeline: 1, Seg: 2, Offset: 0x28},
	}
	for s, want := range good {
		n, err := ParseName(s)
		if err != nil || n != want {
			t.Errorf("ParseName(%q) = %+v, %v; want %+v", s, n, err, want)
		}
		if n.String() != s {
			t.Errorf("%q: String() = %q", s, n.String())
		}
	}
	for _, s := range []string{"", "00000001000000000000000", "00000001000000000000000g", "000000010000000000000003.tmp",
		"00000000.history", "000000000000000000000001", "0000000a0000000000000001", "RECOVERYXLOG", "../000000010000000000000003"} {
		if _, err := ParseName(s); !errors.Is(err, ErrBadName) {
			t.Errorf("ParseName(%q): %v, want ErrBadName", s, err)
		}
	}
	n, _ := ParseName("000000010000000100000002")
	if got := n.SegNo(16 << 20); got != 256+2 {
		t.Errorf("SegNo = %d, want 258", got)
	}
	if got := SegmentName(1, 258, 16<<20); got != "000000010000000100000002" {
		t.Errorf("SegmentName = %s", got)
	}
	l, err := ParseLSN("16/B374D848")
	if err != nil || l != 0x16B374D848 || l.String() != "16/B374D848" {
		t.Errorf("ParseLSN: %v %v", l, err)
	}
	for _, s := range []string{"", "16", "/1", "1/", "x/1", "100000000/0"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q): no error", s)
		}
	}
}

// header returns a valid long page header for segment segno.
func header(sys uint64, segno uint64) []byte {
	b := make([]byte, LongHeaderSize)
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xD110)
	le.PutUint16(b[2:], 0x0002|0x0004)
	le.PutUint32(b[4:], 1)
	le.PutUint64(b[8:], segno*(16<<20))
	le.PutUint64(b[24:], sys)
	le.PutUint32(b[32:], 16<<20)
	le.PutUint32(b[36:], 8192)
	return b
}

func TestParseLongHeader(t *testing.T) {
	h, err := ParseLongHeader(header(7301234567890123456, 3))
	if err != nil {
		t.Fatal(err)
	}
	if h.SystemID != 7301234567890123456 || h.SegSize != 16<<20 || h.BlockSize != 8192 || h.PageAddr != 3*(16<<20) || h.Timeline != 1 {
		t.Fatalf("header = %+v", h)
	}
	breakers := map[string]func(b []byte){
		"magic":     func(b []byte) { b[1] = 0 },
		"long flag": func(b []byte) { b[2] = 0x04 },
		"seg size":  func(b []byte) { binary.LittleEndian.PutUint32(b[32:], 3<<20) },
		"page size": func(b []byte) { binary.LittleEndian.PutUint32(b[36:], 100) },
		"page addr": func(b []byte) { b[8] = 1 },
		"sysid":     func(b []byte) { binary.LittleEndian.PutUint64(b[24:], 0) },
		"timeline":  func(b []byte) { binary.LittleEndian.PutUint32(b[4:], 0) },
	}
	for what, f := range breakers {
		b := header(1, 3)
		f(b)
		if _, err := ParseLongHeader(b); !errors.Is(err, ErrNotWAL) {
			t.Errorf("%s broken: %v, want ErrNotWAL", what, err)
		}
	}
	if _, err := ParseLongHeader(header(1, 3)[:39]); err == nil || !strings.Contains(err.Error(), "shorter") {
		t.Errorf("short header: %v", err)
	}
}

func FuzzParseLongHeader(f *testing.F) {
	f.Add(header(1, 0))
	f.Add(header(7301234567890123456, 77))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseLongHeader(b)
		if err != nil {
			return
		}
		if h.SystemID == 0 || h.SegSize&(h.SegSize-1) != 0 || uint64(h.PageAddr)%uint64(h.SegSize) != 0 {
			t.Fatalf("accepted a bad header: %+v", h)
		}
	})
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"000000010000000000000003", "00000002.history", "000000010000000000000002.00000028.backup", "0000000200000001000000FF.partial"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if n.String() != s {
			t.Fatalf("ParseName(%q).String() = %q", s, n.String())
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"cluster":"main","system_id":"7","time":"2026-01-01T00:00:00Z","entries":[{"name":"000000010000000000000003","kind":"segment","timeline":1,"segno":3,"seg_size":16777216,"size":16777216,"id":"` + strings.Repeat("ab", 32) + `","blobs":["` + strings.Repeat("cd", 32) + `"]}]}`))
	f.Add([]byte(`{"version":1,"cluster":"main","system_id":"7","entries":[{"name":"00000002.history","kind":"history","timeline":2,"size":0,"blobs":[]}]}`))
	f.Add([]byte(`{"version":1,"cluster":"main","system_id":"7","keep_from":"0/3000000","merged":3,"entries":[{"name":"000000010000000000000002.00000028.backup","kind":"backup","timeline":1,"size":0,"blobs":[]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, sys, err := Decode(b)
		if err != nil {
			return
		}
		if sys == 0 || file.Cluster == "" {
			t.Fatalf("accepted %q", b)
		}
		var keep LSN
		if file.KeepFrom != "" {
			keep, _ = ParseLSN(file.KeepFrom)
		}
		c := merge([]loaded{{name: [32]byte{}, f: file, sys: sys, keep: keep}})
		for _, e := range c.Cluster(file.Cluster).Entries() {
			if e.Kind == KindSegment {
				_ = c.Cluster(file.Cluster).SegmentFor(e.Timeline, e.StartLSN())
			}
		}
		_ = c.Cluster(file.Cluster).Ranges()
	})
}
