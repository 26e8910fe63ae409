package restorer_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// xattrLoad is a file or folder with extended attributes that XFS holds
// and ext4 or btrfs may not.
type xattrLoad struct {
	name   string
	dir    bool
	xattrs map[string][]byte
}

func xattrLoads() []xattrLoad {
	crowded := map[string][]byte{}
	for i := range 700 {
		crowded[fmt.Sprintf("user.crowd.%04d", i)] = randomBytes(uint64(i), 24+i%40)
	}
	return []xattrLoad{
		// More attributes than ext4 keeps on one inode (one block).
		{name: "crowded", xattrs: crowded},
		// A value larger than ext4's block and btrfs's metadata leaf,
		// beside small ones that fit everywhere.
		{name: "bulky", xattrs: map[string][]byte{
			"user.a-small": []byte("kept"),
			"user.blob":    randomBytes(1, 30000),
			"user.z-small": []byte("kept too"),
		}},
		// A folder too: its metadata is set by another path.
		{name: "folder", dir: true, xattrs: map[string][]byte{
			"user.big": randomBytes(2, 20000),
			"user.ok":  []byte("yes"),
		}},
		{name: "plain", xattrs: map[string][]byte{"user.one": []byte("1"), "user.two": []byte("22")}},
	}
}

// TestRestoreXattrsTargetRefuses backs up, from XFS, files and a folder
// with more and larger extended attributes than ext4 and btrfs hold,
// restores them onto each, and checks the restore finishes with every
// file's content and every attribute the target could hold, names each
// entry and attribute it refused in a warning, and ends in ErrNotAllKept,
// not a full disk; a second restore with Overwrite ends the same way.
func TestRestoreXattrsTargetRefuses(t *testing.T) {
	src := filepath.Join(testutil.XFS(t), "src")
	loads := xattrLoads()
	for i, l := range loads {
		p := filepath.Join(src, l.name)
		if l.dir {
			must(t, os.MkdirAll(p, 0o755))
			writeFile(t, filepath.Join(p, "inside"), randomBytes(uint64(50+i), 3000))
		} else {
			writeFile(t, p, randomBytes(uint64(50+i), 10000+i))
		}
		for name, v := range l.xattrs {
			must(t, unix.Lsetxattr(p, name, v, 0))
		}
	}
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)

	for _, fstype := range []string{"ext4", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			var mnt string
			if fstype == "ext4" {
				mnt = testutil.Ext4(t)
			} else {
				mnt = testutil.LoopFS(t, "btrfs", 128<<20)
			}
			target := filepath.Join(mnt, "target")
			for _, overwrite := range []bool{false, true} {
				st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: overwrite})
				if !errors.Is(err, restorer.ErrNotAllKept) || errors.Is(err, restorer.ErrDiskFull) {
					t.Fatalf("restore (overwrite %v): %v, want ErrNotAllKept\n%s", overwrite, err, errorsText(st))
				}
				if len(st.Errors) > 0 {
					t.Errorf("restore (overwrite %v) failed entries:\n%s", overwrite, errorsText(st))
				}
				checkNotKept(t, src, target, loads, st)
			}
		})
	}
}

