package archiver

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadFrom backs up a real folder whose content is read from another
// one (as from a snapshot mount): the snapshot holds the copy's content,
// symlink and subfolder at the real paths, and nothing under the copy's
// path.
func TestReadFrom(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "srv", "data")
	snap := filepath.Join(dir, "snap")
	writeFile(t, filepath.Join(real, "a.txt"), []byte("live, changed after the snapshot"))
	writeFile(t, filepath.Join(snap, "a.txt"), []byte("as frozen"))
	writeFile(t, filepath.Join(snap, "sub", "b.txt"), []byte("only in the copy"))
	if err := os.Symlink("a.txt", filepath.Join(snap, "link")); err != nil {
		t.Fatal(err)
	}
	r := newTestRepo(t, "")
	sn, _ := backup(t, r, Options{ReadFrom: []ReadFrom{{Real: real, Source: snap}}}, real)
	if len(sn.Paths) != 1 || sn.Paths[0] != real {
		t.Fatalf("snapshot paths %q, want [%s]", sn.Paths, real)
	}
	if got := string(content(t, r, lookup(t, r, sn, filepath.Join(real, "a.txt")))); got != "as frozen" {
		t.Errorf("a.txt holds %q, want the copy's content", got)
	}
	if got := string(content(t, r, lookup(t, r, sn, filepath.Join(real, "sub", "b.txt")))); got != "only in the copy" {
		t.Errorf("sub/b.txt holds %q", got)
	}
	if n := lookup(t, r, sn, filepath.Join(real, "link")); n.LinkTarget != "a.txt" {
		t.Errorf("link points to %q, want a.txt", n.LinkTarget)
	}
	if len(sn.Summary.Errors) > 0 {
		t.Errorf("errors: %+v", sn.Summary.Errors)
	}
}

// TestReadFromChecks refuses a mapping whose source is missing or
// relative.
func TestReadFromChecks(t *testing.T) {
	r := newTestRepo(t, "")
	dir := t.TempDir()
	for _, m := range []ReadFrom{
		{Real: dir, Source: filepath.Join(dir, "missing")},
		{Real: dir, Source: "relative"},
	} {
		if _, err := New(r, Options{ReadFrom: []ReadFrom{m}}); err == nil {
			t.Errorf("New accepted --read-from %s=%s", m.Real, m.Source)
		}
	}
	if _, err := ParseReadFrom("/a"); err == nil {
		t.Error("ParseReadFrom accepted a value without =")
	}
}
