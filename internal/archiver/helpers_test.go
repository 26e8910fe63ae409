package archiver

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

const testPassword = "archiver test password"

// newTestRepo initialises a repository in a new folder under dir (a
// t.TempDir() when dir is ""), with cheap key derivation.
func newTestRepo(t testing.TB, dir string) *repository.Repository {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(ctx, be, []byte(testPassword), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// backup runs one archiver over paths and returns the snapshot it stored
// and the archiver, for Skipped and Vanished.
func backup(t testing.TB, r *repository.Repository, opt Options, paths ...string) (*snapshot.Snapshot, *Archiver) {
	t.Helper()
	a, err := New(r, opt)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(context.Background(), paths)
	if err != nil {
		t.Fatalf("backup %q: %v", paths, err)
	}
	return sn, a
}

// lookup returns the snapshot's node at p.
func lookup(t testing.TB, r *repository.Repository, sn *snapshot.Snapshot, p string) *tree.Node {
	t.Helper()
	n, err := snapshot.Lookup(context.Background(), r, sn, p)
	if err != nil {
		t.Fatalf("lookup %s: %v", p, err)
	}
	return n
}

// content returns the bytes the snapshot holds for the file node n.
func content(t testing.TB, r *repository.Repository, n *tree.Node) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := restorer.WriteContent(context.Background(), r, n, &buf); err != nil {
		t.Fatalf("content of %q: %v", n.Name, err)
	}
	return buf.Bytes()
}

// randomBytes returns n bytes that do not compress, reproducibly for seed.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hasError reports whether errs names path p.
func hasError(errs []snapshot.FileError, p string) bool {
	for _, e := range errs {
		if e.Path == p {
			return true
		}
	}
	return false
}
