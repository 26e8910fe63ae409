package restorer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

const testPassword = "restorer test password"

// newTestRepo initialises a repository in a new temporary folder, with
// cheap key derivation.
func newTestRepo(t testing.TB) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(t.TempDir(), "repo"))
	must(t, err)
	r, err := repository.Init(ctx, be, []byte(testPassword), repository.InitOptions{KDF: crypto.TestKDFParams})
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// backup stores a snapshot of paths and returns it with the archiver.
func backup(t testing.TB, r *repository.Repository, paths ...string) (*snapshot.Snapshot, *archiver.Archiver) {
	t.Helper()
	a, err := archiver.New(r, archiver.Options{})
	must(t, err)
	sn, err := a.Snapshot(context.Background(), paths)
	if err != nil {
		t.Fatalf("backup %q: %v", paths, err)
	}
	return sn, a
}

// restore restores the snapshot's folder at snapPath into opt.Target.
func restore(t testing.TB, r *repository.Repository, sn *snapshot.Snapshot, snapPath string, opt restorer.Options) (*restorer.Stats, error) {
	t.Helper()
	rs, err := restorer.New(r, opt)
	must(t, err)
	return rs.Restore(context.Background(), sn, snapPath)
}

// lookupNode returns the snapshot's node at p.
func lookupNode(t testing.TB, r *repository.Repository, sn *snapshot.Snapshot, p string) *tree.Node {
	t.Helper()
	n, err := snapshot.Lookup(context.Background(), r, sn, p)
	if err != nil {
		t.Fatalf("lookup %s: %v", p, err)
	}
	return n
}

// entry is what a test captures of one directory entry, read with plain
// system calls and getfacl rather than the code under test.
type entry struct {
	st      unix.Stat_t
	target  string            // symlinks
	xattrs  map[string]string // name → value, all namespaces
	data    []byte            // regular files
	regions [][2]int64        // regular files: SEEK_DATA/SEEK_HOLE runs
	acl     string            // getfacl output; not for symlinks
}

func (e *entry) typ() uint32  { return e.st.Mode & unix.S_IFMT }
func (e *entry) perm() uint32 { return e.st.Mode & 0o7777 }

// captureTree captures every entry below root, keyed by its path relative
// to root. Directories are opened and files read with O_NOATIME, so the
// capture leaves access times alone, except a symlink's: readlink always
// sets it (after the lstat that recorded it).
func captureTree(t testing.TB, root string) map[string]*entry {
	t.Helper()
	out := map[string]*entry{}
	var walk func(rel string)
	walk = func(rel string) {
		d, err := os.OpenFile(filepath.Join(root, rel), os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
		must(t, err)
		names, err := d.Readdirnames(-1)
		d.Close()
		must(t, err)
		slices.Sort(names)
		for _, name := range names {
			r := filepath.Join(rel, name)
			e := capture(t, filepath.Join(root, r))
			out[r] = e
			if e.typ() == unix.S_IFDIR {
				walk(r)
			}
		}
	}
	walk("")
	return out
}

func capture(t testing.TB, p string) *entry {
	t.Helper()
	e := &entry{xattrs: map[string]string{}}
	must(t, unix.Lstat(p, &e.st))
	e.xattrs = listXattrs(t, p)
	switch e.typ() {
	case unix.S_IFLNK:
		var err error
		e.target, err = os.Readlink(p)
		must(t, err)
	case unix.S_IFREG:
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
		must(t, err)
		defer f.Close()
		e.data, err = io.ReadAll(f)
		must(t, err)
		e.regions = dataRegions(t, f, int64(len(e.data)))
	}
	if e.typ() != unix.S_IFLNK && e.typ() != unix.S_IFSOCK {
		e.acl = getfacl(t, p)
	}
	return e
}

// listXattrs reads all extended attributes of p without following it.
func listXattrs(t testing.TB, p string) map[string]string {
	t.Helper()
	out := map[string]string{}
	n, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return out
	}
	must(t, err)
	buf := make([]byte, n)
	n, err = unix.Llistxattr(p, buf)
	must(t, err)
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		sz, err := unix.Lgetxattr(p, name, nil)
		must(t, err)
		v := make([]byte, sz)
		sz, err = unix.Lgetxattr(p, name, v)
		must(t, err)
		out[name] = string(v[:sz])
	}
	return out
}

// dataRegions lists f's data runs with SEEK_DATA and SEEK_HOLE.
func dataRegions(t testing.TB, f *os.File, size int64) [][2]int64 {
	t.Helper()
	var rs [][2]int64
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		must(t, err)
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		must(t, err)
		rs = append(rs, [2]int64{data, hole})
		off = hole
	}
	return rs
}

func getfacl(t testing.TB, p string) string {
	t.Helper()
	if _, err := exec.LookPath("getfacl"); err != nil {
		return ""
	}
	out, err := exec.Command("getfacl", "--omit-header", "--numeric", "--physical", "--", p).Output()
	if err != nil {
		t.Fatalf("getfacl %q: %v", p, err)
	}
	return string(out)
}

// runTool runs a program and fails the test if it fails.
func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v: %s", name, args, err, out)
	}
}

// randomBytes returns n bytes that do not compress, reproducibly for seed.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, n+7)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b[:n]
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, data, 0o644))
}

// names lists a folder's entries, sorted.
func names(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// errorsText joins a restore's errors for messages and searches.
func errorsText(st *restorer.Stats) string {
	var b bytes.Buffer
	for _, e := range st.Errors {
		fmt.Fprintf(&b, "%q: %s\n", e.Path, e.Error)
	}
	return b.String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
