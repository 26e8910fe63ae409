package archiver

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
)

// TestEntries: a snapshot built from entries in any order (a file before
// its directory, directories never named) holds each entry at its place
// with its metadata and content, cut as a file walked with LargeFile = 1
// is (the same chunks), and counts files against the parent.
func TestEntries(t *testing.T) {
	ctx := context.Background()
	r := newTestRepo(t, "")
	big := randomBytes(7, 3<<20)
	add := func(e *Entries, rel string, n tree.Node, data []byte) {
		t.Helper()
		var rd *bytes.Reader
		if data != nil {
			rd = bytes.NewReader(data)
		}
		got, err := e.Add(ctx, rel, n, rd)
		if err != nil {
			t.Fatalf("Add %s: %v", rel, err)
		}
		if int(got) != len(data) {
			t.Fatalf("Add %s: %d bytes, want %d", rel, got, len(data))
		}
	}
	build := func(opt Options, change bool) *Entries {
		a, err := New(r, opt)
		if err != nil {
			t.Fatal(err)
		}
		e, err := a.NewEntries(ctx, "/srv/pg/data")
		if err != nil {
			t.Fatal(err)
		}
		add(e, "base/1/16384", tree.Node{Type: tree.File, Mode: 0o600, UID: 5, GID: 6, MTime: 1e18}, big)
		add(e, "base", tree.Node{Type: tree.Dir, Mode: 0o700, UID: 5, GID: 6, MTime: 2e18}, nil)
		small := []byte("15\n")
		if change {
			small = []byte("16\n")
		}
		add(e, "PG_VERSION", tree.Node{Type: tree.File, Mode: 0o600, MTime: 1e18}, small)
		add(e, "pg_tblspc/x", tree.Node{Type: tree.Symlink, LinkTarget: "/elsewhere"}, nil)
		if opt.Parent != nil {
			// Named after their content this time: unchanged then.
			add(e, "base/1", tree.Node{Type: tree.Dir, Mode: 0o700, MTime: 3e18}, nil)
			add(e, "pg_tblspc", tree.Node{Type: tree.Dir, Mode: 0o700, MTime: 3e18}, nil)
		}
		return e
	}
	sn0, err := build(Options{}, false).Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := build(Options{Parent: sn0}, false).Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sn0.Paths) != 1 || sn0.Paths[0] != "/srv/pg/data" || sn0.Summary.FilesNew != 2 || sn0.Summary.TotalBytes != int64(len(big)+3) {
		t.Fatalf("snapshot paths %v summary %+v", sn.Paths, sn.Summary)
	}
	f := lookup(t, r, sn, "/srv/pg/data/base/1/16384")
	if f.UID != 5 || f.Mode != 0o600 || f.MTime != 1e18 || !bytes.Equal(content(t, r, f), big) {
		t.Errorf("file node %+v", f)
	}
	if d := lookup(t, r, sn, "/srv/pg/data/base"); d.Type != tree.Dir || d.MTime != 2e18 {
		t.Errorf("directory named after its file: %+v", d)
	}
	if l := lookup(t, r, sn, "/srv/pg/data/pg_tblspc/x"); l.Type != tree.Symlink || l.LinkTarget != "/elsewhere" {
		t.Errorf("symlink %+v", l)
	}
	// The same chunks as a file read from disk with the small profile.
	a, _ := New(r, Options{LargeFile: 1})
	chunks, _, err := a.storeStream(ctx, bytes.NewReader(big), repository.ProfileSmall)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 2 || len(f.Content) != len(chunks) || f.Content[0] != chunks[0] {
		t.Errorf("entries cut the file into %d chunks, the small profile into %d", len(f.Content), len(chunks))
	}
	// Against the parent: one changed, one unchanged, nothing new.
	sn2, err := build(Options{Parent: sn}, true).Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := sn2.Summary; s.FilesNew != 0 || s.FilesChanged != 1 || s.FilesUnchanged != 1 || s.DataAdded > 4096 || s.DirsUnchanged != 3 || s.DirsChanged != 1 {
		t.Errorf("second snapshot summary %+v", s)
	}

	// Bad entries are refused.
	a, _ = New(r, Options{})
	e, err := a.NewEntries(ctx, "/d")
	if err != nil {
		t.Fatal(err)
	}
	add(e, "f", tree.Node{Type: tree.File}, []byte("x"))
	for _, rel := range []string{"f", "../x", "/abs", "f/under-a-file", "a/../../b"} {
		if _, err := e.Add(ctx, rel, tree.Node{Type: tree.File}, strings.NewReader("y")); err == nil {
			t.Errorf("Add(%q) accepted", rel)
		}
	}
	if err := e.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.NewEntries(ctx, "/"); err == nil {
		t.Errorf("NewEntries(/) accepted")
	}
}

func FuzzEntriesPath(f *testing.F) {
	for _, s := range []string{"base/1/2", "", ".", "../x", "a//b/", "a/./b", "/x", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		parts, err := splitRel(rel)
		if err != nil {
			return
		}
		for _, p := range parts {
			if p == "" || p == "." || p == ".." || strings.Contains(p, "/") {
				t.Fatalf("splitRel(%q) = %q", rel, parts)
			}
		}
	})
}
