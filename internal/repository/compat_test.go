package repository_test

// The on-disk format is a contract: a repository written by an earlier
// rewind must stay readable. testdata/repo-v1 is such a repository, made
// once with -update through the normal API and committed; this test opens
// it with the current code and checks every byte against content it
// regenerates from fixed seeds. Regenerate it only when the format version
// changes, and keep the old one next to it.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

var (
	update = flag.Bool("update", false, "rewrite the golden files in testdata")
	// updateRepo is separate from -update: the committed repository is
	// the backwards-compatibility fixture and is rebuilt only for a new
	// format version.
	updateRepo = flag.Bool("update-compat-repo", false, "rebuild testdata/repo-v1 (only for a new format version)")
)

const (
	compatDir      = "testdata/repo-v1"
	compatGolden   = "testdata/repo-v1.golden.json"
	compatPassword = "rewind-testdata"
)

// compatBlob is one data blob of the test repository, by name.
type compatBlob struct {
	Name       string `json:"name"`
	ID         id.ID  `json:"id"`
	Size       int    `json:"size"`
	Compressed bool   `json:"compressed"`
}

// compatExpect is what testdata/repo-v1.golden.json records about the
// repository. Content is not stored there: it is regenerated.
type compatExpect struct {
	FormatVersion int          `json:"format_version"`
	ConfigID      id.ID        `json:"config_id"`
	DataBlobs     []compatBlob `json:"data_blobs"`
	TreeBlobs     int          `json:"tree_blobs"`
	Root          []id.ID      `json:"root"`
	Snapshot      id.ID        `json:"snapshot"`
	Packs         int          `json:"packs"`
	IndexFiles    int          `json:"index_files"`
}

// seeded returns n bytes that do not compress, derived from seed with
// SHA-256 in counter mode: stable across Go versions and platforms.
func seeded(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for c := uint64(0); len(out) < n; c++ {
		binary.BigEndian.PutUint64(ctr[:], c)
		h := sha256.Sum256(append([]byte(seed), ctr[:]...))
		out = append(out, h[:]...)
	}
	return out[:n]
}

// compatData returns the data blobs of the test repository in order.
func compatData() []struct {
	name string
	data []byte
} {
	var text bytes.Buffer
	for i := 0; text.Len() < 64<<10; i++ {
		fmt.Fprintf(&text, "%05d: all work and no play makes a dull backup\n", i)
	}
	return []struct {
		name string
		data []byte
	}{
		{"text", text.Bytes()},            // compresses
		{"noise", seeded("noise", 48000)}, // does not
		{"small", []byte("hello, rewind\n")},
	}
}

// compatSnapshot returns the snapshot of the test repository for a root
// tree.
func compatSnapshot(root []id.ID) *snapshot.Snapshot {
	start := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
	return &snapshot.Snapshot{
		Time:           start,
		Tree:           root,
		Paths:          []string{"/srv/data"},
		Hostname:       "testhost",
		Username:       "tester",
		UID:            1000,
		GID:            1000,
		Tags:           []string{"golden", "v1"},
		Excludes:       []string{"*.tmp"},
		ProgramVersion: "rewind testdata",
		Summary: &snapshot.Summary{
			BackupStart: start, BackupEnd: start.Add(1500 * time.Millisecond),
			FilesNew: 3, DirsNew: 2, TotalFiles: 3, TotalBytes: 112014,
			DataBlobs: 3, TreeBlobs: 4, DataAdded: 112014, DataStored: 60000,
			Errors: []snapshot.FileError{{Path: "/srv/data/locked", Error: "permission denied"}},
		},
	}
}

