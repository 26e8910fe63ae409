package repair_test

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/chunker"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

const testPassword = "repair test password"

// fixedNow is the clock of the repairs in these tests.
var fixedNow = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

// initRepo creates a repository in dir with 1 MiB packs and cheap key
// derivation. chunkers nil takes the default profiles.
func initRepo(t *testing.T, dir string, chunkers map[string]chunker.Params) {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(ctx, be, []byte(testPassword), repository.InitOptions{
		KDF: crypto.TestKDFParams, PackSize: 1 << 20, Chunkers: chunkers,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// openRepo opens the repository in dir with its index loaded, as a new
// process would: nothing is cached from earlier runs.
func openRepo(t *testing.T, dir string) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// backup stores a snapshot of paths with the real archiver.
func backup(t *testing.T, repoDir string, paths ...string) *snapshot.Snapshot {
	t.Helper()
	r := openRepo(t, repoDir)
	defer r.Close()
	a, err := archiver.New(r, archiver.Options{Hostname: "host1", Tags: []string{"nightly"}, ProgramVersion: "rewind test"})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func randomBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// writeFiles creates files below dir ("/"-separated relative names).
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readFiles returns the regular files below dir by "/"-separated
// relative path.
func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// restore restores all of sn into a new folder and fails the test on any
// error, including errors on single files.
func restore(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot) string {
	t.Helper()
	target := filepath.Join(t.TempDir(), "restore")
	rs, err := restorer.New(r, restorer.Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	st, err := rs.Restore(context.Background(), sn, "/")
	if err != nil {
		t.Fatalf("restore %s: %v (%+v)", sn.ID.Short(), err, st)
	}
	return target
}

// fileBlobs is what one file of a snapshot needs: its data blobs and the
// tree blobs holding its chunk list.
type fileBlobs struct {
	data  []id.ID
	lists []id.ID
	size  uint64
}

// layout returns, for every file of sn, the blobs it needs.
func layout(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot) map[string]fileBlobs {
	t.Helper()
	ctx := context.Background()
	out := map[string]fileBlobs{}
	err := snapshot.Walk(ctx, r, "/", sn.Tree, func(p string, n *tree.Node) error {
		if n.Type != tree.File {
			return nil
		}
		cs, err := snapshot.LoadContent(ctx, r, n)
		if err != nil {
			return err
		}
		fb := fileBlobs{lists: n.ContentLists, size: n.Size}
		for _, c := range cs {
			if !c.IsHole() {
				fb.data = append(fb.data, c.ID)
			}
		}
		out[p] = fb
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// locate returns where the index places a blob.
func locate(t *testing.T, r *repository.Repository, b id.ID) index.Location {
	t.Helper()
	loc, ok := r.Index().Lookup(b)
	if !ok {
		t.Fatalf("blob %s is not in the index", b.Short())
	}
	return loc
}

// packPath is the file of a pack in a local repository.
func packPath(repoDir string, p id.ID) string {
	s := p.String()
	return filepath.Join(repoDir, "data", s[:2], s)
}

// flipByte flips one bit of a stored file at off.
func flipByte(t *testing.T, file string, off int64) {
	t.Helper()
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x10
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// names lists the files of one namespace of a local repository.
func names(t *testing.T, repoDir string, ft backend.FileType) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(repoDir, ft.String()), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".tmp-") {
			out = append(out, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// repoFiles lists every stored file of a repository with its content
// hash, so that a test can tell that nothing was written or removed.
func repoFiles(t *testing.T, repoDir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(repoDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoDir, p)
		out[rel] = crypto.FileID(b).String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// allSnapshots loads every snapshot of r.
func allSnapshots(t *testing.T, r *repository.Repository) []*snapshot.Snapshot {
	t.Helper()
	sns, err := snapshot.List(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sns
}

// runRepair repairs every snapshot of the repository in dir.
func runRepair(t *testing.T, dir string, opt repair.Options) *repair.Result {
	t.Helper()
	r := openRepo(t, dir)
	defer r.Close()
	if opt.Now == nil {
		opt.Now = func() time.Time { return fixedNow }
	}
	res, err := repair.Snapshots(context.Background(), r, allSnapshots(t, r), opt)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	return res
}

// resultFor returns the result for snapshot i.
func resultFor(t *testing.T, res *repair.Result, i id.ID) repair.SnapshotResult {
	t.Helper()
	for _, sr := range res.Snapshots {
		if sr.Snapshot.ID == i {
			return sr
		}
	}
	t.Fatalf("no result for snapshot %s", i.Short())
	return repair.SnapshotResult{}
}

// subtrees maps the path of every directory of a snapshot to its tree
// blobs.
func subtrees(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot) map[string][]id.ID {
	t.Helper()
	out := map[string][]id.ID{"/": sn.Tree}
	err := snapshot.Walk(context.Background(), r, "/", sn.Tree, func(p string, n *tree.Node) error {
		if n.Type == tree.Dir {
			out[p] = n.Subtree
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pickDataPack chooses a data pack that holds content of some but not all
// files of sn, and none of the files in avoid. It returns the pack and
// the files that lose content with it, sorted.
func pickDataPack(t *testing.T, r *repository.Repository, files map[string]fileBlobs, avoid map[string]fileBlobs) (id.ID, []string) {
	t.Helper()
	banned := map[id.ID]bool{}
	for _, fb := range avoid {
		for _, b := range fb.data {
			banned[locate(t, r, b).Pack] = true
		}
	}
	users := map[id.ID][]string{}
	for p, fb := range files {
		for _, b := range fb.data {
			pk := locate(t, r, b).Pack
			if !slices.Contains(users[pk], p) {
				users[pk] = append(users[pk], p)
			}
		}
	}
	var packs []id.ID
	for pk := range users {
		packs = append(packs, pk)
	}
	slices.SortFunc(packs, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
	for _, pk := range packs {
		if !banned[pk] && len(users[pk]) < len(files)-1 {
			slices.Sort(users[pk])
			return pk, users[pk]
		}
	}
	t.Fatalf("no data pack holds part of the snapshot only (%d packs)", len(packs))
	return id.ID{}, nil
}
