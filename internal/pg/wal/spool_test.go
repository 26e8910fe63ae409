package wal

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func spoolNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestSpool: a spooled segment is served whole, as often as asked, until
// Clean is called for a later one; a damaged one is not served and is removed; Clean removes
// earlier segments, old files and old temporary files only.
func TestSpool(t *testing.T) {
	dir := t.TempDir()
	sp, err := OpenSpool(filepath.Join(dir, SpoolDirName))
	if err != nil {
		t.Fatal(err)
	}
	seg := func(n byte) string { return "00000001000000000000000" + string('0'+n) }
	for n := byte(3); n <= 6; n++ {
		if err := sp.Put(seg(n), []byte{n, n, n}); err != nil {
			t.Fatal(err)
		}
	}
	if !sp.Has(seg(4)) || sp.Has(seg(7)) {
		t.Fatal("Has")
	}
	dest := filepath.Join(dir, "RECOVERYXLOG")
	if ok, err := sp.Take(seg(4), dest); !ok || err != nil {
		t.Fatalf("Take: %v %v", ok, err)
	}
	if b, _ := os.ReadFile(dest); !slices.Equal(b, []byte{4, 4, 4}) {
		t.Errorf("served %v", b)
	}
	// PostgreSQL may ask for a segment again: it stays until a later
	// one is asked for, and is served again whole.
	os.Remove(dest)
	if ok, err := sp.Take(seg(4), dest); !ok || err != nil {
		t.Fatalf("Take again: %v %v", ok, err)
	}
	if b, _ := os.ReadFile(dest); !slices.Equal(b, []byte{4, 4, 4}) {
		t.Errorf("served again %v", b)
	}
	if !sp.Has(seg(4)) {
		t.Error("a served segment left the spool before a later one was asked for")
	}
	// Damaged: not served, removed.
	m, _ := filepath.Glob(filepath.Join(sp.Dir, seg(5)+".*"))
	if err := os.WriteFile(m[0], []byte{9}, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(dest)
	if ok, err := sp.Take(seg(5), dest); ok || err != nil {
		t.Errorf("a damaged segment: served %v, %v", ok, err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Error("a damaged segment was written to the destination")
	}
	if sp.Has(seg(5)) {
		t.Error("a damaged segment stays")
	}
	// Clean: segments 1 to 4 are before 6; the two nearest (3 and 4)
	// stay, as PostgreSQL may ask for them again; a temporary file is
	// young.
	for n := byte(1); n <= 2; n++ {
		if err := sp.Put(seg(n), []byte{n}); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(sp.Dir, ".rewind-x-1")
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := sp.Clean(seg(6), time.Now()); n != 2 || sp.Has(seg(1)) || sp.Has(seg(2)) || !sp.Has(seg(3)) || !sp.Has(seg(4)) || !sp.Has(seg(6)) {
		t.Errorf("Clean removed %d: %v", n, spoolNames(t, sp.Dir))
	}
	if n := sp.Clean(seg(6), time.Now().Add(2*SpoolMaxAge)); n != 4 || len(spoolNames(t, sp.Dir)) != 0 {
		t.Errorf("Clean of old files removed %d: %v", n, spoolNames(t, sp.Dir))
	}
	if err := sp.Remove(); err != nil {
		t.Fatal(err)
	}
}