// compatTree is the directory tree of the test repository: /srv/data with
// a text file, a file with its chunk list in a content-list blob (with a
// hole), an empty file and a symlink. ids are the data blob IDs in the
// order of compatData; emit stores one tree blob. It returns the root
// tree, and the nodes expected at each path.
func compatTree(ids []id.ID, emit func([]byte) (id.ID, error)) ([]id.ID, map[string]tree.Node, error) {
	mtime := time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC).UnixNano()
	data := compatData()
	list := tree.EncodeContentList([]tree.Chunk{
		{ID: ids[1], Size: uint64(len(data[1].data))},
		{Size: 1 << 20}, // a hole
		{ID: ids[2], Size: uint64(len(data[2].data))},
	})
	listID, err := emit(list)
	if err != nil {
		return nil, nil, err
	}
	files := []tree.Node{
		{Name: "big.bin", Type: tree.File, Mode: 0o640, UID: 1000, GID: 1000, User: "tester", Group: "tester",
			Size: uint64(len(data[1].data)+len(data[2].data)) + 1<<20, MTime: mtime, CTime: mtime, ATime: mtime,
			Inode: 101, DeviceID: 2049, Links: 1, ContentLists: []id.ID{listID}},
		{Name: "empty", Type: tree.File, Mode: 0o600, UID: 1000, GID: 1000, MTime: mtime, Inode: 102, DeviceID: 2049, Links: 1},
		{Name: "latest", Type: tree.Symlink, Mode: 0o777, MTime: mtime, Inode: 103, DeviceID: 2049, Links: 1, LinkTarget: "notes.txt"},
		{Name: "notes.txt", Type: tree.File, Mode: 0o644, UID: 1000, GID: 1000, User: "tester", Group: "tester",
			Size: uint64(len(data[0].data)), MTime: mtime, CTime: mtime + 1, ATime: mtime + 2, Inode: 104, DeviceID: 2049, Links: 2,
			Content: []tree.Chunk{{ID: ids[0], Size: uint64(len(data[0].data))}},
			Xattrs:  []tree.Xattr{{Name: "user.comment", Value: []byte("golden")}}},
	}
	dir := func(nodes []tree.Node) ([]id.ID, error) {
		b := tree.Builder{Emit: emit}
		for k := range nodes {
			if err := b.Add(&nodes[k]); err != nil {
				return nil, err
			}
		}
		return b.Finish()
	}
	dataTree, err := dir(files)
	if err != nil {
		return nil, nil, err
	}
	dataNode := tree.Node{Name: "data", Type: tree.Dir, Mode: 0o755, MTime: mtime, Inode: 100, DeviceID: 2049, Links: 2, Subtree: dataTree}
	srvTree, err := dir([]tree.Node{dataNode})
	if err != nil {
		return nil, nil, err
	}
	srvNode := tree.Node{Name: "srv", Type: tree.Dir, Mode: 0o755, MTime: mtime, Inode: 2, DeviceID: 2049, Links: 3, Subtree: srvTree}
	root, err := dir([]tree.Node{srvNode})
	if err != nil {
		return nil, nil, err
	}
	want := map[string]tree.Node{"/srv": srvNode, "/srv/data": dataNode}
	for _, f := range files {
		want["/srv/data/"+f.Name] = f
	}
	return root, want, nil
}

