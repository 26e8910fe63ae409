package cli

// Tampering on the storage side: someone with write access to the
// repository's files swaps, renames or moves packs, puts back an old index
// file, truncates or replaces a snapshot file, or edits a key file. Each
// case runs the real binary against a repository made by two real backups,
// and checks that the commands that meet the damage exit with a documented
// non-zero status, name the damaged object, never panic, and still restore
// everything the damage did not touch.

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// tamperFixture is a repository with two snapshots of separate data:
// snapA of src/a, then snapB of src/b (the latest). Packs are 1 MiB, so
// that src/b fills several data packs.
type tamperFixture struct {
	e            *env
	repo, src    string
	snapA, snapB string
	// layout places the files of snapB in packs.
	layout packLayout
	// packsA and indexA are the pack and index file names after the first
	// backup; packsAll and indexAll after the second.
	packsA, packsAll []string
	indexA, indexAll []string
}

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	e := newRepo(t, 1<<20)
	f := &tamperFixture{e: e, repo: e.path("repo"), src: e.path("src")}
	files := map[string][]byte{}
	for i := range 3 {
		files[fmt.Sprintf("a/file%d", i)] = randomBytes(uint64(300+i), 200<<10)
	}
	for i := range 12 {
		files[fmt.Sprintf("b/file%02d", i)] = randomBytes(uint64(400+i), 300<<10)
	}
	writeFiles(t, f.src, files)
	f.snapA = backupSummary(t, e, filepath.Join(f.src, "a")).SnapshotID
	f.packsA, f.indexA = storedPackNames(t, f.repo), repoFileNames(t, f.repo, "index")
	f.snapB = backupSummary(t, e, filepath.Join(f.src, "b")).SnapshotID
	f.packsAll, f.indexAll = storedPackNames(t, f.repo), repoFileNames(t, f.repo, "index")
	f.layout = readLayout(t, f.repo)
	if len(f.layout.dataPacks) < 3 {
		t.Fatalf("want at least 3 data packs for src/b, got %d", len(f.layout.dataPacks))
	}
	return f
}

