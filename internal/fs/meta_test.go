package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
)

// TestApplyMetaReplacesXattrs restores over an entry that already has
// attributes and an ACL the node lacks, as when restoring into an existing
// directory or under a default ACL: they must go, security ones stay.
func TestApplyMetaReplacesXattrs(t *testing.T) {
	for _, byFd := range []bool{false, true} {
		name := "ApplyMeta"
		if byFd {
			name = "ApplyMetaFd"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if !xattrsSupported(t, dir) {
				t.Skip("no xattrs")
			}
			testutil.RequireTool(t, "setfacl")
			p := filepath.Join(dir, "f")
			must(t, os.WriteFile(p, []byte("x"), 0o600))
			must(t, unix.Lsetxattr(p, "user.stale", []byte("s"), 0))
			must(t, unix.Lsetxattr(p, "user.keep", []byte("old"), 0))
			runTool(t, "setfacl", "-m", "u:1234:rw", p)
			if testutil.IsRoot() {
				must(t, unix.Lsetxattr(p, "security.rewind-test", []byte("label"), 0))
			}

			n := &tree.Node{Name: "f", Type: tree.File, Mode: 0o640, MTime: 1e18, ATime: 1e18,
				Xattrs: []tree.Xattr{{Name: "user.keep", Value: []byte("new")}}}
			if byFd {
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				must(t, err)
				err = ApplyMetaFd(f, n, ApplyOptions{})
				must(t, f.Close())
				must(t, err)
			} else {
				dirfd, err := OpenDir(dir)
				must(t, err)
				defer unix.Close(dirfd)
				must(t, ApplyMeta(dirfd, "f", n, ApplyOptions{}))
			}

			got, err := ReadXattrs(p)
			must(t, err)
			want := n.Xattrs
			if testutil.IsRoot() {
				want = []tree.Xattr{{Name: "security.rewind-test", Value: []byte("label")}, want[0]}
			}
			if !xattrsEqual(got, want) {
				t.Errorf("xattrs = %v, want %v", got, want)
			}
			var st unix.Stat_t
			must(t, unix.Lstat(p, &st))
			if st.Mode&0o7777 != 0o640 {
				t.Errorf("mode %#o, want 0640", st.Mode&0o7777)
			}
		})
	}
}

// TestApplyMetaKeepsGoing checks that a failing step does not stop the
// others and that the error names the step and the entry.
func TestApplyMetaKeepsGoing(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Symlink("target", filepath.Join(dir, "link")))
	dirfd, err := OpenDir(dir)
	must(t, err)
	defer unix.Close(dirfd)

	// Linux refuses user attributes on symlinks.
	n := &tree.Node{Type: tree.Symlink, MTime: 1_000_000_000_000_000_123, ATime: 999,
		Xattrs: []tree.Xattr{{Name: "user.x", Value: []byte("v")}}}
	err = ApplyMeta(dirfd, "link", n, ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "lsetxattr user.x link") {
		t.Fatalf("err = %v, want an lsetxattr user.x error naming link", err)
	}
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("err = %v, want EPERM inside", err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dir, "link"), &st))
	if st.Mtim.Nano() != n.MTime || st.Atim.Nano() != n.ATime {
		t.Errorf("times not set after the failure: %d %d", st.Mtim.Nano(), st.Atim.Nano())
	}
}

// TestChmodViaProc tests the fallback for kernels without fchmodat2.
func TestChmodViaProc(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	must(t, os.WriteFile(target, nil, 0o600))
	must(t, os.Symlink(target, filepath.Join(dir, "link")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	dirfd, err := OpenDir(dir)
	must(t, err)
	defer unix.Close(dirfd)

	for _, name := range []string{"target", "fifo"} {
		must(t, chmodViaProc(dirfd, name, 0o4751))
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(dir, name), &st))
		if st.Mode&0o7777 != 0o4751 {
			t.Errorf("%s: mode %#o, want 04751", name, st.Mode&0o7777)
		}
	}
	must(t, unix.Chmod(target, 0o600))
	if err := chmodViaProc(dirfd, "link", 0o777); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("chmod of a symlink: err = %v, want EOPNOTSUPP", err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("chmod of a symlink changed its target: %v %v", fi.Mode(), err)
	}
}

func TestApplyOptionsIDs(t *testing.T) {
	names := idNamesFromText(t, "alice:x:2000:2000::/:/bin/sh\n", "staff:x:3000:\n")
	n := &tree.Node{UID: 1000, GID: 1000, User: "alice", Group: "nosuchgroup"}
	if uid, gid := (&ApplyOptions{}).ids(n); uid != 1000 || gid != 1000 {
		t.Errorf("numeric: %d:%d, want 1000:1000", uid, gid)
	}
	if uid, gid := (&ApplyOptions{Names: names}).ids(n); uid != 2000 || gid != 1000 {
		t.Errorf("by name: %d:%d, want 2000:1000", uid, gid)
	}

	if !testutil.IsRoot() {
		return
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "f"), nil, 0o600))
	dirfd, err := OpenDir(dir)
	must(t, err)
	defer unix.Close(dirfd)
	n = &tree.Node{Type: tree.File, Mode: 0o600, UID: 1, GID: 2, User: "alice", Group: "staff"}
	must(t, ApplyMeta(dirfd, "f", n, ApplyOptions{Owner: true, Names: names}))
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dir, "f"), &st))
	if st.Uid != 2000 || st.Gid != 3000 {
		t.Errorf("owner %d:%d, want 2000:3000", st.Uid, st.Gid)
	}
}