// createCompatRepo writes testdata/repo-v1 and its golden file through the
// normal API.
func createCompatRepo(t *testing.T) {
	ctx := context.Background()
	if err := os.RemoveAll(compatDir); err != nil {
		t.Fatal(err)
	}
	be, err := local.Create(ctx, compatDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(ctx, be, []byte(compatPassword), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	exp := compatExpect{FormatVersion: r.Config().Version, ConfigID: r.Config().ID}

	// Data blobs in one session, trees in another: two index files.
	r.StartWriting(ctx)
	var ids []id.ID
	for _, d := range compatData() {
		i, _, err := r.SaveBlob(ctx, pack.DataBlob, d.data)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, i)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.StartWriting(ctx)
	root, _, err := compatTree(ids, func(b []byte) (id.ID, error) {
		exp.TreeBlobs++
		i, _, err := r.SaveBlob(ctx, pack.TreeBlob, b)
		return i, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sn := compatSnapshot(root)
	if err := snapshot.Save(ctx, r, sn); err != nil {
		t.Fatal(err)
	}

	for k, d := range compatData() {
		loc, _ := r.Index().Lookup(ids[k])
		exp.DataBlobs = append(exp.DataBlobs, compatBlob{Name: d.name, ID: ids[k], Size: len(d.data), Compressed: loc.Compressed})
	}
	exp.Root, exp.Snapshot = root, sn.ID
	packs, _ := r.List(ctx, backend.PackFile)
	idx, _ := r.List(ctx, backend.IndexFile)
	exp.Packs, exp.IndexFiles = len(packs), len(idx)
	b, err := json.MarshalIndent(exp, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(compatGolden, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	// Git keeps no empty folders: drop them now, so that the test runs on
	// what a checkout holds.
	removeEmptyDirs(t, compatDir)
}

func removeEmptyDirs(t *testing.T, root string) {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		if entries, err := os.ReadDir(d); err == nil && len(entries) == 0 && d != root {
			if err := os.Remove(d); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// copyTree copies the committed repository to a scratch folder, so that
// nothing the code under test does can change testdata.
func copyTree(t *testing.T, src, dst string) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o400)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCompatRepoV1(t *testing.T) {
	if *updateRepo {
		createCompatRepo(t)
	}
	ctx := context.Background()
	raw, err := os.ReadFile(compatGolden)
	if err != nil {
		t.Fatalf("%v (run with -update-compat-repo to create the test repository)", err)
	}
	var exp compatExpect
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo-v1")
	copyTree(t, compatDir, dir)
	be, err := local.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()

	if _, err := repository.Open(ctx, be, []byte("not the password")); !errors.Is(err, repository.ErrWrongPassword) {
		t.Fatalf("wrong password: got %v, want ErrWrongPassword", err)
	}
	r, err := repository.Open(ctx, be, []byte(compatPassword))
	if err != nil {
		t.Fatalf("open the v1 repository: %v", err)
	}
	if c := r.Config(); c.Version != exp.FormatVersion || c.ID != exp.ConfigID {
		t.Fatalf("config: version %d, ID %s; want %d, %s", c.Version, c.ID, exp.FormatVersion, exp.ConfigID)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatalf("load index: %v", err)
	}
	packs, err := r.List(ctx, backend.PackFile)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := r.List(ctx, backend.IndexFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(packs) != exp.Packs || len(idx) != exp.IndexFiles {
		t.Fatalf("%d packs and %d index files, want %d and %d", len(packs), len(idx), exp.Packs, exp.IndexFiles)
	}
	if n := r.Index().Len(); n != len(exp.DataBlobs)+exp.TreeBlobs {
		t.Fatalf("index lists %d blobs, want %d", n, len(exp.DataBlobs)+exp.TreeBlobs)
	}

	// Every data blob: regenerated content, the same keyed ID, the same
	// place in the index, the same bytes out of the pack.
	data := compatData()
	if len(exp.DataBlobs) != len(data) {
		t.Fatalf("golden file lists %d data blobs, the test makes %d", len(exp.DataBlobs), len(data))
	}
	var ids []id.ID
	for k, e := range exp.DataBlobs {
		d := data[k]
		if e.Name != d.name || e.Size != len(d.data) || r.Key().BlobID(d.data) != e.ID {
			t.Fatalf("data blob %q: the regenerated content does not match the golden file", e.Name)
		}
		loc, ok := r.Index().Lookup(e.ID)
		if !ok || loc.Type != pack.DataBlob || loc.Compressed != e.Compressed || loc.RawLength != uint32(e.Size) {
			t.Fatalf("data blob %q: indexed as %+v", e.Name, loc)
		}
		got, err := r.LoadBlob(ctx, pack.DataBlob, e.ID, nil)
		if err != nil || !bytes.Equal(got, d.data) {
			t.Fatalf("data blob %q: %v", e.Name, err)
		}
		ids = append(ids, e.ID)
	}
	if !exp.DataBlobs[0].Compressed || exp.DataBlobs[1].Compressed {
		t.Fatal("the test repository should hold one compressed and one stored data blob")
	}

	// Tree blobs: rebuilt from the data blob IDs, they must hash to the
	// stored trees and match them byte for byte.
	var trees [][]byte
	root, want, err := compatTree(ids, func(b []byte) (id.ID, error) {
		trees = append(trees, bytes.Clone(b))
		return r.Key().BlobID(b), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(root, exp.Root) || len(trees) != exp.TreeBlobs {
		t.Fatalf("rebuilt root %v from %d trees, want %v from %d", root, len(trees), exp.Root, exp.TreeBlobs)
	}
	for _, b := range trees {
		i := r.Key().BlobID(b)
		got, err := r.LoadBlob(ctx, pack.TreeBlob, i, nil)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("tree blob %s: %v", i.Short(), err)
		}
		if loc, _ := r.Index().Lookup(i); loc.Type != pack.TreeBlob {
			t.Fatalf("tree blob %s indexed as %s", i.Short(), loc.Type)
		}
	}

	// Every pack header agrees with the index.
	for _, p := range packs {
		blobs, err := r.ReadPackHeader(ctx, p)
		if err != nil {
			t.Fatalf("pack %s: %v", p.Short(), err)
		}
		for _, b := range blobs {
			if loc, ok := r.Index().Lookup(b.ID); !ok || loc.Pack != p || loc.Blob != b {
				t.Fatalf("pack %s: header entry %+v, index %+v", p.Short(), b, loc)
			}
		}
	}

	// The snapshot, found by ID, prefix and "latest".
	wantSn := compatSnapshot(exp.Root)
	wantSn.ID = exp.Snapshot
	for _, ref := range []string{exp.Snapshot.String(), exp.Snapshot.String()[:8], "latest"} {
		sn, err := snapshot.Find(ctx, r, ref, snapshot.Filter{Tags: []string{"golden"}})
		if err != nil {
			t.Fatalf("find %q: %v", ref, err)
		}
		if !sameSnapshot(sn, wantSn) {
			t.Fatalf("snapshot %q:\n%+v\nwant\n%+v", ref, sn, wantSn)
		}
	}
	sns, err := snapshot.List(ctx, r, nil)
	if err != nil || len(sns) != 1 {
		t.Fatalf("list: %d snapshots, %v", len(sns), err)
	}

	// Its tree, walked and looked up.
	var paths []string
	err = snapshot.Walk(ctx, r, "/", wantSn.Tree, func(p string, n *tree.Node) error {
		paths = append(paths, p)
		if w, ok := want[p]; !ok || !reflect.DeepEqual(*n, w) {
			t.Errorf("node %s:\n%+v\nwant\n%+v", p, *n, w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []string{"/srv", "/srv/data", "/srv/data/big.bin", "/srv/data/empty", "/srv/data/latest", "/srv/data/notes.txt"}
	if !slices.Equal(paths, wantPaths) {
		t.Fatalf("walk visits %v, want %v", paths, wantPaths)
	}
	big, err := snapshot.Lookup(ctx, r, sns[0], "/srv/data/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := snapshot.LoadContent(ctx, r, big)
	if err != nil {
		t.Fatal(err)
	}
	var content []byte
	for _, c := range chunks {
		if c.IsHole() {
			content = append(content, make([]byte, c.Size)...)
			continue
		}
		b, err := r.LoadBlob(ctx, pack.DataBlob, c.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		content = append(content, b...)
	}
	wantContent := slices.Concat(data[1].data, make([]byte, 1<<20), data[2].data)
	if !bytes.Equal(content, wantContent) || uint64(len(content)) != big.Size {
		t.Fatalf("big.bin: %d bytes of content, want %d", len(content), len(wantContent))
	}
}

// sameSnapshot compares snapshots, with times compared as instants.
func sameSnapshot(a, b *snapshot.Snapshot) bool {
	x, y := *a, *b
	if !x.Time.Equal(y.Time) || (x.Summary == nil) != (y.Summary == nil) {
		return false
	}
	x.Time, y.Time = time.Time{}, time.Time{}
	if x.Summary != nil {
		sx, sy := *x.Summary, *y.Summary
		if !sx.BackupStart.Equal(sy.BackupStart) || !sx.BackupEnd.Equal(sy.BackupEnd) {
			return false
		}
		sx.BackupStart, sx.BackupEnd, sy.BackupStart, sy.BackupEnd = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		x.Summary, y.Summary = &sx, &sy
	}
	return reflect.DeepEqual(x, y)
}
