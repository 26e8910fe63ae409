package archiver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSnapshotFiles stores two files from copies: each at its own path
// with its original's metadata and the copy's content; a file whose copy
// fails is listed in the summary and is not one of the snapshot's paths;
// when every copy fails nothing is stored.
func TestSnapshotFiles(t *testing.T) {
	r := newTestRepo(t, "")
	dir := t.TempDir()
	a, b, gone := filepath.Join(dir, "x", "a.db"), filepath.Join(dir, "y", "b.db"), filepath.Join(dir, "x", "c.db")
	for _, p := range []string{a, b, gone} {
		writeFile(t, p, []byte("live bytes, not stored"))
	}
	if err := os.Chmod(a, 0o640); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(a, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	copyA, copyB := randomBytes(1, 200<<10), randomBytes(2, 10)
	from := func(b []byte) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	failed := errors.New("capture failed")
	files := []FileCopy{
		{Path: b, Open: from(copyB)},
		{Path: gone, Open: func(context.Context) (io.ReadCloser, error) { return nil, failed }},
		{Path: a, Open: from(copyA)},
	}
	ar, err := New(r, Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := ar.SnapshotFiles(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sn.Paths, []string{a, b}) {
		t.Errorf("paths %v", sn.Paths)
	}
	if s := sn.Summary; s.TotalFiles != 2 || s.FilesNew != 2 || len(s.Errors) != 1 || s.Errors[0].Path != gone || s.Errors[0].Kind != "file" {
		t.Errorf("summary %+v", s)
	}
	na := lookup(t, r, sn, a)
	if got := content(t, r, na); !bytes.Equal(got, copyA) {
		t.Errorf("a holds %d bytes, not the copy's", len(got))
	}
	if na.Mode != 0o640 || na.MTime != mtime.UnixNano() || na.Size != uint64(len(copyA)) {
		t.Errorf("a's node: mode %o mtime %d size %d", na.Mode, na.MTime, na.Size)
	}
	if got := content(t, r, lookup(t, r, sn, b)); !bytes.Equal(got, copyB) {
		t.Errorf("b holds %q", got)
	}
	fi, err := os.Stat(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if n := lookup(t, r, sn, filepath.Join(dir, "x")); n.Mode != uint32(fi.Mode().Perm()) || n.MTime != fi.ModTime().UnixNano() {
		t.Errorf("the folder above keeps its own metadata: %+v", n)
	}

	// Again with the first as parent: the same copy is unchanged.
	ar, err = New(r, Options{Hostname: "h", Parent: sn})
	if err != nil {
		t.Fatal(err)
	}
	sn2, err := ar.SnapshotFiles(context.Background(), []FileCopy{{Path: a, Open: from(copyA)}, {Path: b, Open: from([]byte("new"))}})
	if err != nil {
		t.Fatal(err)
	}
	if s := sn2.Summary; s.FilesUnchanged != 1 || s.FilesChanged != 1 || s.FilesNew != 0 {
		t.Errorf("against the parent: %+v", s)
	}

	// Every copy failing stores nothing.
	ar, err = New(r, Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.SnapshotFiles(context.Background(), files[1:2]); !errors.Is(err, ErrNoFileCopied) || !errors.Is(err, failed) {
		t.Errorf("all failed: %v", err)
	}
}
