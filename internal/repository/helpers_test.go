package repository

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
)

var testPassword = []byte("correct horse battery staple")

// testInit creates a repository on be with the cheap test KDF.
func testInit(t testing.TB, be backend.Backend, opt InitOptions) *Repository {
	t.Helper()
	if opt.KDF == (crypto.KDFParams{}) {
		opt.KDF = crypto.TestKDFParams
	}
	r, err := Init(context.Background(), be, testPassword, opt)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() { closeCodecs(r) })
	return r
}

// closeCodecs releases a repository's zstd coders but leaves the backend
// open, since tests reopen the same backend.
func closeCodecs(r *Repository) {
	r.zenc.Close()
	r.zdec.Close()
	r.zblob.Close()
}

// newMemRepo returns a repository in memory.
func newMemRepo(t testing.TB) (*Repository, *mem.Backend) {
	t.Helper()
	be := mem.New()
	return testInit(t, be, InitOptions{}), be
}

// newLocalRepo returns a repository in a temporary folder.
func newLocalRepo(t testing.TB) (*Repository, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return testInit(t, be, InitOptions{}), dir
}

// openLocal opens the repository in dir afresh, with new file handles.
func openLocal(t testing.TB, dir string, password []byte) (*Repository, error) {
	t.Helper()
	be, err := local.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	r, err := Open(context.Background(), be, password)
	if err == nil {
		t.Cleanup(func() { closeCodecs(r) })
	}
	return r, err
}

// reopen opens be again and loads its index, as a new process would.
func reopen(t testing.TB, be backend.Backend) *Repository {
	t.Helper()
	r, err := Open(context.Background(), be, testPassword)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { closeCodecs(r) })
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatalf("load index: %v", err)
	}
	return r
}

// noise returns n bytes that do not compress, derived from seed.
func noise(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for c := uint64(0); len(out) < n; c++ {
		binary.LittleEndian.PutUint64(ctr[:], c)
		h := sha256.Sum256(append([]byte(seed), ctr[:]...))
		out = append(out, h[:]...)
	}
	return out[:n]
}

// text returns n bytes of repetitive text, which compresses well.
func text(seed string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s line %d: the quick brown fox jumps over the lazy dog\n", seed, i%100)
	}
	return b.Bytes()[:n]
}

type testBlob struct {
	typ  pack.BlobType
	data []byte
}

// saveAll stores blobs in one write session and returns their IDs.
func saveAll(t testing.TB, r *Repository, blobs []testBlob) []id.ID {
	t.Helper()
	ctx := context.Background()
	r.StartWriting(ctx)
	ids := make([]id.ID, len(blobs))
	for k, b := range blobs {
		i, _, err := r.SaveBlob(ctx, b.typ, b.data)
		if err != nil {
			t.Fatalf("save blob %d: %v", k, err)
		}
		ids[k] = i
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return ids
}

// names lists the files of type t.
func names(t testing.TB, be backend.Backend, typ backend.FileType) []string {
	t.Helper()
	var out []string
	err := be.List(context.Background(), typ, func(fi backend.FileInfo) error {
		out = append(out, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// localFile returns the path of h in a local repository.
func localFile(dir string, h backend.Handle) string {
	switch h.Type {
	case backend.ConfigFile:
		return filepath.Join(dir, "config")
	case backend.PackFile:
		return filepath.Join(dir, "data", h.Name[:2], h.Name)
	}
	return filepath.Join(dir, h.Type.String(), h.Name)
}

// rewrite changes a stored file of a local repository in place. Stored
// files are read-only, so it makes the file writable first, as a person or
// a failing disk could.
func rewrite(t testing.TB, path string, change func([]byte) []byte) {
	t.Helper()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(change(b)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
}

// memReplace replaces a file of a memory backend.
func memReplace(t testing.TB, be *mem.Backend, h backend.Handle, data []byte) {
	t.Helper()
	ctx := context.Background()
	if err := be.Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
}

// memRead returns a file of a backend.
func memRead(t testing.TB, be backend.Backend, h backend.Handle) []byte {
	t.Helper()
	var out []byte
	err := be.Load(context.Background(), h, 0, 0, func(rd io.Reader) error {
		var err error
		out, err = io.ReadAll(rd)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// idOf returns the name a file of these bytes is stored under.
func idOf(b []byte) id.ID { return crypto.FileID(b) }
