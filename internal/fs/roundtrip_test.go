package fs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
)

// entry is what a test captures of one directory entry: the node as the
// archiver would record it, plus what the comparison needs.
type entry struct {
	node     tree.Node
	blocks   int64
	regions  []Region
	data     []byte
	acl      string // getfacl output, for entries that are not symlinks
	children []*entry
}

// TestRoundTrip captures a tree holding every kind of entry and metadata,
// restores it with the Apply functions into another directory, captures
// that and compares. It runs on a loop-mounted ext4 (as root) and in the
// test's temporary directory, applying regular files' metadata by
// descriptor and by name.
func TestRoundTrip(t *testing.T) {
	fss := []struct {
		name string
		dir  func(testing.TB) string
	}{
		{"ext4", testutil.Ext4},
		{"tmpdir", func(t testing.TB) string { return t.TempDir() }},
	}
	for _, fsys := range fss {
		t.Run(fsys.name, func(t *testing.T) {
			base := fsys.dir(t)
			t.Cleanup(func() { makeRemovable(base) })
			src := filepath.Join(base, "src")
			must(t, os.Mkdir(src, 0o755))
			buildFixture(t, src)
			want := captureDir(t, src)
			checkFixture(t, want)
			for _, byFd := range []bool{true, false} {
				t.Run(fmt.Sprintf("ApplyMetaFd=%v", byFd), func(t *testing.T) {
					dst := filepath.Join(base, fmt.Sprintf("dst-%v", byFd))
					must(t, os.Mkdir(dst, 0o755))
					dirfd, err := OpenDir(dst)
					must(t, err)
					opt := ApplyOptions{Owner: testutil.IsRoot()}
					restoreDir(t, dirfd, want, opt, byFd)
					must(t, unix.Close(dirfd))
					compareEntries(t, "", want, captureDir(t, dst))
				})
			}
		})
	}
}

// checkFixture makes sure the comparison is not vacuous: the captured
// source really has the ACLs, attributes and holes the fixture made.
func checkFixture(t *testing.T, es []*entry) {
	t.Helper()
	byName := map[string]*entry{}
	for _, e := range es {
		byName[e.node.Name] = e
	}
	for name, mode := range map[string]uint32{"setuid": 0o4755, "setgid": 0o2711, "sticky": 0o1777, "rodir": 0o555} {
		if e := byName[name]; e == nil || e.node.Mode != mode {
			t.Errorf("source %s does not have mode %#o", name, mode)
		}
	}
	if e := byName["owned-setuid"]; e != nil && (e.node.Mode != 0o6750 || e.node.UID != 1234) {
		t.Errorf("source owned-setuid: mode %#o uid %d", e.node.Mode, e.node.UID)
	}
	if e := byName["sparse"]; e == nil || len(e.regions) != 2 || e.blocks*512 >= sparseSize/2 {
		t.Errorf("source sparse file is not sparse: %+v", e)
	}
	if e := byName["all-hole"]; e == nil || len(e.regions) != 0 {
		t.Errorf("source all-hole file has data regions")
	}
	if e := byName["acl-dir"]; e != nil {
		if !strings.Contains(e.acl, "user:4321:r-x") || !strings.Contains(e.acl, "default:user:1234:rwx") {
			t.Errorf("acl-dir lacks its ACLs:\n%s", e.acl)
		}
		if in := e.children[0]; in.node.Name != "inherited" || !strings.Contains(in.acl, "user:1234:") {
			t.Errorf("acl-dir/inherited did not inherit the default ACL:\n%s", in.acl)
		}
	}
	if e := byName["cap"]; e != nil && !slices.ContainsFunc(e.node.Xattrs, func(x tree.Xattr) bool { return x.Name == "security.capability" }) {
		t.Errorf("cap has no security.capability: %v", e.node.Xattrs)
	}
}

// captureDir captures the entries of dir, sorted by name, as the archiver
// would: lstat first (reading an entry changes its access time), then
// attributes, link target, holes and content.
func captureDir(t *testing.T, dir string) []*entry {
	t.Helper()
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_NOATIME, 0)
	must(t, err)
	names, err := d.Readdirnames(-1)
	must(t, err)
	must(t, d.Close())
	slices.Sort(names)
	var es []*entry
	for _, name := range names {
		es = append(es, capture(t, filepath.Join(dir, name)))
	}
	return es
}

func capture(t *testing.T, path string) *entry {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(path, &st))
	e := &entry{node: NodeFromStat(filepath.Base(path), &st), blocks: st.Blocks}
	n := &e.node
	var err error
	n.Xattrs, err = ReadXattrs(path)
	must(t, err)
	switch n.Type {
	case tree.Symlink:
		n.LinkTarget, err = os.Readlink(path)
		must(t, err)
	case tree.File:
		// O_NOATIME, as the archiver should: reading a file with other
		// hard links would change their access time before they are
		// captured.
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
		must(t, err)
		defer f.Close()
		checkXattrsFd(t, f, n.Xattrs)
		e.regions, err = DataRegions(f, int64(n.Size))
		must(t, err)
		e.data = make([]byte, n.Size)
		for _, r := range e.regions {
			_, err := f.ReadAt(e.data[r.Off:r.Off+r.Len], r.Off)
			must(t, err)
		}
	case tree.Dir:
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		must(t, err)
		checkXattrsFd(t, f, n.Xattrs)
		must(t, f.Close())
		e.children = captureDir(t, path)
	}
	if n.Type != tree.Symlink {
		e.acl = getfacl(t, path)
	}
	return e
}