// storedPackNames returns the names of the stored packs, sorted.
func storedPackNames(t *testing.T, repo string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(filepath.Join(repo, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			names = append(names, d.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// repoFileNames returns the names of the files in a folder of the repository
// (index, snapshots, keys), sorted.
func repoFileNames(t *testing.T, repo, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repo, dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// packPath is where the local backend stores pack name.
func (f *tamperFixture) packPath(name string) string {
	return filepath.Join(f.repo, "data", name[:2], name)
}

// makeWritable makes a stored file (mode 0400) writable for tampering.
func makeWritable(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// expectRun runs rewind and fails the test unless it exits with code, its
// output names every string in names, and it did not panic.
func expectRun(t *testing.T, e *env, code int, names []string, args ...string) result {
	t.Helper()
	r := e.run(args...)
	out := string(r.stdout) + string(r.stderr)
	if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
		t.Fatalf("rewind panicked: %v", r)
	}
	if r.code != code {
		t.Errorf("want exit %d, got %v", code, r)
	}
	for _, n := range names {
		if !strings.Contains(out, n) {
			t.Errorf("output does not name %s: %v", n, r)
		}
	}
	return r
}

// restoreExact restores snapshot sn, which the damage must not touch,
// and compares it with its source folder.
func (f *tamperFixture) restoreExact(t *testing.T, e *env, sn, dir string) {
	t.Helper()
	target := e.path("restore-" + sn[:8])
	expectRun(t, e, ExitOK, nil, "restore", sn, "--target", target)
	src := filepath.Join(f.src, dir)
	sameFiles(t, src, target+src)
}

// restoreDamagedPacks restores snapB with the given packs damaged: restore
// must fail naming a damaged pack, and restore every file with no data in
// them byte for byte.
func (f *tamperFixture) restoreDamagedPacks(t *testing.T, damaged ...string) {
	t.Helper()
	bad := map[id.ID]bool{}
	var short []string
	for _, d := range damaged {
		i, err := id.Parse(d)
		if err != nil {
			t.Fatal(err)
		}
		bad[i] = true
		short = append(short, i.Short())
	}
	var intact, lost []string
	for p, ids := range f.layout.files {
		if slices.ContainsFunc(ids, func(b id.ID) bool { return bad[f.layout.loc[b].Pack] }) {
			lost = append(lost, p)
		} else {
			intact = append(intact, p)
		}
	}
	if len(intact) == 0 || len(lost) == 0 {
		t.Fatalf("the damage should hit some files of snapB and spare others: %d lost, %d intact", len(lost), len(intact))
	}
	target := f.e.path("restore-damaged")
	r := expectRun(t, f.e, ExitFatal, nil, "restore", f.snapB, "--target", target)
	if !slices.ContainsFunc(short, func(s string) bool { return bytes.Contains(r.stderr, []byte(s)) }) {
		t.Errorf("restore names none of the damaged packs %v: %v", short, r)
	}
	for _, p := range lost {
		if !bytes.Contains(r.stderr, []byte(p)) {
			t.Errorf("restore does not name %s, whose data is damaged: %v", p, r)
		}
	}
	for _, p := range intact {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(target + p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: intact data not restored byte for byte (%v)", p, err)
		}
	}
	f.restoreExact(t, f.e, f.snapA, "a")
}

// addKey stores a second key file for password, with cheap key
// derivation, and returns its name.
func (f *tamperFixture) addKey(t *testing.T, password string) string {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, f.repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	name, err := r.AddKey(ctx, []byte(password), crypto.TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	return name.String()
}

// otherPassword opens the second key file of the key cases.
const otherPassword = "a second password"

// keyCase edits the second key file with edit, which returns the name
// the edited file is stored under, and checks what opening the repository
// and check say: with the first key still there, the repository opens
// with its password and check names the edited file; with the edited key
// alone, opening fails with an error naming the file, not with "wrong
// password".
func keyCase(edit func(t *testing.T, f *tamperFixture, path string) string) func(*testing.T, *tamperFixture) {
	return func(t *testing.T, f *tamperFixture) {
		good := repoFileNames(t, f.repo, "keys")
		if len(good) != 1 {
			t.Fatalf("want one key file, got %v", good)
		}
		name := f.addKey(t, otherPassword)
		path := filepath.Join(f.repo, "keys", name)
		makeWritable(t, path)
		name = edit(t, f, path)
		obj := "keys/" + name

		expectRun(t, f.e, ExitFatal, []string{obj}, "check")
		expectRun(t, f.e, ExitFatal, []string{obj}, "check", "--read-data")
		f.restoreExact(t, f.e, f.snapA, "a")
		f.restoreExact(t, f.e, f.snapB, "b")
		// The edited key's own password: the intact key does not open
		// with it, and the edited one cannot be read, which is said.
		expectRun(t, f.e.with("REWIND_PASSWORD", otherPassword), ExitBadPassword, []string{obj}, "snapshots")

		if err := os.Remove(filepath.Join(f.repo, "keys", good[0])); err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{otherPassword, testPassword} {
			r := expectRun(t, f.e.with("REWIND_PASSWORD", pw), ExitFatal, []string{obj}, "snapshots")
			if bytes.Contains(r.stderr, []byte("wrong password")) {
				t.Errorf("an unreadable key file is blamed on the password: %v", r)
			}
		}
	}
}

// TestTamper runs one case per attack on the stored files.
func TestTamper(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, f *tamperFixture)
	}{
		{"packs swapped", func(t *testing.T, f *tamperFixture) {
			a, b := f.layout.dataPacks[0].String(), f.layout.dataPacks[1].String()
			pa, pb := f.packPath(a), f.packPath(b)
			da, err := os.ReadFile(pa)
			if err != nil {
				t.Fatal(err)
			}
			db, err := os.ReadFile(pb)
			if err != nil {
				t.Fatal(err)
			}
			makeWritable(t, pa)
			makeWritable(t, pb)
			if err := os.WriteFile(pa, db, 0o400); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(pb, da, 0o400); err != nil {
				t.Fatal(err)
			}
			expectRun(t, f.e, ExitFatal, []string{"data/" + a, "data/" + b}, "check")
			expectRun(t, f.e, ExitFatal, []string{"data/" + a, "data/" + b}, "check", "--read-data")
			f.restoreDamagedPacks(t, a, b)
		}},
		{"pack renamed", func(t *testing.T, f *tamperFixture) {
			a := f.layout.dataPacks[1].String()
			// Another valid name: the same digits reversed.
			rb := []byte(a)
			slices.Reverse(rb)
			x := string(rb)
			if err := os.Rename(f.packPath(a), f.packPath(x)); err != nil {
				t.Fatal(err)
			}
			// Without reading data, the new name is an unindexed pack:
			// noted by name, while the old one is missing.
			expectRun(t, f.e, ExitFatal, []string{"data/" + a, x}, "check")
			expectRun(t, f.e, ExitFatal, []string{"data/" + a, "data/" + x}, "check", "--read-data")
			f.restoreDamagedPacks(t, a)
		}},
		{"pack in the wrong folder", func(t *testing.T, f *tamperFixture) {
			a := f.layout.dataPacks[2].String()
			wrong := "00"
			if a[:2] == wrong {
				wrong = "ff"
			}
			if err := os.Rename(f.packPath(a), filepath.Join(f.repo, "data", wrong, a)); err != nil {
				t.Fatal(err)
			}
			expectRun(t, f.e, ExitFatal, []string{"data/" + a}, "check")
			expectRun(t, f.e, ExitFatal, []string{"data/" + a}, "check", "--read-data")
			f.restoreDamagedPacks(t, a)
		}},
		{"old index replayed", func(t *testing.T, f *tamperFixture) {
			// repair index writes one index file that supersedes all
			// others, then removes them. Putting them back changes
			// nothing: readers skip superseded index files.
			old := copyFiles(t, filepath.Join(f.repo, "index"), f.indexAll)
			expectRun(t, f.e, ExitOK, nil, "repair", "index")
			if now := repoFileNames(t, f.repo, "index"); len(now) != 1 || slices.Contains(f.indexAll, now[0]) {
				t.Fatalf("repair index left %v, want one new index file (old ones %v)", now, f.indexAll)
			}
			old.putBack(t)
			expectRun(t, f.e, ExitOK, nil, "check", "--read-data")
			f.restoreExact(t, f.e, f.snapA, "a")
			f.restoreExact(t, f.e, f.snapB, "b")
		}},
		{"old index replayed after its packs were deleted", func(t *testing.T, f *tamperFixture) {
			// Delete snapB and the packs only it used, as a prune would,
			// and rebuild the index twice, so that the index file in
			// force no longer names snapB's index file as superseded.
			// snapB's index file put back is then in force again, and
			// lists deleted packs.
			var indexB []string
			for _, n := range f.indexAll {
				if !slices.Contains(f.indexA, n) {
					indexB = append(indexB, n)
				}
			}
			old := copyFiles(t, filepath.Join(f.repo, "index"), indexB)
			expectRun(t, f.e, ExitOK, nil, "forget", f.snapB)
			var deleted []string
			for _, p := range f.packsAll {
				if !slices.Contains(f.packsA, p) {
					if err := os.Remove(f.packPath(p)); err != nil {
						t.Fatal(err)
					}
					deleted = append(deleted, p)
				}
			}
			expectRun(t, f.e, ExitOK, nil, "repair", "index")
			expectRun(t, f.e, ExitOK, nil, "repair", "index")
			expectRun(t, f.e, ExitOK, nil, "check", "--read-data")
			old.putBack(t)

			names := []string{"data/" + deleted[0]}
			for _, n := range indexB {
				names = append(names, "index/"+n)
			}
			expectRun(t, f.e, ExitFatal, names, "check")
			expectRun(t, f.e, ExitFatal, names, "check", "--read-data")
			f.restoreExact(t, f.e, f.snapA, "a")
		}},
		{"snapshot truncated", func(t *testing.T, f *tamperFixture) {
			p := filepath.Join(f.repo, "snapshots", f.snapA)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			makeWritable(t, p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			obj := []string{"snapshots/" + f.snapA}
			expectRun(t, f.e, ExitFatal, obj, "check")
			expectRun(t, f.e, ExitFatal, obj, "check", "--read-data")
			expectRun(t, f.e, ExitFatal, obj, "restore", f.snapA, "--target", f.e.path("restore-a"))
			f.restoreExact(t, f.e, f.snapB, "b")
		}},
		{"snapshot replaced by another", func(t *testing.T, f *tamperFixture) {
			b, err := os.ReadFile(filepath.Join(f.repo, "snapshots", f.snapB))
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(f.repo, "snapshots", f.snapA)
			makeWritable(t, p)
			if err := os.WriteFile(p, b, 0o400); err != nil {
				t.Fatal(err)
			}
			obj := []string{"snapshots/" + f.snapA}
			expectRun(t, f.e, ExitFatal, obj, "check")
			expectRun(t, f.e, ExitFatal, obj, "check", "--read-data")
			expectRun(t, f.e, ExitFatal, obj, "restore", f.snapA, "--target", f.e.path("restore-a"))
			f.restoreExact(t, f.e, f.snapB, "b")
		}},
		{"key file byte changed", keyCase(func(t *testing.T, f *tamperFixture, path string) string {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// A character of the base64 wrapped key, changed to another
			// base64 character: the file still parses.
			i := bytes.Index(b, []byte(`"data":"`)) + len(`"data":"`) + 40
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			if err := os.WriteFile(path, b, 0o400); err != nil {
				t.Fatal(err)
			}
			return filepath.Base(path)
		})},
		{"key file field changed", keyCase(func(t *testing.T, f *tamperFixture, path string) string {
			replaceInFile(t, path, `"time":1,`, `"time":2,`)
			return filepath.Base(path)
		})},
		{"key file field changed and renamed to its hash", keyCase(func(t *testing.T, f *tamperFixture, path string) string {
			// The name matches the content again, so only decoding
			// the file finds the damage.
			b := replaceInFile(t, path, `"kdf":"argon2id"`, `"kdf":"argon2i"`)
			name := crypto.FileID(b).String()
			if err := os.Rename(path, filepath.Join(filepath.Dir(path), name)); err != nil {
				t.Fatal(err)
			}
			return name
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newTamperFixture(t)
			c.run(t, f)
		})
	}
}

// replaceInFile replaces the first old with new in the file at path, failing
// the test if old is not there, and returns the new content.
func replaceInFile(t *testing.T, path, old, new string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %s: %s", path, old, b)
	}
	b = bytes.Replace(b, []byte(old), []byte(new), 1)
	if err := os.WriteFile(path, b, 0o400); err != nil {
		t.Fatal(err)
	}
	return b
}

// copiedFiles are copies of some files of a folder, to be put back later.
type copiedFiles struct {
	dir   string
	files map[string][]byte
}

func copyFiles(t *testing.T, dir string, names []string) copiedFiles {
	t.Helper()
	s := copiedFiles{dir: dir, files: map[string][]byte{}}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		s.files[n] = b
	}
	if len(s.files) == 0 {
		t.Fatalf("nothing to save in %s", dir)
	}
	return s
}

// putBack writes the saved files again, failing if one is still there.
func (s copiedFiles) putBack(t *testing.T) {
	t.Helper()
	for n, b := range s.files {
		w, err := os.OpenFile(filepath.Join(s.dir, n), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Write(b)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
