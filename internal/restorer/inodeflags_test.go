package restorer_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// Inode flags as in linux/fs.h, spelled out here rather than taken from
// the code under test.
const (
	flSync      = 0x8
	flImmutable = 0x10
	flAppend    = 0x20
	flNoDump    = 0x40
	flNoAtime   = 0x80
	flDirSync   = 0x10000
	flNoCow     = 0x800000
)

// inodeFlagsOf reads p's inode flags with FS_IOC_GETFLAGS.
func inodeFlagsOf(t testing.TB, p string) uint32 {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOTSUP) {
		return 0
	}
	must(t, err)
	return v
}

func setInodeFlags(t testing.TB, p string, flags uint32) {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	cur, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	must(t, err)
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(int32(cur|flags))); err != nil {
		t.Fatalf("set inode flags %#x on %s: %v", flags, p, err)
	}
}

func clearInodeFlags(t testing.TB, p string, flags uint32) {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fd)
	cur, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	must(t, err)
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(int32(cur&^flags))); err != nil {
		t.Errorf("clear inode flags %#x on %s: %v", flags, p, err)
	}
}

// TestRestoreInodeFlags backs up files and folders with chattr flags on
// ext4 (immutable, append only, no dump, no atime, sync, directory sync,
// an immutable folder with files in it) and restores them as root: every
// flag comes back, after the content and times it would have forbidden;
// and a second restore with Overwrite writes over the immutable entries
// the first left, and ends with the same flags.
func TestRestoreInodeFlags(t *testing.T) {
	testutil.RequireRoot(t)
	mnt := testutil.Ext4(t)
	src := filepath.Join(mnt, "src")
	want := map[string]uint32{
		"locked":          flImmutable,
		"journal":         flAppend | flNoDump,
		"quiet":           flNoAtime | flSync,
		"none":            0,
		"frozen":          flImmutable | flNoDump,
		"frozen/inside":   flNoAtime,
		"dsync":           flDirSync,
		"dsync/appending": flAppend,
	}
	for _, p := range []string{"frozen", "dsync"} {
		must(t, os.MkdirAll(filepath.Join(src, p), 0o750))
	}
	for i, p := range []string{"locked", "journal", "quiet", "none", "frozen/inside", "dsync/appending"} {
		writeFile(t, filepath.Join(src, p), randomBytes(uint64(i), 2000+i))
	}
	// Children first: an immutable folder takes no new flags below it.
	for _, p := range []string{"frozen/inside", "dsync/appending", "locked", "journal", "quiet", "dsync", "frozen"} {
		setInodeFlags(t, filepath.Join(src, p), want[p])
	}
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)
	if n := lookupNode(t, r, sn, filepath.Join(src, "frozen")); !n.HasInodeFlags || n.InodeFlags != flImmutable|flNoDump {
		t.Errorf("snapshot has folder flags %#x (read %v), want %#x", n.InodeFlags, n.HasInodeFlags, flImmutable|flNoDump)
	}

	target := filepath.Join(mnt, "target")
	for _, overwrite := range []bool{false, true} {
		st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: overwrite, Owner: true})
		if err != nil {
			t.Fatalf("restore (overwrite %v): %v\n%s%v", overwrite, err, errorsText(st), st.Warnings)
		}
		for p, w := range want {
			got := inodeFlagsOf(t, filepath.Join(target, p)) & fs.KeptInodeFlags
			if got != w {
				t.Errorf("overwrite %v: %s has flags %#x, want %#x", overwrite, p, got, w)
			}
		}
		e := capture(t, filepath.Join(target, "frozen", "inside"))
		s := capture(t, filepath.Join(src, "frozen", "inside"))
		if string(e.data) != string(s.data) || e.st.Mtim != s.st.Mtim || e.perm() != s.perm() {
			t.Errorf("overwrite %v: frozen/inside not restored whole (mtime %v, want %v)", overwrite, e.st.Mtim, s.st.Mtim)
		}
	}
	// Leave the filesystem removable.
	for p, w := range want {
		if w&(flImmutable|flAppend) != 0 {
			for _, root := range []string{src, target} {
				clearInodeFlags(t, filepath.Join(root, p), flImmutable|flAppend)
			}
		}
	}
}
