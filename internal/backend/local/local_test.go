package local_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/test"
)

func create(t testing.TB, dir string) *local.Backend {
	t.Helper()
	be, err := local.Create(context.Background(), dir)
	if err != nil {
		t.Fatalf("Create(%s): %v", dir, err)
	}
	return be
}

func TestBackend(t *testing.T) {
	test.RunTests(t, func(t *testing.T) backend.Backend { return create(t, t.TempDir()) })
}

func BenchmarkBackend(b *testing.B) {
	test.RunBenchmarks(b, func(b *testing.B) backend.Backend { return create(b, b.TempDir()) })
}

// hexName returns a valid 64-digit name starting with prefix.
func hexName(prefix string) string { return prefix + strings.Repeat("0", 64-len(prefix)) }

func save(t *testing.T, be backend.Backend, h backend.Handle, data string) {
	t.Helper()
	if err := be.Save(context.Background(), h, backend.NewByteReader([]byte(data))); err != nil {
		t.Fatalf("Save(%v): %v", h, err)
	}
}

func loadAll(t *testing.T, be backend.Backend, h backend.Handle) string {
	t.Helper()
	var got []byte
	err := be.Load(context.Background(), h, 0, 0, func(rd io.Reader) (err error) {
		got, err = io.ReadAll(rd)
		return err
	})
	if err != nil {
		t.Fatalf("Load(%v): %v", h, err)
	}
	return string(got)
}

