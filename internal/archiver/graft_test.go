package archiver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/tree"
)

// TestLateFilesGrafted: files named by AfterWalk land at their paths,
// next to the walked ones, replacing a walked entry of the same name and
// making the directories missing on the way; the walked files are kept.
func TestLateFilesGrafted(t *testing.T) {
	r := newTestRepo(t, "")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mustWrite := func(p string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(filepath.Join(data, "base", "1"), randomBytes(1, 300<<10))
	mustWrite(filepath.Join(data, "label"), []byte("walked"))
	if err := os.Symlink("/elsewhere", filepath.Join(data, "wal")); err != nil {
		t.Fatal(err)
	}
	staged := filepath.Join(dir, "staged")
	label := randomBytes(2, 100)
	seg := randomBytes(3, 1<<20)
	mustWrite(filepath.Join(staged, "label"), label)
	mustWrite(filepath.Join(staged, "seg"), seg)
	called := 0
	sn, _ := backup(t, r, Options{AfterWalk: func(context.Context) ([]LateFile, error) {
		called++
		return []LateFile{
			{Path: filepath.Join(data, "label"), Source: filepath.Join(staged, "label")},
			{Path: filepath.Join(data, "wal", "sub", "seg"), Source: filepath.Join(staged, "seg")},
		}, nil
	}}, data)
	if called != 1 {
		t.Fatalf("AfterWalk called %d times", called)
	}
	if got := content(t, r, lookup(t, r, sn, filepath.Join(data, "label"))); string(got) != string(label) {
		t.Errorf("label holds %q, want the late file's content", got)
	}
	if n := lookup(t, r, sn, filepath.Join(data, "wal")); n.Type != tree.Dir {
		t.Errorf("wal is a %v, want the directory the late file needs", n.Type)
	}
	if got := content(t, r, lookup(t, r, sn, filepath.Join(data, "wal", "sub", "seg"))); string(got) != string(seg) {
		t.Errorf("segment content differs (%d bytes)", len(got))
	}
	if got := content(t, r, lookup(t, r, sn, filepath.Join(data, "base", "1"))); string(got) != string(randomBytes(1, 300<<10)) {
		t.Errorf("walked file lost or changed by the graft")
	}
	// A late file outside the targets is refused and nothing is saved.
	a, err := New(r, Options{AfterWalk: func(context.Context) ([]LateFile, error) {
		return []LateFile{{Path: "/outside/x", Source: filepath.Join(staged, "seg")}}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Snapshot(context.Background(), []string{data}); err == nil {
		t.Fatal("a late file outside the backup targets was accepted")
	}
}
