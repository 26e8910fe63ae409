package archiver

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// repoState maps every file below dir to a hash of its content.
func repoState(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dryRun runs a dry run and returns its unsaved snapshot, its counter and
// the files it reported.
func dryRun(t *testing.T, r *repository.Repository, opt Options, paths ...string) (*snapshot.Snapshot, *dryStore, map[string]bool) {
	t.Helper()
	var mu sync.Mutex
	files := map[string]bool{}
	opt.DryRun = true
	opt.OnFile = func(p string, isNew bool) {
		mu.Lock()
		files[p] = isNew
		mu.Unlock()
	}
	sn, a := backup(t, r, opt, paths...)
	return sn, a.store.(*dryStore), files
}

// TestDryRun: a dry run leaves the repository's files as they were, and
// its counts are those of the real backup that follows: files new,
// changed and unchanged, bytes read, and the data blobs and their plain
// bytes exactly (the listings above the target, /tmp's, may change in
// between, so trees are compared by the CLI test, which holds them
// still). It runs on a first backup, then on changes: a new file, an
// edited one, a copy of known content (read, nothing new), a touched one
// (read, nothing new), and duplicates inside the run (counted once).
func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	big := randomBytes(1, 3<<20)
	writeFile(t, filepath.Join(src, "big"), big)
	writeFile(t, filepath.Join(src, "big-copy"), big)
	for i := range 20 {
		writeFile(t, filepath.Join(src, "d", string(rune('a'+i))), randomBytes(uint64(10+i), 100+i*500))
	}
	writeFile(t, filepath.Join(src, "zeros"), make([]byte, 1<<20))
	r := newTestRepo(t, dir)
	repoDir := filepath.Join(dir, "repo")

	var parent *snapshot.Snapshot
	step := func(name string, wantNew, wantChanged []string) {
		t.Helper()
		before := repoState(t, repoDir)
		opt := Options{Parent: parent}
		dsn, ds, files := dryRun(t, r, opt, src)
		if got := repoState(t, repoDir); !maps.Equal(got, before) {
			t.Fatalf("%s: the dry run changed the repository's files", name)
		}
		if dsn.ID != ([32]byte{}) {
			t.Errorf("%s: dry run returned a saved snapshot %s", name, dsn.ID)
		}
		var gotNew, gotChanged []string
		for p, isNew := range files {
			if isNew {
				gotNew = append(gotNew, p)
			} else {
				gotChanged = append(gotChanged, p)
			}
		}
		slices.Sort(gotNew)
		slices.Sort(gotChanged)
		if !slices.Equal(gotNew, wantNew) || !slices.Equal(gotChanged, wantChanged) {
			t.Errorf("%s: dry run reports new %q changed %q; want new %q changed %q", name, gotNew, gotChanged, wantNew, wantChanged)
		}
		dataBefore := r.Stats().DataAdded.Load()
		sn, _ := backup(t, r, opt, src)
		dataAdded := r.Stats().DataAdded.Load() - dataBefore
		d, s := dsn.Summary, sn.Summary
		if d.FilesNew != s.FilesNew || d.FilesChanged != s.FilesChanged || d.FilesUnchanged != s.FilesUnchanged ||
			d.BytesRead != s.BytesRead || d.TotalBytes != s.TotalBytes || d.DataBlobs != s.DataBlobs ||
			ds.dataAdded.Load() != dataAdded || d.DataStored != 0 {
			t.Errorf("%s: dry run %+v (data %d bytes)\nbackup %+v (data %d bytes)", name, d, ds.dataAdded.Load(), s, dataAdded)
		}
		parent = sn
	}
	all := []string{filepath.Join(src, "big"), filepath.Join(src, "big-copy")}
	for i := range 20 {
		all = append(all, filepath.Join(src, "d", string(rune('a'+i))))
	}
	all = append(all, filepath.Join(src, "zeros"))
	slices.Sort(all)
	step("first", all, nil)
	step("unchanged", nil, nil)

	writeFile(t, filepath.Join(src, "new"), randomBytes(99, 70000))
	writeFile(t, filepath.Join(src, "copy-of-a"), randomBytes(10, 100))
	edited := bytes.Clone(big)
	edited[len(edited)/2] ^= 1
	writeFile(t, filepath.Join(src, "big"), edited)
	touched := filepath.Join(src, "d", "c")
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(touched, future, future); err != nil {
		t.Fatal(err)
	}
	step("changes", []string{filepath.Join(src, "copy-of-a"), filepath.Join(src, "new")},
		[]string{filepath.Join(src, "big"), touched})
}