func names(t *testing.T, be backend.Backend, typ backend.FileType) []string {
	t.Helper()
	var list []string
	err := be.List(context.Background(), typ, func(fi backend.FileInfo) error {
		list = append(list, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%v): %v", typ, err)
	}
	return list
}

// tempFiles returns the temporary files anywhere under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestCreateLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	be := create(t, dir)
	defer be.Close()
	if be.Location() != dir {
		t.Errorf("Location() = %q, want %q", be.Location(), dir)
	}

	want := map[string]bool{".": true, "keys": true, "data": true, "index": true, "snapshots": true, "locks": true, "gc": true, "holds": true, "policy": true, "damaged": true, "labels": true, "events": true, "inventory": true, "wal": true, "binlog": true, "runbooks": true}
	for i := range 256 {
		want[filepath.Join("data", string("0123456789abcdef"[i>>4])+string("0123456789abcdef"[i&15]))] = true
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !want[rel] {
			t.Errorf("unexpected %s", rel)
		}
		delete(want, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want a folder with 0700", rel, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) > 0 {
		t.Errorf("missing: %v", want)
	}
}

func TestCreateExisting(t *testing.T) {
	dir := t.TempDir()
	be := create(t, dir)
	// Without a config file, creating again is fine (an interrupted init).
	be2 := create(t, dir)
	_ = be2.Close()

	save(t, be, backend.Handle{Type: backend.ConfigFile}, "config")
	_ = be.Close()
	_, err := local.Create(context.Background(), dir)
	if !errors.Is(err, backend.ErrExists) {
		t.Fatalf("Create over a repository: got %v, want ErrExists", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Join(dir, "missing"), filepath.Join(dir, "missing", "deeper")} {
		if _, err := local.Open(ctx, d); !errors.Is(err, local.ErrNoRepository) {
			t.Errorf("Open(%s): got %v, want ErrNoRepository", d, err)
		}
	}
	// A file where the folder should be.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Open(ctx, file); !errors.Is(err, local.ErrNoRepository) {
		t.Errorf("Open(%s) of a file: got %v, want ErrNoRepository", file, err)
	}

	repo := filepath.Join(dir, "repo")
	be := create(t, repo)
	if _, err := local.Open(ctx, repo); !errors.Is(err, local.ErrNoRepository) {
		t.Errorf("Open before the config is saved: got %v, want ErrNoRepository", err)
	}
	save(t, be, backend.Handle{Type: backend.ConfigFile}, "config")
	h := backend.Handle{Type: backend.SnapshotFile, Name: hexName("ab")}
	save(t, be, h, "snapshot")
	_ = be.Close()

	be, err := local.Open(ctx, repo+"/")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer be.Close()
	if got := loadAll(t, be, h); got != "snapshot" {
		t.Errorf("Load after Open = %q", got)
	}
}

// TestFileLayout checks where each type of file lands, and its mode.
func TestFileLayout(t *testing.T) {
	dir := t.TempDir()
	be := create(t, dir)
	defer be.Close()

	name := hexName("c3")
	files := map[backend.Handle]string{
		{Type: backend.ConfigFile}:                    "config",
		{Type: backend.KeyFile, Name: name}:           "keys/" + name,
		{Type: backend.PackFile, Name: name}:          "data/c3/" + name,
		{Type: backend.PackFile, Name: "ff"}:          "data/ff/ff",
		{Type: backend.IndexFile, Name: name}:         "index/" + name,
		{Type: backend.SnapshotFile, Name: name}:      "snapshots/" + name,
		{Type: backend.LockFile, Name: hexName("00")}: "locks/" + hexName("00"),
	}
	for h, path := range files {
		save(t, be, h, h.String())
		fi, err := os.Lstat(filepath.Join(dir, path))
		if err != nil {
			t.Errorf("%v: %v", h, err)
			continue
		}
		if fi.Mode() != 0o400 {
			t.Errorf("%v: mode %v, want -r--------", h, fi.Mode())
		}
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestTempFilesIgnored plants what a crash or a person leaves behind and
// checks that List skips it and nothing else minds.
func TestTempFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	be := create(t, dir)
	defer be.Close()

	pack := backend.Handle{Type: backend.PackFile, Name: hexName("ab")}
	idx := backend.Handle{Type: backend.IndexFile, Name: hexName("01")}
	save(t, be, pack, "pack")
	save(t, be, idx, "index")

	litter := []string{
		"data/ab/.tmp-xyz",
		"data/ab/.tmp-" + hexName("ab"),
		"data/ab/" + hexName("cd"), // a pack in the wrong folder
		"data/zz/" + hexName("aa"), // a folder that is no prefix
		"data/" + hexName("ab"),    // a pack outside the fan-out
		"index/.tmp-xyz",
		"index/README",
		"keys/.tmp-1",
		"snapshots/.tmp-",
		"locks/.tmp-xyz",
	}
	for _, p := range litter {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "index", hexName("02")), 0o700); err != nil {
		t.Fatal(err)
	}

	if got := names(t, be, backend.PackFile); len(got) != 1 || got[0] != pack.Name {
		t.Errorf("List(data) = %v, want only %s", got, pack.Name)
	}
	if got := names(t, be, backend.IndexFile); len(got) != 1 || got[0] != idx.Name {
		t.Errorf("List(index) = %v, want only %s", got, idx.Name)
	}
	for _, typ := range []backend.FileType{backend.KeyFile, backend.SnapshotFile, backend.LockFile} {
		if got := names(t, be, typ); len(got) != 0 {
			t.Errorf("List(%v) = %v, want nothing", typ, got)
		}
	}

	// Saving, loading and removing still work beside the litter.
	other := backend.Handle{Type: backend.PackFile, Name: hexName("abc")}
	save(t, be, other, "other")
	if got := loadAll(t, be, other); got != "other" {
		t.Errorf("Load = %q", got)
	}
	if err := be.Remove(context.Background(), pack); err != nil {
		t.Fatal(err)
	}
	// A folder under a valid name is no file.
	dirHandle := backend.Handle{Type: backend.IndexFile, Name: hexName("02")}
	if err := be.Remove(context.Background(), dirHandle); err == nil {
		t.Error("Remove of a folder succeeded")
	}
	if _, err := be.Stat(context.Background(), dirHandle); err == nil {
		t.Error("Stat of a folder succeeded")
	}
	if err := be.Load(context.Background(), dirHandle, 0, 0, func(io.Reader) error { return nil }); err == nil {
		t.Error("Load of a folder succeeded")
	}
	if len(tempFiles(t, dir)) != 6 {
		t.Errorf("the planted temporary files changed: %v", tempFiles(t, dir))
	}
}

// TestSaveFailureLeavesNoTemp checks that a failed Save cleans up.
func TestSaveFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	be := create(t, dir)
	defer be.Close()

	h := backend.Handle{Type: backend.PackFile, Name: hexName("ab")}
	rd := &failReader{n: 100_000}
	if err := be.Save(context.Background(), h, rd); !errors.Is(err, errFail) {
		t.Fatalf("Save: got %v, want the reader's error", err)
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

var errFail = errors.New("reader failed")

// failReader yields n zero bytes, then fails.
type failReader struct{ n, pos int }

func (r *failReader) Read(p []byte) (int, error) {
	if r.pos >= r.n {
		return 0, errFail
	}
	n := min(len(p), r.n-r.pos)
	clear(p[:n])
	r.pos += n
	return n, nil
}
func (r *failReader) Length() int64 { return int64(r.n) * 2 }
func (r *failReader) Rewind() error { r.pos = 0; return nil }

// TestSaveMissingFolder removes a data/<xx> folder by hand: Save makes it
// again.
func TestSaveMissingFolder(t *testing.T) {
	dir := t.TempDir()
	be := create(t, dir)
	defer be.Close()
	if err := os.Remove(filepath.Join(dir, "data", "7f")); err != nil {
		t.Fatal(err)
	}
	h := backend.Handle{Type: backend.PackFile, Name: hexName("7f")}
	save(t, be, h, "pack")
	if got := loadAll(t, be, h); got != "pack" {
		t.Errorf("Load = %q", got)
	}
}

// TestRemovedByOtherProcess checks that a descriptor cached by one backend
// does not outlive a removal and new save through another one.
func TestRemovedByOtherProcess(t *testing.T) {
	dir := t.TempDir()
	a := create(t, dir)
	defer a.Close()
	b := create(t, dir)
	defer b.Close()

	h := backend.Handle{Type: backend.PackFile, Name: hexName("12")}
	save(t, a, h, "first")
	if got := loadAll(t, a, h); got != "first" {
		t.Fatalf("Load = %q", got)
	}
	if err := b.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if err := a.Load(context.Background(), h, 0, 0, func(io.Reader) error { return nil }); !backend.IsNotExist(err) {
		t.Fatalf("Load after another backend removed the file: got %v, want ErrNotExist", err)
	}
	save(t, a, h, "first") // cached again...
	if got := loadAll(t, a, h); got != "first" {
		t.Fatalf("Load = %q", got)
	}
	if err := b.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	save(t, b, h, "second") // ...and replaced behind a's back
	if got := loadAll(t, a, h); got != "second" {
		t.Fatalf("Load after another backend replaced the file = %q, want second", got)
	}
}

func TestClosed(t *testing.T) {
	be := create(t, t.TempDir())
	h := backend.Handle{Type: backend.IndexFile, Name: hexName("ab")}
	save(t, be, h, "index")
	loadAll(t, be, h)
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	if err := be.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if err := be.Load(ctx, h, 0, 0, func(io.Reader) error { return nil }); err == nil {
		t.Error("Load after Close succeeded")
	}
	if err := be.Save(ctx, h, backend.NewByteReader(nil)); err == nil {
		t.Error("Save after Close succeeded")
	}
	if err := be.List(ctx, backend.IndexFile, func(backend.FileInfo) error { return nil }); err == nil {
		t.Error("List after Close succeeded")
	}
}

// TestLoadLargeRange reads a range at the end of a 32 MiB pack.
func TestLoadLargeRange(t *testing.T) {
	be := create(t, t.TempDir())
	defer be.Close()
	data := bytes.Repeat([]byte("0123456789abcdef"), 2<<20)
	h := backend.Handle{Type: backend.PackFile, Name: hexName("99")}
	if err := be.Save(context.Background(), h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	off := int64(len(data) - 5000)
	err := be.Load(context.Background(), h, 4096, off, func(rd io.Reader) error {
		got, err := io.ReadAll(rd)
		if err == nil && !bytes.Equal(got, data[off:off+4096]) {
			err = errors.New("wrong content")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestListRemovesStaleTemp: a listing removes temporary files left
// unchanged for a day (by a killed writer) and keeps fresh ones.
func TestListRemovesStaleTemp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	be := create(t, dir)
	defer be.Close()
	old := filepath.Join(dir, "data", "ab", ".tmp-killed")
	fresh := filepath.Join(dir, "data", "ab", ".tmp-writing")
	idxOld := filepath.Join(dir, "index", ".tmp-killed")
	for _, p := range []string{old, fresh, idxOld} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	day := time.Now().Add(-25 * time.Hour)
	for _, p := range []string{old, idxOld} {
		if err := os.Chtimes(p, day, day); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []backend.FileType{backend.PackFile, backend.IndexFile} {
		if err := be.List(context.Background(), typ, func(backend.FileInfo) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{old, idxOld} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale %s still there: %v", p, err)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file removed: %v", err)
	}
}
