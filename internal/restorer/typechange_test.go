package restorer_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/restorer"
)

// kinds of entry a test can put at a path, in the source or in the way.
var kinds = []string{"file", "dir", "symlink-to-file", "symlink-to-dir", "symlink-outside", "fifo", "hardlink"}

// makeKind creates an entry of kind at p. outside is a folder outside
// every target, which symlinks-outside point to and nothing may touch.
func makeKind(t *testing.T, kind, p, outside string, seed uint64) {
	t.Helper()
	switch kind {
	case "file":
		writeFile(t, p, randomBytes(seed, 3000+int(seed)))
	case "dir":
		writeFile(t, filepath.Join(p, "inner", "deep.txt"), randomBytes(seed, 500))
		writeFile(t, filepath.Join(p, "top.txt"), []byte(fmt.Sprintf("top %d", seed)))
		must(t, os.Symlink("/nonexistent", filepath.Join(p, "dangling")))
		must(t, os.Chmod(filepath.Join(p, "inner"), 0o750))
	case "symlink-to-file":
		must(t, os.Symlink("top.txt", p))
	case "symlink-to-dir":
		must(t, os.Symlink(".", p))
	case "symlink-outside":
		must(t, os.Symlink(outside, p))
	case "fifo":
		must(t, unix.Mkfifo(p, 0o640))
	case "hardlink":
		writeFile(t, p, randomBytes(seed+100, 2000))
		must(t, os.Link(p, p+".other-name"))
	}
}

// TestOverwriteReplacesOtherKinds restores, with Overwrite, a snapshot
// holding one entry of each kind over a target where every path holds an
// entry of each other kind: a file where the snapshot has a directory, a
// directory (with content) where it has a file or a symlink, a symlink to a
// directory or to outside the target where it has a directory, and so on.
// The target must end up exactly as the source, nothing outside it may
// change, and each replaced entry counts as removed.
func TestOverwriteReplacesOtherKinds(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	writeFile(t, filepath.Join(outside, "sentinel"), []byte("untouched"))
	src := filepath.Join(base, "src")
	target := filepath.Join(base, "target")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.MkdirAll(target, 0o755))
	pairs := 0
	for i, want := range kinds {
		for j, inWay := range kinds {
			if sameKind(want, inWay) {
				continue
			}
			name := fmt.Sprintf("%s-over-%s", want, inWay)
			makeKind(t, want, filepath.Join(src, name), outside, uint64(i*10+j))
			makeKind(t, inWay, filepath.Join(target, name), outside, uint64(i*10+j+500))
			pairs++
		}
	}
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)
	outsideBefore := captureTree(t, outside)

	st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true})
	if err != nil {
		t.Fatalf("restore over other kinds: %v\n%s", err, errorsText(st))
	}
	// The hard links' other names are the snapshot's too, or extra names
	// the target had: compare only what the source has.
	want, got := captureTree(t, src), captureTree(t, target)
	for rel, w := range want {
		g, ok := got[rel]
		if !ok {
			t.Errorf("%s: missing after the restore", rel)
			continue
		}
		if g.typ() != w.typ() || g.target != w.target || !bytes.Equal(g.data, w.data) || g.perm() != w.perm() {
			t.Errorf("%s: restored as type %o perm %o (%d bytes, link %q); want type %o perm %o (%d bytes, link %q)",
				rel, g.typ(), g.perm(), len(g.data), g.target, w.typ(), w.perm(), len(w.data), w.target)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok && !isOtherName(rel) {
			t.Errorf("%s: left in the target although the snapshot has another kind of entry above or at it", rel)
		}
	}
	if st.Removed < int64(pairs) {
		t.Errorf("entries_removed %d, want at least %d (one per replaced entry)", st.Removed, pairs)
	}
	compareTrees(t, outsideBefore, captureTree(t, outside))

	// Run again: everything is in place, nothing is removed.
	st, err = restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true})
	if err != nil || st.Removed != 0 {
		t.Errorf("second restore: %v, %d removed; want nothing to do", err, st.Removed)
	}
}

// sameKind reports whether an entry of kind b is what the snapshot's
// entry of kind a becomes anyway (so no type change is involved).
func sameKind(a, b string) bool {
	group := func(k string) string {
		switch k {
		case "file", "hardlink":
			return "file"
		case "symlink-to-file", "symlink-to-dir", "symlink-outside":
			return "symlink"
		}
		return k
	}
	return group(a) == group(b)
}

// isOtherName is the second name of a hard link that makeKind made in
// the target only.
func isOtherName(rel string) bool {
	return filepath.Ext(rel) == ".other-name"
}