// checkXattrsFd checks that ReadXattrsFd agrees with ReadXattrs.
func checkXattrsFd(t *testing.T, f *os.File, want []tree.Xattr) {
	t.Helper()
	got, err := ReadXattrsFd(int(f.Fd()))
	must(t, err)
	if !xattrsEqual(got, want) {
		t.Errorf("%q: ReadXattrsFd = %v, ReadXattrs = %v", f.Name(), got, want)
	}
}

func getfacl(t *testing.T, path string) string {
	t.Helper()
	if _, err := exec.LookPath("getfacl"); err != nil {
		return ""
	}
	return runTool(t, "getfacl", "--omit-header", "--numeric", "--", path)
}

// restoreDir recreates es in dirfd the way a restorer does: directories
// before their contents and their metadata after, files truncated to size
// with only their data regions written, hard links linked to the first
// name restored.
func restoreDir(t *testing.T, dirfd int, es []*entry, opt ApplyOptions, byFd bool) {
	t.Helper()
	linked := map[[2]uint64]string{} // device and inode → name restored
	for _, e := range es {
		n := &e.node
		switch n.Type {
		case tree.Dir:
			must(t, Mkdirat(dirfd, n.Name, 0o700))
			sub, err := OpenDirAt(dirfd, n.Name)
			must(t, err)
			restoreDir(t, sub, e.children, opt, byFd)
			must(t, unix.Close(sub))
		case tree.File:
			key := [2]uint64{n.DeviceID, n.Inode}
			if first, ok := linked[key]; ok {
				must(t, LinkAt(dirfd, first, dirfd, n.Name))
				continue
			}
			if n.Links > 1 {
				linked[key] = n.Name
			}
			f, err := CreateFileAt(dirfd, n.Name, false)
			must(t, err)
			must(t, f.Truncate(int64(n.Size)))
			for _, r := range e.regions {
				_, err := f.WriteAt(e.data[r.Off:r.Off+r.Len], r.Off)
				must(t, err)
			}
			if byFd {
				err := ApplyMetaFd(f, n, opt)
				must(t, f.Close())
				must(t, err)
				continue
			}
			must(t, f.Close())
		case tree.Symlink:
			must(t, SymlinkAt(n.LinkTarget, dirfd, n.Name))
		case tree.BlockDev, tree.CharDev, tree.FIFO:
			must(t, MknodAt(dirfd, n.Name, n))
		default:
			t.Fatalf("%q: cannot restore a %v", n.Name, n.Type)
		}
		must(t, ApplyMeta(dirfd, n.Name, n, opt))
	}
}

// compareEntries compares every field that survives a restore. Inode,
// device and change time cannot.
func compareEntries(t *testing.T, dir string, want, got []*entry) {
	t.Helper()
	var wantNames, gotNames []string
	for _, e := range want {
		wantNames = append(wantNames, e.node.Name)
	}
	for _, e := range got {
		gotNames = append(gotNames, e.node.Name)
	}
	if !slices.Equal(wantNames, gotNames) {
		t.Fatalf("%q: restored entries %q, want %q", dir, gotNames, wantNames)
	}
	for i, w := range want {
		g := got[i]
		wn, gn := &w.node, &g.node
		path := filepath.Join(dir, wn.Name)
		check := func(field string, want, got any) {
			t.Helper()
			if want != got {
				t.Errorf("%q: %s = %v, want %v", path, field, got, want)
			}
		}
		check("type", wn.Type, gn.Type)
		check("mode", fmt.Sprintf("%#o", wn.Mode), fmt.Sprintf("%#o", gn.Mode))
		check("uid", wn.UID, gn.UID)
		check("gid", wn.GID, gn.GID)
		check("size", wn.Size, gn.Size)
		check("mtime", wn.MTime, gn.MTime)
		check("atime", wn.ATime, gn.ATime)
		check("links", wn.Links, gn.Links)
		check("rdev", wn.Rdev, gn.Rdev)
		check("link target", wn.LinkTarget, gn.LinkTarget)
		check("acl", w.acl, g.acl)
		if !xattrsEqual(wn.Xattrs, gn.Xattrs) {
			t.Errorf("%q: xattrs = %v, want %v", path, gn.Xattrs, wn.Xattrs)
		}
		if !bytes.Equal(w.data, g.data) {
			t.Errorf("%q: content differs", path)
		}
		if !slices.Equal(w.regions, g.regions) {
			t.Errorf("%q: data regions = %v, want %v", path, g.regions, w.regions)
		}
		if isSparse(w) && g.blocks != w.blocks {
			t.Errorf("%q: %d blocks allocated, want %d: holes were filled", path, g.blocks, w.blocks)
		}
		if wn.Type == tree.Dir {
			compareEntries(t, path, w.children, g.children)
		}
	}
}

// makeRemovable gives the owner write access to every directory under
// dir, so that a non-root test can delete read-only directories' contents.
func makeRemovable(dir string) {
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
}

func isSparse(e *entry) bool {
	var n int64
	for _, r := range e.regions {
		n += r.Len
	}
	return e.node.Type == tree.File && n < int64(e.node.Size)
}

func xattrsEqual(a, b []tree.Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y tree.Xattr) bool {
		return x.Name == y.Name && bytes.Equal(x.Value, y.Value)
	})
}
