package archiver

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUnchangedBackupReadsNothing backs up a tree of 200 files twice, the
// second time against the first snapshot: no file may be opened, no data
// stored, and the target's listings must come out identical. Then one
// file's content changes and exactly it must be read again.
func TestUnchangedBackupReadsNothing(t *testing.T) {
	const dirs, perDir = 4, 50
	src := filepath.Join(t.TempDir(), "src")
	var files []string
	for d := range dirs {
		for f := range perDir {
			p := filepath.Join(src, fmt.Sprintf("d%d", d), fmt.Sprintf("f%03d", f))
			// Mostly small files, and a few past the chunker's minimum.
			size := 100 + (d*perDir+f)*37
			if f%25 == 0 {
				size = 600 << 10
			}
			writeFile(t, p, randomBytes(uint64(d*perDir+f), size))
			files = append(files, p)
		}
	}
	r := newTestRepo(t, "")

	sn1, _ := backup(t, r, Options{}, src)
	s1 := sn1.Summary
	if s1.FilesNew != dirs*perDir || s1.TotalFiles != dirs*perDir || s1.BytesRead != s1.TotalBytes {
		t.Fatalf("first backup: %d new of %d files, read %d of %d bytes", s1.FilesNew, s1.TotalFiles, s1.BytesRead, s1.TotalBytes)
	}

	sn2, _ := backup(t, r, Options{Parent: sn1}, src)
	s2 := sn2.Summary
	if s2.BytesRead != 0 {
		t.Errorf("unchanged backup read %d bytes, want 0", s2.BytesRead)
	}
	if s2.FilesUnchanged != dirs*perDir || s2.FilesNew != 0 || s2.FilesChanged != 0 {
		t.Errorf("unchanged backup: files %d new, %d changed, %d unchanged; want all %d unchanged",
			s2.FilesNew, s2.FilesChanged, s2.FilesUnchanged, dirs*perDir)
	}
	if s2.DataBlobs != 0 {
		t.Errorf("unchanged backup stored %d data blobs", s2.DataBlobs)
	}
	// The target's own listing, and so every listing below it, must be
	// the same blobs. The directories above it (/tmp and the test's
	// temporary folders) are shared with whatever else runs on the
	// machine and may change between the backups; only their listings,
	// one blob per path component at most, may be new.
	before, after := lookup(t, r, sn1, src), lookup(t, r, sn2, src)
	if !slices.Equal(before.Subtree, after.Subtree) {
		t.Errorf("listing of %s changed between unchanged backups: %v, then %v", src, before.Subtree, after.Subtree)
		for d := range dirs {
			p := filepath.Join(src, fmt.Sprintf("d%d", d))
			b, a := lookup(t, r, sn1, p), lookup(t, r, sn2, p)
			if b.ATime != a.ATime || b.MTime != a.MTime || b.CTime != a.CTime {
				t.Logf("%s: atime %d → %d, mtime %d → %d, ctime %d → %d", p, b.ATime, a.ATime, b.MTime, a.MTime, b.CTime, a.CTime)
			}
		}
	}
	ancestors := int64(strings.Count(src, "/"))
	if s2.TreeBlobs > ancestors {
		t.Errorf("unchanged backup stored %d tree blobs, more than the %d listings above the target", s2.TreeBlobs, ancestors)
	}
	t.Logf("unchanged backup: %d tree blobs (%d bytes) for the folders above the target", s2.TreeBlobs, s2.DataAdded)

	// Change one file's content, keeping its size, with a clearly later
	// mtime (the kernel's clock may not have ticked since the write).
	changed := files[117]
	fi, err := os.Stat(changed)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, changed, randomBytes(999, int(fi.Size())))
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(changed, later, later); err != nil {
		t.Fatal(err)
	}
	sn3, _ := backup(t, r, Options{Parent: sn2}, src)
	s3 := sn3.Summary
	if s3.BytesRead != fi.Size() {
		t.Errorf("after changing one file of %d bytes, read %d bytes", fi.Size(), s3.BytesRead)
	}
	if s3.FilesChanged != 1 || s3.FilesUnchanged != dirs*perDir-1 || s3.FilesNew != 0 {
		t.Errorf("after changing one file: %d new, %d changed, %d unchanged", s3.FilesNew, s3.FilesChanged, s3.FilesUnchanged)
	}
	if s3.DataBlobs != 1 {
		t.Errorf("after changing one file: %d data blobs stored, want 1", s3.DataBlobs)
	}
	if got := content(t, r, lookup(t, r, sn3, changed)); string(got) != string(randomBytes(999, int(fi.Size()))) {
		t.Errorf("snapshot holds the old content of %s", changed)
	}
}