// TestOverwriteLeavesAloneWhatItMustNot: a directory in the way of a file
// keeps what a restore leaves alone (a mount of another filesystem, an
// excluded entry, a socket); the directory then stays, the file is not
// restored there and the error says why, and the rest of the restore goes
// on.
func TestOverwriteLeavesAloneWhatItMustNot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	base := t.TempDir()
	src := filepath.Join(base, "src")
	target := filepath.Join(base, "target")
	writeFile(t, filepath.Join(src, "mounted"), []byte("a file in the snapshot"))
	writeFile(t, filepath.Join(src, "keep.log"), []byte("a file in the snapshot"))
	writeFile(t, filepath.Join(src, "other"), []byte("restored"))
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)

	mnt := filepath.Join(target, "mounted", "mnt")
	must(t, os.MkdirAll(mnt, 0o755))
	must(t, unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	writeFile(t, filepath.Join(mnt, "on-another-fs"), []byte("keep me"))
	writeFile(t, filepath.Join(target, "keep.log", "kept.txt"), []byte("excluded"))

	st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true, Exclude: []string{"kept.txt"}})
	if err == nil {
		t.Fatal("restore reported no error although two files could not be put in place")
	}
	for _, p := range []string{"mounted", "keep.log"} {
		if !bytes.Contains([]byte(errorsText(st)), []byte("leaves alone")) || !slices.ContainsFunc(st.Errors, func(e restorer.FileError) bool { return filepath.Base(e.Path) == p }) {
			t.Errorf("no error naming %s and why it stayed:\n%s", p, errorsText(st))
		}
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "on-another-fs")); err != nil || string(b) != "keep me" {
		t.Errorf("the other filesystem's file: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "keep.log", "kept.txt")); err != nil || string(b) != "excluded" {
		t.Errorf("the excluded file: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "other")); err != nil || string(b) != "restored" {
		t.Errorf("the rest of the restore: %q, %v", b, err)
	}
}

// TestRestoreDirTakesItsMetadata: restoring SNAPSHOT:/dir into a target
// that does not exist makes the target that directory, with its own mode,
// owner, times, xattrs and ACL; an existing target keeps its own, unless
// the target stands for the directory (TargetIsEntry, as rollback uses).
func TestRestoreDirTakesItsMetadata(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	dir := filepath.Join(src, "shared")
	writeFile(t, filepath.Join(dir, "f"), []byte("content"))
	must(t, os.Chmod(dir, 0o2751))
	if os.Geteuid() == 0 {
		must(t, os.Chown(dir, 4321, 8765))
	}
	must(t, unix.Setxattr(dir, "user.project", []byte("apollo"), 0))
	runTool(t, "setfacl", "-m", "u:1234:rwx", dir)
	runTool(t, "setfacl", "-d", "-m", "g:2345:rx", dir)
	old := unix.NsecToTimespec(1_600_000_000_123_456_789)
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, dir, []unix.Timespec{old, old}, unix.AT_SYMLINK_NOFOLLOW))
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)
	want := capture(t, dir)

	check := func(what, target string, same bool) {
		t.Helper()
		got := capture(t, target)
		match := got.perm() == want.perm() && got.st.Uid == want.st.Uid && got.st.Gid == want.st.Gid &&
			got.st.Mtim == want.st.Mtim && got.acl == want.acl && got.xattrs["user.project"] == "apollo"
		if match != same {
			t.Errorf("%s: mode %o owner %d:%d mtime %v xattr %q acl\n%s\nwant (same=%v) mode %o owner %d:%d mtime %v acl\n%s",
				what, got.perm(), got.st.Uid, got.st.Gid, got.st.Mtim, got.xattrs["user.project"], got.acl,
				same, want.perm(), want.st.Uid, want.st.Gid, want.st.Mtim, want.acl)
		}
	}
	fresh := filepath.Join(base, "new", "deeper", "shared")
	if _, err := restore(t, r, sn, dir, restorer.Options{Target: fresh, Owner: os.Geteuid() == 0}); err != nil {
		t.Fatal(err)
	}
	check("new target", fresh, true)

	existing := filepath.Join(base, "existing")
	must(t, os.Mkdir(existing, 0o700))
	if _, err := restore(t, r, sn, dir, restorer.Options{Target: existing, Owner: os.Geteuid() == 0}); err != nil {
		t.Fatal(err)
	}
	check("existing target", existing, false)

	if _, err := restore(t, r, sn, dir, restorer.Options{Target: existing, Overwrite: true, TargetIsEntry: true, Owner: os.Geteuid() == 0}); err != nil {
		t.Fatal(err)
	}
	check("existing target standing for the directory", existing, true)
}

// TestRestoreDelete: with Delete, a directory restored whole loses what
// the snapshot lacks, at every depth, while what is excluded and what a
// narrowed restore (Include) does not cover stays.
func TestRestoreDelete(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "a", "keep"), []byte("1"))
	writeFile(t, filepath.Join(src, "b", "keep"), []byte("2"))
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)

	target := filepath.Join(base, "target")
	writeFile(t, filepath.Join(target, "a", "extra"), []byte("x"))
	writeFile(t, filepath.Join(target, "a", "sub", "deep", "extra"), []byte("x"))
	writeFile(t, filepath.Join(target, "top-extra"), []byte("x"))
	writeFile(t, filepath.Join(target, "cache.tmp"), []byte("excluded"))
	must(t, os.Symlink("/", filepath.Join(target, "a", "link-extra")))

	st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true, Delete: true, Exclude: []string{"*.tmp"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, errorsText(st))
	}
	if got := names(t, target); !slices.Equal(got, []string{"a", "b", "cache.tmp"}) {
		t.Errorf("target holds %q", got)
	}
	if got := names(t, filepath.Join(target, "a")); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("target/a holds %q", got)
	}
	if st.Removed != 6 {
		t.Errorf("entries_removed %d, want 6 (extra, sub, deep, deep/extra, link-extra, top-extra)", st.Removed)
	}
	if _, err := os.Stat("/"); err != nil {
		t.Fatal("the symlink to / was followed")
	}

	// Narrowed to a: b's extra stays, since b is not restored whole.
	writeFile(t, filepath.Join(target, "a", "extra2"), []byte("x"))
	writeFile(t, filepath.Join(target, "b", "extra3"), []byte("x"))
	if _, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true, Delete: true, Include: []string{filepath.Join(src, "a")}}); err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(target, "a")); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("narrowed: target/a holds %q", got)
	}
	if got := names(t, filepath.Join(target, "b")); !slices.Equal(got, []string{"extra3", "keep"}) {
		t.Errorf("narrowed: target/b holds %q", got)
	}
}
