package archiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// partialTree writes a small tree: three directories of ten files, a
// nested directory and a symlink.
func partialTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for d := range 3 {
		for f := range 10 {
			writeFile(t, filepath.Join(src, fmt.Sprintf("d%d", d), fmt.Sprintf("f%02d", f)), randomBytes(uint64(d*10+f), 200+f*50))
		}
	}
	writeFile(t, filepath.Join(src, "d0", "deep", "deeper", "x"), []byte("x\n"))
	if err := os.Symlink("d0/f00", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestPartialMatchesFullWalk makes every kind of change (write, create in
// a new nested directory, delete, rename across directories, chmod of a
// directory, removal of a directory, a new symlink), takes a partial
// snapshot naming only the changed paths, then a normal backup of the same
// state: both must have the same listings, blob for blob, and the same
// totals, and the partial one must have read only the changed files.
func TestPartialMatchesFullWalk(t *testing.T) {
	src := partialTree(t)
	r := newTestRepo(t, "")
	sn1, _ := backup(t, r, Options{}, src)

	p := func(rel string) string { return filepath.Join(src, rel) }
	changed := []byte("a new version of f03\n")
	writeFile(t, p("d1/f03"), changed)
	writeFile(t, p("new/a/b/c.txt"), []byte("created in a new nested directory\n"))
	if err := os.Remove(p("d2/f09")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p("d0/f05"), p("d1/moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("d2"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(p("d0/deep")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d1/moved", p("link2")); err != nil {
		t.Fatal(err)
	}
	ch := &Changes{
		Paths:  []string{p("d1/f03"), p("d2/f09"), p("d0/f05"), p("d1/moved"), p("d2"), p("d0/deep"), p("link2")},
		Rescan: []string{p("new")},
	}
	sn2, _ := backup(t, r, Options{Parent: sn1, Changes: ch}, src)
	sn3, _ := backup(t, r, Options{Parent: sn2}, src)

	// Listings are compared node by node rather than blob by blob: reading
	// a symlink moves its atime, so two walks never agree on it.
	part, full := listAll(t, r, sn2, src), listAll(t, r, sn3, src)
	for p, n := range full {
		if part[p] != n {
			t.Errorf("%s:\npartial %s\nfull    %s", p, part[p], n)
		}
	}
	for p, n := range part {
		if _, ok := full[p]; !ok {
			t.Errorf("%s is only in the partial snapshot: %s", p, n)
		}
	}
	s2, s3 := sn2.Summary, sn3.Summary
	if s2.TotalFiles != s3.TotalFiles || s2.TotalBytes != s3.TotalBytes {
		t.Errorf("partial totals %d files, %d bytes; a full walk counts %d, %d", s2.TotalFiles, s2.TotalBytes, s3.TotalFiles, s3.TotalBytes)
	}
	if s2.FilesNew+s2.FilesChanged+s2.FilesUnchanged != s2.TotalFiles {
		t.Errorf("partial: %d new + %d changed + %d unchanged != %d total", s2.FilesNew, s2.FilesChanged, s2.FilesUnchanged, s2.TotalFiles)
	}
	// f03, the new file and the renamed one (a rename moves the ctime)
	// are read.
	if want := int64(len(changed) + len("created in a new nested directory\n") + 450); s2.BytesRead != want {
		t.Errorf("partial snapshot read %d bytes, want %d (the changed files only)", s2.BytesRead, want)
	}
	if got := content(t, r, lookup(t, r, sn2, p("d1/f03"))); string(got) != string(changed) {
		t.Errorf("d1/f03 holds %q", got)
	}
	for _, gone := range []string{"d2/f09", "d0/f05", "d0/deep"} {
		if _, err := lookupErr(r, sn2, p(gone)); err == nil {
			t.Errorf("%s is still in the partial snapshot", gone)
		}
	}
	if n := lookup(t, r, sn2, p("d2")); n.Mode != 0o700 {
		t.Errorf("d2 has mode %o in the partial snapshot, want 700", n.Mode)
	}
}

// TestPartialLooksOnlyAtChanges: an entry the change list does not name is
// taken from the parent without being looked at, even when it changed; a
// normal backup then finds it.
func TestPartialLooksOnlyAtChanges(t *testing.T) {
	src := partialTree(t)
	r := newTestRepo(t, "")
	sn1, _ := backup(t, r, Options{}, src)
	hidden := filepath.Join(src, "d2", "f04")
	named := filepath.Join(src, "d2", "f05")
	writeFile(t, hidden, []byte("not announced\n"))
	writeFile(t, named, []byte("announced\n"))

	sn2, _ := backup(t, r, Options{Parent: sn1, Changes: &Changes{Paths: []string{named}}}, src)
	if got := content(t, r, lookup(t, r, sn2, named)); string(got) != "announced\n" {
		t.Errorf("named file holds %q", got)
	}
	if got, want := lookup(t, r, sn2, hidden), lookup(t, r, sn1, hidden); !slices.Equal(got.Content, want.Content) || got.MTime != want.MTime {
		t.Errorf("an entry not named was looked at: %+v, parent had %+v", got, want)
	}
	sn3, _ := backup(t, r, Options{Parent: sn2}, src)
	if got := content(t, r, lookup(t, r, sn3, hidden)); string(got) != "not announced\n" {
		t.Errorf("a full walk did not catch the unannounced change: %q", got)
	}
}

// TestPartialInFluxAndUnchanged: a file named in InFlux is flagged; a
// partial backup whose named paths did not change saves nothing with
// SkipUnchanged.
func TestPartialInFluxAndUnchanged(t *testing.T) {
	src := partialTree(t)
	r := newTestRepo(t, "")
	sn1, _ := backup(t, r, Options{}, src)
	f := filepath.Join(src, "d0", "f01")

	a, err := New(r, Options{Parent: sn1, Changes: &Changes{Paths: []string{f}}, SkipUnchanged: true})
	if err != nil {
		t.Fatal(err)
	}
	if sn, err := a.Snapshot(t.Context(), []string{src}); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("nothing changed, yet Snapshot returned %v, %v", sn, err)
	}

	writeFile(t, f, []byte("still being written"))
	sn2, _ := backup(t, r, Options{Parent: sn1, Changes: &Changes{Paths: []string{f}}, InFlux: []string{f}}, src)
	if n := lookup(t, r, sn2, f); n.Flags&tree.FlagInFlux == 0 {
		t.Errorf("in-flux file has flags %b", n.Flags)
	}
	if n := lookup(t, r, sn2, filepath.Join(src, "d0", "f02")); n.Flags != 0 {
		t.Errorf("a file not in flux has flags %b", n.Flags)
	}
}

// lookupErr is snapshot.Lookup, for paths that may be absent.
func lookupErr(r *repository.Repository, sn *snapshot.Snapshot, p string) (*tree.Node, error) {
	return snapshot.Lookup(context.Background(), r, sn, p)
}

// listAll describes every node below the directory p of a snapshot, by
// path: every field but subtree IDs (the content of a directory is
// described by its children) and the atime of symlinks.
func listAll(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot, p string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := snapshot.Walk(context.Background(), r, p, lookup(t, r, sn, p).Subtree, func(q string, n *tree.Node) error {
		c := *n
		c.Subtree = nil
		if c.Type == tree.Symlink {
			c.ATime = 0
		}
		out[q] = fmt.Sprintf("%+v", c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
