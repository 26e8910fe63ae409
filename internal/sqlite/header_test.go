package sqlite

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// header builds a 100-byte header with the given page size field and
// format versions.
func header(pageSize uint16, version byte) []byte {
	b := make([]byte, HeaderLen)
	copy(b, magic)
	binary.BigEndian.PutUint16(b[16:], pageSize)
	b[18], b[19] = version, version
	binary.BigEndian.PutUint32(b[24:], 7)
	binary.BigEndian.PutUint32(b[28:], 42)
	binary.BigEndian.PutUint32(b[92:], 7)
	return b
}

func TestParseHeader(t *testing.T) {
	cases := []struct {
		name  string
		b     []byte
		ok    bool
		size  int
		mode  Mode
		pages int64
	}{
		{"rollback-4k", header(4096, 1), true, 4096, ModeRollback, 42},
		{"wal-512", header(512, 2), true, 512, ModeWAL, 42},
		{"64k-as-1", header(1, 2), true, 65536, ModeWAL, 42},
		{"first-20-bytes", header(4096, 2)[:20], true, 4096, ModeWAL, 0},
		{"page-size-3000", header(3000, 1), false, 0, "", 0},
		{"page-size-256", header(256, 1), false, 0, "", 0},
		{"page-size-0", header(0, 1), false, 0, "", 0},
		{"version-3", header(4096, 3), false, 0, "", 0},
		{"version-0", header(4096, 0), false, 0, "", 0},
		{"short", []byte(magic), false, 0, "", 0},
		{"no-magic", append([]byte("SQLite format 2\x00"), header(4096, 1)[16:]...), false, 0, "", 0},
		{"empty", nil, false, 0, "", 0},
	}
	for _, c := range cases {
		h, err := ParseHeader(c.b)
		if (err == nil) != c.ok || IsDatabase(c.b) != c.ok {
			t.Errorf("%s: err = %v, want ok %v", c.name, err, c.ok)
			continue
		}
		if c.ok && (h.PageSize != c.size || h.Mode != c.mode || h.Pages != c.pages) {
			t.Errorf("%s: %+v", c.name, h)
		}
	}
	// The in-header size is not trusted when version-valid-for does not
	// match the change counter.
	b := header(4096, 1)
	binary.BigEndian.PutUint32(b[92:], 6)
	if h, _ := ParseHeader(b); h.Pages != 0 {
		t.Errorf("stale in-header size read: %+v", h)
	}
}

// TestIsDatabaseRealFiles reads the headers SQLite itself wrote.
func TestIsDatabaseRealFiles(t *testing.T) {
	dir := t.TempDir()
	for _, journal := range []string{"delete", "wal"} {
		p, db := makeDB(t, dir, journal+".db", journal, 10)
		db.Close()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(b[:HeaderLen])
		want := ModeRollback
		if journal == "wal" {
			want = ModeWAL
		}
		if err != nil || h.Mode != want || h.PageSize != 4096 || h.Pages*4096 != int64(len(b)) {
			t.Errorf("%s: %+v %v (file %d bytes)", journal, h, err, len(b))
		}
	}
	if IsDatabase([]byte("SQLite format 3")) {
		t.Error("15 bytes taken for a header")
	}
	if _, err := os.Stat(filepath.Join(dir, "delete.db-journal")); err == nil {
		t.Error("journal left")
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(header(4096, 1))
	f.Add(header(1, 2))
	f.Add([]byte(magic + "\x10\x00\x02\x02"))
	f.Add([]byte("not a database at all"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if IsDatabase(b) != (err == nil) {
			t.Fatal("IsDatabase disagrees with ParseHeader")
		}
		if err != nil {
			return
		}
		if h.PageSize < 512 || h.PageSize > 65536 || h.PageSize&(h.PageSize-1) != 0 {
			t.Fatalf("page size %d accepted", h.PageSize)
		}
		if h.Mode != ModeWAL && h.Mode != ModeRollback {
			t.Fatalf("mode %q", h.Mode)
		}
		if h.Pages < 0 || (len(b) < HeaderLen && h.Pages != 0) {
			t.Fatalf("pages %d from %d bytes", h.Pages, len(b))
		}
	})
}
