package archiver

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestDedupAcrossPaths backs up a folder, then the folder and a copy of it
// (cp -a) in one new snapshot, without a parent so that every file is
// read: the copy's chunks are all known, so only listings may be added.
func TestDedupAcrossPaths(t *testing.T) {
	cp := testutil.RequireTool(t, "cp")
	base := t.TempDir()
	a := filepath.Join(base, "A")
	var size int64
	add := func(name string, data []byte) {
		writeFile(t, filepath.Join(a, name), data)
		size += int64(len(data))
	}
	add("big.bin", randomBytes(1, 3<<20))
	add("log.txt", bytes.Repeat([]byte("2024-01-01 12:00:00 GET /index.html 200 1532\n"), 20000))
	for i := range 12 {
		add(fmt.Sprintf("small/%02d", i), randomBytes(uint64(100+i), 1000+i*4000))
	}
	add("empty", nil)

	r := newTestRepo(t, "")
	sn1, _ := backup(t, r, Options{}, a)
	if s := sn1.Summary; s.BytesRead != size || s.DataAdded < size/2 {
		t.Fatalf("first backup read %d of %d bytes and added %d", s.BytesRead, size, s.DataAdded)
	}

	b := filepath.Join(base, "B")
	if out, err := exec.Command(cp, "-a", a, b).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	sn2, _ := backup(t, r, Options{}, a, b)
	s := sn2.Summary
	if s.BytesRead != 2*size {
		t.Errorf("second backup read %d bytes, want both copies, %d", s.BytesRead, 2*size)
	}
	if s.DataBlobs != 0 {
		t.Errorf("second backup stored %d data blobs, want none", s.DataBlobs)
	}
	if s.DataAdded*100 >= size {
		t.Errorf("second backup added %d bytes, not under 1%% of the %d bytes backed up", s.DataAdded, size)
	}
	t.Logf("second backup: %d tree blobs, %d bytes added for %d bytes of files", s.TreeBlobs, s.DataAdded, size)
	for _, name := range []string{"big.bin", "log.txt", "small/07"} {
		na, nb := lookup(t, r, sn2, filepath.Join(a, name)), lookup(t, r, sn2, filepath.Join(b, name))
		if !slices.Equal(na.Content, nb.Content) || len(na.Content) == 0 {
			t.Errorf("%s: copy has chunks %v, original %v", name, nb.Content, na.Content)
		}
	}
	if n := lookup(t, r, sn2, filepath.Join(b, "big.bin")); len(n.Content) < 2 {
		t.Errorf("big.bin was cut into %d chunks: the test does not exercise the chunker", len(n.Content))
	}
}
