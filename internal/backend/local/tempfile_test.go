package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

func writeTemp(t *testing.T, b *Backend, content []byte) *os.File {
	t.Helper()
	f, err := b.TempFile(backend.PackFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSaveTemp(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	b, err := Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := backend.Handle{Type: backend.PackFile, Name: "ab12"}
	f := writeTemp(t, b, []byte("pack content"))
	tmp := f.Name()
	if err := b.SaveTemp(ctx, h, f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file still there: %v", err)
	}
	var got []byte
	if err := b.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		got, err = io.ReadAll(rd)
		return err
	}); err != nil || !bytes.Equal(got, []byte("pack content")) {
		t.Fatalf("load after SaveTemp: %q, %v", got, err)
	}
	fi, err := os.Stat(b.filename(h))
	if err != nil || fi.Mode().Perm() != fileMode {
		t.Fatalf("stored file mode %v, %v", fi.Mode(), err)
	}
	// The same content again is fine and leaves no temporary file.
	f = writeTemp(t, b, []byte("pack content"))
	if err := b.SaveTemp(ctx, h, f); err != nil {
		t.Fatalf("same content: %v", err)
	}
	// Other content under the same name is refused, and the stored file
	// is untouched.
	f = writeTemp(t, b, []byte("other content"))
	if err := b.SaveTemp(ctx, h, f); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("different content: %v, want ErrExists", err)
	}
	n := 0
	if err := b.List(ctx, backend.PackFile, func(fi backend.FileInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("list: %d packs, %v", n, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "data", tempPrefix+"*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
