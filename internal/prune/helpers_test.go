package prune

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

const testPassword = "prune test password"

// fence is a lock table for tests: the locks "held by others".
type fence struct {
	mu    sync.Mutex
	locks map[string]bool
}

func (f *fence) hold(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locks == nil {
		f.locks = map[string]bool{}
	}
	f.locks[id] = true
}

func (f *fence) release(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.locks, id)
}

func (f *fence) list(context.Context) ([]LockRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []LockRef
	for l := range f.locks {
		out = append(out, LockRef{ID: l, Desc: "test lock " + l})
	}
	return out, nil
}

func initRepo(t *testing.T, be backend.Backend) {
	t.Helper()
	r, err := repository.Init(context.Background(), be, []byte(testPassword),
		repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Init's handle is not closed: closing would close the backend.
	_ = r
}

// open opens the repository on be; withIndex loads the index, as every
// command but prune does.
func open(t *testing.T, be backend.Backend, withIndex bool) *repository.Repository {
	t.Helper()
	r, err := repository.Open(context.Background(), be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	if withIndex {
		if err := r.LoadIndex(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// backupDir backs up dir with a fresh repository handle, the way the CLI
// does: index loaded, leftovers of killed backups indexed first.
func backupDir(t *testing.T, be backend.Backend, dir string) *snapshot.Snapshot {
	t.Helper()
	r := open(t, be, true)
	return backupWith(t, r, dir)
}

func backupWith(t *testing.T, r *repository.Repository, dir string) *snapshot.Snapshot {
	t.Helper()
	ctx := context.Background()
	if _, _, err := r.IndexUnindexedPacks(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := archiver.New(r, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(ctx, []string{dir})
	if err != nil {
		t.Fatalf("backup %s: %v", dir, err)
	}
	return sn
}

func runPrune(t *testing.T, be backend.Backend, f *fence, opt Options) *Result {
	t.Helper()
	res, err := tryPrune(be, f, opt)
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	return res
}

func tryPrune(be backend.Backend, f *fence, opt Options) (*Result, error) {
	r, err := repository.Open(context.Background(), be, []byte(testPassword))
	if err != nil {
		return nil, err
	}
	if f == nil {
		f = &fence{}
	}
	opt.Locks = f.list
	opt.Host = "test"
	return Run(context.Background(), r, opt)
}

// forget removes snapshot files.
func forget(t *testing.T, be backend.Backend, sns ...*snapshot.Snapshot) {
	t.Helper()
	for _, sn := range sns {
		if err := be.Remove(context.Background(), backend.Handle{Type: backend.SnapshotFile, Name: sn.ID.String()}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkClean runs a full check with --read-data and fails on any problem
// or unindexed pack.
func checkClean(t *testing.T, be backend.Backend) *checker.Result {
	t.Helper()
	r := open(t, be, true)
	res, err := checker.Check(context.Background(), r, checker.Options{ReadData: true})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, p := range res.Problems {
		t.Errorf("check: %s: %s", p.Object, p.Error)
	}
	return res
}

// restoreEqual restores the snapshot and compares it with dir byte for
// byte (regular files only).
func restoreEqual(t *testing.T, be backend.Backend, snID id.ID, dir string) {
	t.Helper()
	ctx := context.Background()
	r := open(t, be, true)
	sn, err := snapshot.Load(ctx, r, snID)
	if err != nil {
		t.Fatalf("load snapshot %s: %v", snID.Short(), err)
	}
	target := t.TempDir()
	rs, err := restorer.New(r, restorer.Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Restore(ctx, sn, "/"); err != nil {
		t.Fatalf("restore %s: %v", snID.Short(), err)
	}
	got := filepath.Join(target, dir)
	n := 0
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		have, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil {
			return fmt.Errorf("restored %s: %w", rel, err)
		}
		if !bytes.Equal(have, want) {
			return fmt.Errorf("restored %s differs", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no files compared under %s", dir)
	}
}

// writeTree writes n random files of about size bytes under dir.
func writeTree(t *testing.T, dir string, seed uint64, n, size int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%03d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size/2+rng.IntN(size))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// packCount counts the stored packs.
func packCount(t *testing.T, be backend.Backend) (n int, size int64) {
	t.Helper()
	err := be.List(context.Background(), backend.PackFile, func(fi backend.FileInfo) error {
		n++
		size += fi.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, size
}

func fileCount(t *testing.T, be backend.Backend, ft backend.FileType) int {
	t.Helper()
	n := 0
	if err := be.List(context.Background(), ft, func(backend.FileInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
