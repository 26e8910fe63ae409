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

func getFlags(t *testing.T, p string) uint32 {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	must(t, err)
	return v
}

// TestApplyMetaInodeFlags sets, clears and leaves alone the inode flags
// of a file and a folder on ext4 through ApplyMeta, and has XFS refuse
// flags it does not support with a NotKeptError that names them while it
// keeps the others.
func TestApplyMetaInodeFlags(t *testing.T) {
	testutil.RequireRoot(t)
	const noDump, noAtime, compress, dirSync = 0x40, 0x80, 0x4, 0x10000
	dir := testutil.Ext4(t)
	dirfd, err := OpenDir(dir)
	must(t, err)
	defer unix.Close(dirfd)
	must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	for _, c := range []struct {
		name       string
		typ        tree.Type
		flags      uint32
		has        bool
		want, keep uint32 // want in KeptInodeFlags; keep, the others, must not change
	}{
		{"f", tree.File, noDump | noAtime, true, noDump | noAtime, 0},
		{"f", tree.File, 0, false, noDump | noAtime, 0}, // an old snapshot: left alone
		{"f", tree.File, noAtime, true, noAtime, 0},
		{"d", tree.Dir, dirSync | noDump, true, dirSync | noDump, 0},
		{"d", tree.Dir, 0, true, 0, 0},
	} {
		p := filepath.Join(dir, c.name)
		before := getFlags(t, p)
		n := &tree.Node{Name: c.name, Type: c.typ, Mode: 0o644, InodeFlags: c.flags, HasInodeFlags: c.has}
		if err := ApplyMeta(dirfd, c.name, n, ApplyOptions{}); err != nil {
			t.Fatalf("%s flags %#x: %v", c.name, c.flags, err)
		}
		got := getFlags(t, p)
		if got&KeptInodeFlags != c.want || got&^KeptInodeFlags != before&^KeptInodeFlags {
			t.Errorf("%s: flags %#x → %#x after applying %#x (read %v), want %#x kept", c.name, before, got, c.flags, c.has, c.want)
		}
	}

	xfs := testutil.XFS(t)
	xfd, err := OpenDir(xfs)
	must(t, err)
	defer unix.Close(xfd)
	must(t, os.WriteFile(filepath.Join(xfs, "f"), []byte("x"), 0o644))
	n := &tree.Node{Name: "f", Type: tree.File, Mode: 0o644, InodeFlags: noDump | compress, HasInodeFlags: true}
	err = ApplyMeta(xfd, "f", n, ApplyOptions{})
	notKept, other := SplitNotKept(err)
	if other != nil || notKept == nil || !strings.Contains(notKept.Error(), "inode flag c (compress)") ||
		strings.Contains(notKept.Error(), "no dump") {
		t.Errorf("compress on XFS: not kept %v, other %v; want compress named, and nothing else", notKept, other)
	}
	if !errors.Is(notKept, ErrNotKept) {
		t.Errorf("%v is not ErrNotKept", notKept)
	}
	if got := getFlags(t, filepath.Join(xfs, "f")) & KeptInodeFlags; got != noDump {
		t.Errorf("XFS kept flags %#x, want no dump (%#x) alone", got, noDump)
	}
}
