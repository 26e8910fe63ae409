package local

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

func modeOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode() & (fs.ModePerm | fs.ModeSetgid)
}

// TestAccess: a repository switched to group access keeps it for what is
// written afterwards, whatever the umask, and a private one stays private.
func TestAccess(t *testing.T) {
	ctx := context.Background()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "repo")
	b, err := Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := backend.Handle{Type: backend.ConfigFile}
	if err := b.Save(ctx, cfg, backend.NewByteReader([]byte("config"))); err != nil {
		t.Fatal(err)
	}
	pack := backend.Handle{Type: backend.PackFile, Name: accessName("ab")}
	if err := b.Save(ctx, pack, backend.NewByteReader([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got := modeOf(t, b.filename(pack)); got != 0o400 {
		t.Fatalf("private repository: pack mode %v", got)
	}
	if got := modeOf(t, filepath.Join(dir, "data", "ab")); got != 0o700 {
		t.Fatalf("private repository: folder mode %v", got)
	}

	for _, a := range []Access{{GroupRead: true}, {GroupRead: true, GroupWrite: true}, {}} {
		if err := SetAccess(dir, a, -1); err != nil {
			t.Fatal(err)
		}
		b, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if b.Access() != a {
			t.Fatalf("set %v, opened %v", a, b.Access())
		}
		if got := modeOf(t, b.filename(pack)); got != a.FileMode() {
			t.Fatalf("%v: old pack mode %v, want %v", a, got, a.FileMode())
		}
		// A new file, in a folder made by the write.
		if err := os.Remove(filepath.Join(dir, "data", "cd")); err != nil {
			t.Fatal(err)
		}
		h := backend.Handle{Type: backend.PackFile, Name: accessName("cd" + fmt.Sprintf("%d%d", b2i(a.GroupRead), b2i(a.GroupWrite)))}
		if err := b.Save(ctx, h, backend.NewByteReader(bytes.Repeat([]byte("x"), 10))); err != nil {
			t.Fatal(err)
		}
		if got := modeOf(t, b.filename(h)); got != a.FileMode() {
			t.Fatalf("%v: new pack mode %v, want %v", a, got, a.FileMode())
		}
		if got := modeOf(t, filepath.Dir(b.filename(h))); got != a.DirMode() {
			t.Fatalf("%v: new folder mode %v, want %v", a, got, a.DirMode())
		}
		f, err := b.TempFile(backend.PackFile)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Write([]byte("temp"))
		th := backend.Handle{Type: backend.PackFile, Name: accessName("ef" + fmt.Sprintf("%d%d", b2i(a.GroupRead), b2i(a.GroupWrite)))}
		if err := b.SaveTemp(ctx, th, f); err != nil {
			t.Fatal(err)
		}
		if got := modeOf(t, b.filename(th)); got != a.FileMode() {
			t.Fatalf("%v: SaveTemp mode %v, want %v", a, got, a.FileMode())
		}
		for _, n := range []backend.Handle{h, th} {
			if err := b.Remove(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		b.Close()
	}
}

func accessName(prefix string) string {
	for len(prefix) < 64 {
		prefix += "0"
	}
	return prefix
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
