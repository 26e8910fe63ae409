package sqlite

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// realWAL returns the -wal of a WAL database (4096-byte pages) after n
// one-row commits, taken while the database is still open (so that it is
// not checkpointed away).
func realWAL(t testing.TB, n int) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "w.db")
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=journal_mode(wal)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := db.Exec("INSERT INTO t VALUES(?)", i); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(p + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseWAL: a real -wal's commits are all found; a frame damaged in
// the last commit takes that commit away, and only it; a -wal of another
// page size or with a bad header checksum holds nothing.
func TestParseWAL(t *testing.T) {
	wal := realWAL(t, 5)
	frames, pages, _, err := parseWAL(bytes.NewReader(wal), 4096)
	if err != nil || pages < 2 || len(frames) == 0 {
		t.Fatalf("real -wal: %d pages, %d frames, %v", pages, len(frames), err)
	}
	frameLen := 24 + 4096
	nFrames := (len(wal) - 32) / frameLen
	bad := bytes.Clone(wal)
	bad[32+(nFrames-1)*frameLen+100] ^= 0xff
	f2, p2, _, err := parseWAL(bytes.NewReader(bad), 4096)
	if err != nil || p2 == 0 {
		t.Fatalf("damaged last frame: %d pages, %v", p2, err)
	}
	last := int64(32 + (nFrames-1)*frameLen + 24)
	for _, o := range f2 {
		if o == last {
			t.Errorf("the damaged frame is still used")
		}
	}
	if f, p, _, _ := parseWAL(bytes.NewReader(wal), 512); len(f) != 0 || p != 0 {
		t.Errorf("another page size: %d pages, %d frames", p, len(f))
	}
	hdr := bytes.Clone(wal)
	hdr[25] ^= 1
	if f, p, _, _ := parseWAL(bytes.NewReader(hdr), 4096); len(f) != 0 || p != 0 {
		t.Errorf("bad header checksum: %d pages, %d frames", p, len(f))
	}
}

// FuzzParseWAL: any bytes give an error or frames that lie inside them,
// never a panic.
func FuzzParseWAL(f *testing.F) {
	f.Add(realWAL(f, 2), uint16(3))
	f.Add([]byte{}, uint16(4096))
	f.Fuzz(func(t *testing.T, b []byte, ps uint16) {
		pageSize := 512 << (ps % 8)
		frames, pages, _, err := parseWAL(bytes.NewReader(b), pageSize)
		if err != nil {
			return
		}
		if pages < 0 {
			t.Fatalf("negative size %d", pages)
		}
		for pg, o := range frames {
			if o < 32 || o+int64(pageSize) > int64(len(b)) {
				t.Fatalf("page %d at %d: outside the %d bytes", pg, o, len(b))
			}
		}
		// The pages a delta capture reads again name every committed
		// page once, and come only from a -wal with a valid header.
		w, err := parseWALAll(bytes.NewReader(b), pageSize)
		if err != nil {
			t.Fatalf("parseWALAll failed where parseWAL did not: %v", err)
		}
		if !w.valid && len(w.all) > 0 {
			t.Fatalf("%d pages named by a -wal without a valid header", len(w.all))
		}
		all := map[uint32]bool{}
		for _, pg := range w.all {
			if all[pg] {
				t.Fatalf("page %d named twice", pg)
			}
			all[pg] = true
		}
		for pg := range frames {
			if !all[pg] {
				t.Fatalf("committed page %d not among the pages named", pg)
			}
		}
	})
}
