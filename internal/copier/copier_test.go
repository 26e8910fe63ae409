package copier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/rewind-backup/rewind/internal/chunker"
	"github.com/rewind-backup/rewind/internal/copier"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

const password = "copier test"

// tinyChunks are chunker profiles small enough that a 10 MiB file has more
// than 8192 chunks, so that its chunk list is kept in content-list blobs
// (docs/FORMAT.md §8) and the copy must follow them.
var tinyChunks = map[string]chunker.Params{
	repository.ProfileDefault: {Min: 256, Avg: 1 << 10, Max: 4 << 10},
	repository.ProfileSmall:   {Min: 64, Avg: 256, Max: 1 << 10},
}

// newRepo creates a repository in a new folder. With from set, it shares
// from's chunking and blob IDs (InitSharingChunking).
func newRepo(t *testing.T, opt repository.InitOptions, from *repository.Repository) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	opt.KDF = crypto.TestKDFParams
	var r *repository.Repository
	if from != nil {
		r, err = repository.InitSharingChunking(ctx, be, []byte(password), opt, from)
	} else {
		r, err = repository.Init(ctx, be, []byte(password), opt)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openRepo opens the repository in dir as a new process would: index
// loaded, and packs left by an interrupted writer indexed.
func openRepo(t *testing.T, dir string, wrap func(backend.Backend) backend.Backend) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	var be backend.Backend
	be, err := local.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		be = wrap(be)
	}
	r, err := repository.Open(ctx, be, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.IndexUnindexedPacks(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// writeData fills dir with files: one of 10 MiB (content lists with tiny
// chunks), some small ones, an empty one, a sparse one and a symlink.
func writeData(t *testing.T, dir string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	files := map[string][]byte{
		"big.bin":   randomBytes(rng, 10<<20),
		"empty":     nil,
		"etc/a.cnf": []byte("listen 8080\n"),
	}
	for i := range 30 {
		files[fmt.Sprintf("www/%02d/page%d.html", i%5, i)] = randomBytes(rng, 500+rng.IntN(40_000))
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), 3<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Symlink("etc/a.cnf", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// backup backs up dir into r.
func backup(t *testing.T, r *repository.Repository, dir string, parent *snapshot.Snapshot) *snapshot.Snapshot {
	t.Helper()
	a, err := archiver.New(r, archiver.Options{Hostname: "web1", ProgramVersion: "rewind test", Parent: parent, Tags: []string{"nightly"}})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// copyAll copies every snapshot of src into dst, oldest first.
func copyAll(t *testing.T, src, dst *repository.Repository) (*copier.Copier, []copier.Result) {
	t.Helper()
	c, res, err := tryCopyAll(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return c, res
}

func tryCopyAll(src, dst *repository.Repository) (*copier.Copier, []copier.Result, error) {
	ctx := context.Background()
	existing, err := snapshot.List(ctx, dst, nil)
	if err != nil {
		return nil, nil, err
	}
	sns, err := snapshot.List(ctx, src, nil)
	if err != nil {
		return nil, nil, err
	}
	c := copier.New(src, dst, existing, copier.Options{})
	var out []copier.Result
	for _, sn := range sns {
		res, err := c.Copy(ctx, sn)
		if err != nil {
			return c, out, err
		}
		out = append(out, res)
	}
	return c, out, nil
}

// restoreSame restores snapshot i of r and compares it byte for byte with
// dir, which it backed up.
func restoreSame(t *testing.T, r *repository.Repository, i id.ID, dir string) {
	t.Helper()
	ctx := context.Background()
	sn, err := snapshot.Load(ctx, r, i)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restore")
	rs, err := restorer.New(r, restorer.Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Restore(ctx, sn, dir); err != nil {
		t.Fatal(err)
	}
	want, got := readTree(t, dir), readTree(t, target)
	if len(want) != len(got) {
		t.Errorf("restored %d entries, want %d", len(got), len(want))
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || !bytes.Equal(g, w) {
			t.Errorf("%s: restored content differs (%d bytes, want %d)", name, len(g), len(w))
		}
	}
}

// readTree returns the files of dir (and symlink targets) by relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			out[rel] = []byte("-> " + l)
			return err
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkClean runs a full check with data verification.
func checkClean(t *testing.T, r *repository.Repository) {
	t.Helper()
	res, err := checker.Check(context.Background(), r, checker.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 || len(res.Unindexed) > 0 {
		t.Fatalf("check: %d problems (%v), %d unindexed packs", len(res.Problems), res.Problems, len(res.Unindexed))
	}
}

// TestCopyByID copies into a repository made with InitSharingChunking:
// blobs keep their IDs, a second run skips everything, a new snapshot
// transfers only what changed, and a backup made directly into the
// destination deduplicates against the copied data.
func TestCopyByID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	writeData(t, data, 1)
	srcDir := newRepo(t, repository.InitOptions{Chunkers: tinyChunks}, nil)
	src := openRepo(t, srcDir, nil)
	first := backup(t, src, data, nil)

	dstDir := newRepo(t, repository.InitOptions{}, src)
	dst := openRepo(t, dstDir, nil)
	if !dst.SharesChunking(src) || !dst.SharesBlobIDs(src) {
		t.Fatal("InitSharingChunking: the destination does not share the source's chunking and IDs")
	}
	if dst.Config().ID == src.Config().ID {
		t.Error("the destination has the source's repository ID")
	}
	if _, err := dst.Key().Open(nil, src.Key().Seal(nil, []byte("sealed by the source"))); err == nil {
		t.Error("the destination opens what the source's encryption key sealed")
	}
	c, res := copyAll(t, src, dst)
	if c.Mode() != copier.ModeByID || len(res) != 1 || res[0].Skipped {
		t.Fatalf("mode %s, results %+v", c.Mode(), res)
	}
	t.Logf("first copy: %d data blobs, %d tree blobs, %d bytes (%d stored)", res[0].DataBlobs, res[0].TreeBlobs, res[0].BytesAdded, res[0].BytesStored)
	if first.Summary.DataBlobs < 8192 || res[0].DataBlobs != first.Summary.DataBlobs || res[0].TreeBlobs != first.Summary.TreeBlobs {
		t.Errorf("copied %d data and %d tree blobs; the backup stored %d and %d", res[0].DataBlobs, res[0].TreeBlobs, first.Summary.DataBlobs, first.Summary.TreeBlobs)
	}
	cp, err := snapshot.Load(ctx, dst, res[0].CopyID)
	if err != nil {
		t.Fatal(err)
	}
	if cp.CopiedFrom == nil || *cp.CopiedFrom != first.ID || !slices.Equal(cp.Tree, first.Tree) ||
		cp.Hostname != "web1" || cp.Tags[0] != "nightly" || !cp.Time.Equal(first.Time) || cp.Summary == nil {
		t.Errorf("copy %+v of %+v", cp, first)
	}
	restoreSame(t, dst, res[0].CopyID, data)
	checkClean(t, dst)

	// A second run, as a new process, finds the copy and transfers nothing.
	dst = openRepo(t, dstDir, nil)
	_, res = copyAll(t, src, dst)
	if len(res) != 1 || !res[0].Skipped || res[0].DataBlobs+res[0].TreeBlobs != 0 || res[0].CopyID != cp.ID {
		t.Errorf("second copy: %+v", res)
	}

	// A new snapshot with one changed file: only its blobs are new. Its
	// parent is mapped to the parent's copy.
	rng := rand.New(rand.NewPCG(9, 9))
	if err := os.WriteFile(filepath.Join(data, "www/01/page1.html"), randomBytes(rng, 30_000), 0o644); err != nil {
		t.Fatal(err)
	}
	second := backup(t, src, data, first)
	_, res = copyAll(t, src, dst)
	if len(res) != 2 || !res[0].Skipped || res[1].Skipped {
		t.Fatalf("copy after a new backup: %+v", res)
	}
	t.Logf("copy of the new snapshot: %d data blobs, %d tree blobs, %d bytes", res[1].DataBlobs, res[1].TreeBlobs, res[1].BytesAdded)
	if res[1].DataBlobs != second.Summary.DataBlobs || res[1].BytesAdded > 100_000 {
		t.Errorf("copy of a snapshot with one changed file stored %d data blobs (the backup %d), %d bytes",
			res[1].DataBlobs, second.Summary.DataBlobs, res[1].BytesAdded)
	}
	cp2, err := snapshot.Load(ctx, dst, res[1].CopyID)
	if err != nil {
		t.Fatal(err)
	}
	if cp2.Parent == nil || *cp2.Parent != cp.ID {
		t.Errorf("parent of the copy: %v, want the first copy %s", cp2.Parent, cp.ID.Short())
	}
	restoreSame(t, dst, cp2.ID, data)

	// Same chunking and IDs: a backup of the same data made directly into
	// the destination stores no data blob.
	direct := backup(t, dst, data, nil)
	t.Logf("direct backup into the destination: %d data blobs, %d bytes", direct.Summary.DataBlobs, direct.Summary.DataAdded)
	if direct.Summary.DataBlobs != 0 {
		t.Errorf("a backup into the destination stored %d data blobs (%d bytes) the copy had stored", direct.Summary.DataBlobs, direct.Summary.DataAdded)
	}

	// Copying back does not duplicate: the copies name the originals.
	_, back := copyAll(t, dst, src)
	for _, r := range back {
		if r.Source.ID == direct.ID {
			if r.Skipped {
				t.Error("the direct backup was not copied back")
			}
			continue
		}
		if !r.Skipped {
			t.Errorf("copy %s copied back to the source as a new snapshot", r.Source.ID.Short())
		}
	}
	checkClean(t, dst)
	checkClean(t, src)
}

// TestCopyRehash copies into a repository with its own keys and chunker:
// blobs are hashed again and trees rewritten, and the copy restores bit
// for bit.
func TestCopyRehash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	writeData(t, data, 2)
	srcDir := newRepo(t, repository.InitOptions{Chunkers: tinyChunks}, nil)
	src := openRepo(t, srcDir, nil)
	first := backup(t, src, data, nil)

	dstDir := newRepo(t, repository.InitOptions{Compression: "none"}, nil)
	dst := openRepo(t, dstDir, nil)
	c, res := copyAll(t, src, dst)
	if c.Mode() != copier.ModeRehash || len(res) != 1 || res[0].Skipped {
		t.Fatalf("mode %s, results %+v", c.Mode(), res)
	}
	t.Logf("first copy: %d data blobs, %d tree blobs, %d bytes", res[0].DataBlobs, res[0].TreeBlobs, res[0].BytesAdded)
	cp, err := snapshot.Load(ctx, dst, res[0].CopyID)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(cp.Tree, first.Tree) {
		t.Error("the copy's root has the source's IDs although the ID keys differ")
	}
	restoreSame(t, dst, cp.ID, data)
	checkClean(t, dst)

	dst = openRepo(t, dstDir, nil)
	_, res = copyAll(t, src, dst)
	if len(res) != 1 || !res[0].Skipped {
		t.Errorf("second copy: %+v", res)
	}

	// A new snapshot: every blob is read again, but only the new ones are
	// stored.
	rng := rand.New(rand.NewPCG(3, 3))
	if err := os.WriteFile(filepath.Join(data, "etc/new.cnf"), randomBytes(rng, 20_000), 0o644); err != nil {
		t.Fatal(err)
	}
	second := backup(t, src, data, first)
	_, res = copyAll(t, src, dst)
	if len(res) != 2 || res[1].Skipped || res[1].DataBlobs != second.Summary.DataBlobs {
		t.Fatalf("copy after a new backup: %+v; the backup stored %d data blobs", res, second.Summary.DataBlobs)
	}
	restoreSame(t, dst, res[1].CopyID, data)

	// A chain: from the destination on to a third repository that shares
	// the destination's IDs, by ID again.
	thirdDir := newRepo(t, repository.InitOptions{}, dst)
	third := openRepo(t, thirdDir, nil)
	c, res = copyAll(t, dst, third)
	if c.Mode() != copier.ModeByID || len(res) != 2 {
		t.Fatalf("third: mode %s, %+v", c.Mode(), res)
	}
	restoreSame(t, third, res[1].CopyID, data)
	checkClean(t, dst)
	checkClean(t, third)

	// Different chunking: the direct backup does not find the copied
	// chunks of large files (see docs/COPY.md); only whole small files
	// can match.
	direct := backup(t, dst, data, nil)
	t.Logf("direct backup into the destination: %d data blobs, %d bytes of %d", direct.Summary.DataBlobs, direct.Summary.DataAdded, direct.Summary.TotalBytes)
	if direct.Summary.DataAdded < 10<<20 {
		t.Errorf("a direct backup with other chunking stored only %d bytes: it found the copied chunks of big.bin", direct.Summary.DataAdded)
	}
}

// TestCopyResumes: a copy whose destination fails midway leaves no
// snapshot there; the next copy completes it, storing only what the
// first did not.
func TestCopyResumes(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	writeData(t, data, 3)
	srcDir := newRepo(t, repository.InitOptions{}, nil)
	src := openRepo(t, srcDir, nil)
	backup(t, src, data, nil)

	dstDir := newRepo(t, repository.InitOptions{PackSize: 1 << 20}, src)
	var fb *fault.Backend
	dst := openRepo(t, dstDir, func(be backend.Backend) backend.Backend {
		fb = fault.New(be)
		return fb
	})
	// The config and key were read; the 6th save from now (a pack) fails.
	fb.FailNth(fault.Save, 6, nil)
	_, res, err := tryCopyAll(src, dst)
	if !errors.Is(err, fault.ErrInjected) || len(res) != 0 {
		t.Fatalf("copy with a failing destination: %v, %+v", err, res)
	}
	if sns, err := snapshot.List(context.Background(), dst, nil); err != nil || len(sns) != 0 {
		t.Fatalf("the failed copy left %d snapshots (%v)", len(sns), err)
	}

	dst = openRepo(t, dstDir, nil)
	_, res = copyAll(t, src, dst)
	full := openRepo(t, newRepo(t, repository.InitOptions{PackSize: 1 << 20}, src), nil)
	_, ref := copyAll(t, src, full)
	total := ref[0].DataBlobs
	t.Logf("resumed copy stored %d data blobs (%d bytes) of %d (%d bytes)", res[0].DataBlobs, res[0].BytesStored, total, ref[0].BytesStored)
	if len(res) != 1 || res[0].Skipped || res[0].DataBlobs == 0 || res[0].DataBlobs >= total {
		t.Errorf("resumed copy stored %d of %d data blobs: %+v", res[0].DataBlobs, total, res)
	}
	restoreSame(t, dst, res[0].CopyID, data)
	checkClean(t, dst)
}