// checkNotKept compares every load's content and attributes in target
// with src: each attribute is there with its value, or the entry has a
// warning that names it (or counts it past the names it lists).
func checkNotKept(t *testing.T, src, target string, loads []xattrLoad, st *restorer.Stats) {
	t.Helper()
	warned := map[string]string{}
	for _, w := range st.Warnings {
		warned[strings.TrimPrefix(w.Path, src+"/")] = w.Error
	}
	refused := 0
	for _, l := range loads {
		p := filepath.Join(target, l.name)
		want, got := filepath.Join(src, l.name), p
		if l.dir {
			want, got = filepath.Join(want, "inside"), filepath.Join(got, "inside")
		}
		wb, err := os.ReadFile(want)
		must(t, err)
		if gb, err := os.ReadFile(got); err != nil || !bytes.Equal(gb, wb) {
			t.Errorf("%s: content not restored (%d bytes, %v)", l.name, len(gb), err)
		}
		have := listXattrs(t, p)
		var missing []string
		for name, v := range l.xattrs {
			g, ok := have[name]
			switch {
			case !ok:
				missing = append(missing, name)
			case g != string(v):
				t.Errorf("%s: xattr %s restored with another value", l.name, name)
			}
		}
		slices.Sort(missing)
		msg, ok := warned[l.name]
		switch {
		case len(missing) == 0 && ok:
			t.Errorf("%s: warning %q, but every attribute was kept", l.name, msg)
		case len(missing) > 0 && !ok:
			t.Errorf("%s: %d attributes lost without a warning (%s...)", l.name, len(missing), missing[0])
		case len(missing) > 0:
			refused++
			if !strings.Contains(msg, fmt.Sprintf("%q", missing[0])) {
				t.Errorf("%s: warning %q does not name %s", l.name, msg, missing[0])
			}
			if more := len(missing) - 8; more > 0 && !strings.Contains(msg, fmt.Sprintf("and %d more", more)) {
				t.Errorf("%s: warning %q does not count the %d attributes it does not name", l.name, msg, more)
			}
		}
	}
	if refused == 0 {
		t.Error("the target kept every attribute: the test does not test anything")
	}
	if len(warned) != refused {
		t.Errorf("%d warnings for %d entries that lost attributes: %v", len(warned), refused, st.Warnings)
	}
}

// TestRestoreXattrDiskFull restores empty files whose attributes need a
// block of their own onto an ext4 filesystem with no free block left: that
// ENOSPC is a full disk, not an attribute the filesystem refuses, so the
// restore stops with ErrDiskFull; once space is freed the same restore
// keeps every attribute.
func TestRestoreXattrDiskFull(t *testing.T) {
	src := t.TempDir()
	if err := unix.Setxattr(src, "user.probe", []byte("1"), 0); err != nil {
		src = filepath.Join(testutil.Ext4(t), "src")
		must(t, os.Mkdir(src, 0o755))
	}
	for i := range 3 {
		p := filepath.Join(src, fmt.Sprintf("empty%d", i))
		writeFile(t, p, nil)
		must(t, unix.Lsetxattr(p, "user.note", randomBytes(uint64(i), 2500+i*300), 0))
	}
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)

	mnt := testutil.LoopFS(t, "ext4", 16<<20, "-b", "4096", "-I", "256", "-m", "0", "-E", "nodiscard")
	target := filepath.Join(mnt, "target")
	must(t, os.Mkdir(target, 0o755))
	ballast := filepath.Join(mnt, "ballast")
	fill(t, ballast)

	st, err := restore(t, r, sn, src, restorer.Options{Target: target})
	if !errors.Is(err, restorer.ErrDiskFull) {
		t.Fatalf("restore onto a full disk: %v, want ErrDiskFull\nerrors:\n%swarnings: %v", err, errorsText(st), st.Warnings)
	}
	if len(st.Warnings) > 0 {
		t.Errorf("a full disk reported as attributes the filesystem refuses: %v", st.Warnings)
	}

	must(t, os.Remove(ballast))
	// Commit the freed blocks, so statfs counts them.
	mfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	must(t, unix.Syncfs(mfd))
	unix.Close(mfd)
	if st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true}); err != nil {
		t.Fatalf("restore after making room: %v\n%s%v", err, errorsText(st), st.Warnings)
	}
	for i := range 3 {
		name := fmt.Sprintf("empty%d", i)
		got := listXattrs(t, filepath.Join(target, name))["user.note"]
		if got != string(randomBytes(uint64(i), 2500+i*300)) {
			t.Errorf("%s: user.note not restored (%d bytes)", name, len(got))
		}
	}
}

// fill writes p until its filesystem has no free block left.
func fill(t *testing.T, p string) {
	t.Helper()
	f, err := os.Create(p)
	must(t, err)
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// Delayed allocation may have promised more than there is: sync, and
	// take the last blocks with small writes.
	f.Sync()
	for _, err := f.Write(chunk[:4096]); err == nil; _, err = f.Write(chunk[:4096]) {
		f.Sync()
	}
	var sfs unix.Statfs_t
	must(t, unix.Statfs(p, &sfs))
	if sfs.Bavail > 0 {
		t.Fatalf("%d blocks still available after filling", sfs.Bavail)
	}
}
