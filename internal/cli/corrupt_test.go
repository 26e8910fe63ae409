package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// packLayout says where the latest snapshot's file contents are stored.
type packLayout struct {
	files     map[string][]id.ID // snapshot path of each file -> its data blobs
	loc       map[id.ID]index.Location
	dataPacks []id.ID // packs that hold the data blobs, sorted
}

// readLayout opens the repository in process to find which data blobs
// each file of the latest snapshot has, and in which pack each lives.
func readLayout(t *testing.T, repoDir string) packLayout {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	l := packLayout{files: map[string][]id.ID{}, loc: map[id.ID]index.Location{}}
	err = snapshot.Walk(ctx, r, "/", sn.Tree, func(p string, n *tree.Node) error {
		if n.Type != tree.File {
			return nil
		}
		content, err := snapshot.LoadContent(ctx, r, n)
		if err != nil {
			return err
		}
		for _, c := range content {
			if c.IsHole() {
				continue
			}
			loc, ok := r.Index().Lookup(c.ID)
			if !ok {
				return fmt.Errorf("%s: blob %s not in the index", p, c.ID.Short())
			}
			if loc.Blob.Type != pack.DataBlob {
				return fmt.Errorf("%s: blob %s is not a data blob", p, c.ID.Short())
			}
			l.files[p] = append(l.files[p], c.ID)
			l.loc[c.ID] = loc
			if !slices.Contains(l.dataPacks, loc.Pack) {
				l.dataPacks = append(l.dataPacks, loc.Pack)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(l.dataPacks, func(a, b id.ID) int { return strings.Compare(a.String(), b.String()) })
	return l
}

// blobsIn returns a pack's data blobs in the order they are stored.
func (l packLayout) blobsIn(p id.ID) []pack.Blob {
	var out []pack.Blob
	for _, loc := range l.loc {
		if loc.Pack == p {
			out = append(out, loc.Blob)
		}
	}
	slices.SortFunc(out, func(a, b pack.Blob) int { return int(a.Offset) - int(b.Offset) })
	return out
}

// TestCorruptPack damages one pack of several (a flipped bit, then a cut)
// and checks that restore names it, restores every file whose data is
// intact, and fails; and that check --read-data names the pack.
func TestCorruptPack(t *testing.T) {
	t.Parallel()
	for _, damage := range []string{"flipped bit", "truncated"} {
		t.Run(damage, func(t *testing.T) {
			t.Parallel()
			testCorruptPack(t, damage)
		})
	}
}

func testCorruptPack(t *testing.T, damage string) {
	// With 1 MiB packs, twelve files of 300 KiB fill several data packs.
	e := newRepo(t, 1<<20)
	files := map[string][]byte{}
	for i := range 6 {
		files[fmt.Sprintf("a/file%d", i)] = randomBytes(uint64(100+i), 300<<10)
		files[fmt.Sprintf("b/file%d", i)] = randomBytes(uint64(200+i), 300<<10)
	}
	src := e.path("src")
	writeFiles(t, src, files)
	e.mustRun("backup", filepath.Join(src, "a"), filepath.Join(src, "b"))

	l := readLayout(t, e.path("repo"))
	if len(l.dataPacks) < 3 {
		t.Fatalf("want at least 3 data packs, got %d", len(l.dataPacks))
	}
	// Damage the pack holding the most blobs, in its middle blob.
	victim := slices.MaxFunc(l.dataPacks, func(a, b id.ID) int { return len(l.blobsIn(a)) - len(l.blobsIn(b)) })
	blobs := l.blobsIn(victim)
	hit := blobs[len(blobs)/2]
	packFile := e.path("repo", "data", victim.String()[:2], victim.String())
	if err := os.Chmod(packFile, 0o600); err != nil { // packs are stored read-only
		t.Fatal(err)
	}
	damaged := map[id.ID]bool{}
	switch damage {
	case "flipped bit":
		f, err := os.OpenFile(packFile, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(hit.Offset + hit.Length/2)
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x10
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		damaged[hit.ID] = true
	case "truncated":
		cut := hit.Offset + hit.Length/2
		if err := os.Truncate(packFile, int64(cut)); err != nil {
			t.Fatal(err)
		}
		for _, b := range blobs {
			if b.Offset+b.Length > cut {
				damaged[b.ID] = true
			}
		}
	}
	var lost, intact []string
	for p, ids := range l.files {
		if slices.ContainsFunc(ids, func(i id.ID) bool { return damaged[i] }) {
			lost = append(lost, p)
		} else {
			intact = append(intact, p)
		}
	}
	if len(lost) == 0 || len(intact) == 0 {
		t.Fatalf("the damage should hit some files and spare others: %d lost, %d intact", len(lost), len(intact))
	}

	// restore: non-zero, the pack and the damaged files named, the rest
	// restored exactly.
	target := e.path("restore")
	r := e.run("restore", "latest", "--target", target)
	if r.code == 0 {
		t.Fatalf("restore from a damaged pack succeeded: %v", r)
	}
	if !bytes.Contains(r.stderr, []byte(victim.Short())) {
		t.Errorf("restore does not name the damaged pack %s: %v", victim.Short(), r)
	}
	for _, p := range lost {
		if !bytes.Contains(r.stderr, []byte(p)) {
			t.Errorf("restore does not name %s, whose data is damaged: %v", p, r)
		}
	}
	for _, p := range intact {
		got, err := os.ReadFile(filepath.Join(target, p))
		rel, _ := filepath.Rel(src, p)
		if err != nil || !bytes.Equal(got, files[filepath.ToSlash(rel)]) {
			t.Errorf("%s: intact data not restored byte for byte (%v)", p, err)
		}
	}

	// The same with --json: the summary lists exactly the damaged files.
	r = e.run("restore", "--json", "latest", "--target", e.path("restore-json"))
	if r.code == 0 {
		t.Fatalf("restore --json from a damaged pack succeeded: %v", r)
	}
	s := checkRestoreJSON(t, r)
	var named []string
	for _, fe := range s.Errors {
		named = append(named, fe.Path)
		if !strings.Contains(fe.Error, victim.Short()) {
			t.Errorf("restore error for %s does not name the pack %s: %s", fe.Path, victim.Short(), fe.Error)
		}
	}
	slices.Sort(named)
	slices.Sort(lost)
	if !slices.Equal(named, lost) {
		t.Errorf("restore --json names %v, want the damaged files %v", named, lost)
	}
	if s.FilesRestored < int64(len(intact)) {
		t.Errorf("restore --json restored %d files, want at least the %d intact ones", s.FilesRestored, len(intact))
	}

	// check --read-data names the pack, and only it.
	r = e.expectCode(ExitFatal, "check", "--read-data")
	out := string(r.stdout) + string(r.stderr)
	if !strings.Contains(out, "data/"+victim.String()) {
		t.Errorf("check --read-data does not name data/%s: %v", victim, r)
	}
	for _, p := range l.dataPacks {
		if p != victim && strings.Contains(out, p.String()) {
			t.Errorf("check --read-data names the intact pack %s: %v", p.Short(), r)
		}
	}
	r = e.expectCode(ExitFatal, "check", "--read-data", "--json")
	lines := jsonLines(t, r)
	if len(lines) != 1 {
		t.Fatalf("check --json printed %d lines: %v", len(lines), r)
	}
	var cs jsonCheckSummary
	checkDoc(t, "check.summary", lines[0].raw, &cs)
	if cs.OK || len(cs.Problems) == 0 {
		t.Errorf("check --json: ok %v with %d problems", cs.OK, len(cs.Problems))
	}
	for _, p := range cs.Problems {
		if p.Object != "data/"+victim.String() {
			t.Errorf("check --json: problem with %s, want only data/%s", p.Object, victim)
		}
	}
}
