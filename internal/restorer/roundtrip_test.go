package restorer_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// Fixture sizes: sparse files are past the 1 MiB from which the archiver
// looks for holes.
const (
	sparseSize = 4 << 20
	sparseData = 64 << 10
)

// TestMetadataRoundTrip backs up, with the archiver, a tree on a real
// ext4 filesystem holding every kind of entry and metadata rewind keeps,
// restores it with the restorer, as root, into another folder of the same
// filesystem, and compares every entry field by field.
//
// Compared: type; permission bits with setuid, setgid and sticky; owner
// and group; size; mtime and atime to the nanosecond (directories'
// included, which the restorer sets after their children); link count;
// device numbers; symlink targets; every extended attribute, byte for
// byte (user.*, trusted.*, security.capability, the ACL attributes);
// getfacl's output; file content; the data and hole runs of files
// (SEEK_DATA/SEEK_HOLE) and, for sparse files, allocated blocks; and that
// names sharing an inode in the source share one in the restore, and no
// others. Not compared: inode and device numbers themselves, and ctime,
// which Linux does not let anyone set.
func TestMetadataRoundTrip(t *testing.T) {
	mnt := testutil.Ext4(t)
	testutil.RequireTool(t, "setfacl")
	testutil.RequireTool(t, "getfacl")
	src := filepath.Join(mnt, "src")
	must(t, os.Mkdir(src, 0o755))
	caps := buildFixture(t, src)
	setTimes(t, src)
	want := captureTree(t, src)
	// Capturing read the symlinks, which set their atimes: set them back.
	setTimes(t, src)
	checkFixture(t, want, caps)

	r := newTestRepo(t)
	sn, a := backup(t, r, src)
	if errs := sn.Summary.Errors; len(errs) != 0 {
		t.Errorf("backup errors: %v", errs)
	}
	sock := filepath.Join(src, "socket")
	if sk := a.Skipped(); len(sk) != 1 || sk[0].Path != sock {
		t.Errorf("Skipped() = %v, want only %s", sk, sock)
	}
	delete(want, "socket")
	checkNames(t, r, sn, src)

	dst := filepath.Join(mnt, "dst")
	st, err := restore(t, r, sn, src, restorer.Options{Target: dst, Owner: true})
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, errorsText(st))
	}
	got := captureTree(t, dst)
	compareTrees(t, want, got)
}

// buildFixture fills dir with every kind of entry. It reports whether a
// security.capability attribute could be set (containers may refuse it).
func buildFixture(t *testing.T, dir string) (caps bool) {
	t.Helper()
	p := func(name string) string { return filepath.Join(dir, name) }
	write := func(name string, data []byte, mode uint32) {
		t.Helper()
		writeFile(t, p(name), data)
		must(t, unix.Chmod(p(name), mode))
	}
	mkdir := func(name string, mode uint32) {
		t.Helper()
		must(t, os.Mkdir(p(name), 0o700))
		must(t, unix.Chmod(p(name), mode))
	}
	setx := func(name, attr string, value []byte) {
		t.Helper()
		must(t, unix.Lsetxattr(p(name), attr, value, 0))
	}

	write("file", []byte("hello\n"), 0o640)
	write("big", randomBytes(1, 1500<<10), 0o600) // several chunks
	write("empty", nil, 0o444)
	mkdir("empty-dir", 0o751)
	write("setuid", []byte("u"), 0o4755)
	write("setgid", []byte("g"), 0o2711)
	mkdir("sticky", 0o1777)
	mkdir("setgid-dir", 0o2775)
	write("setgid-dir/child", []byte("c"), 0o664)

	// A read-only folder with content: its mode is set after its entries.
	mkdir("rodir", 0o700)
	write("rodir/inner", []byte("inner"), 0o600)
	mkdir("rodir/sub", 0o500)
	must(t, unix.Chmod(p("rodir"), 0o555))

	// Three names of one inode, the third in another folder.
	write("hard-a", []byte("shared"), 0o604)
	must(t, os.Link(p("hard-a"), p("hard-b")))
	mkdir("links", 0o755)
	must(t, os.Link(p("hard-a"), p("links/hard-c")))
	// And a second inode with two names, which must stay apart from it.
	write("links/other-1", []byte("other"), 0o644)
	must(t, os.Link(p("links/other-1"), p("links/other-2")))

	must(t, os.Symlink("/etc/passwd", p("abs-link")))
	must(t, os.Symlink("file", p("rel-link")))
	must(t, os.Symlink("../../../outside", p("up-link")))
	must(t, os.Symlink("no/such/target", p("dangling")))

	must(t, unix.Mkfifo(p("fifo"), 0o620))
	must(t, unix.Mknod(p("chr"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(p("blk"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 200))))
	must(t, unix.Mknod(p("big-dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(4095, 1<<20-1))))
	must(t, unix.Mknod(p("socket"), unix.S_IFSOCK|0o755, 0))

	for i, name := range []string{"bad-\xff\xfe-utf8", "new\nline", " spaces around ", "tab\there", strings.Repeat("n", 255)} {
		write(name, []byte(fmt.Sprint(i)), 0o644)
	}

	// Owners: IDs with no name, and nobody, whose name must be recorded.
	write("owned", []byte("o"), 0o640)
	must(t, os.Lchown(p("owned"), 3000000000, 70001))
	write("owned-nobody", []byte("n"), 0o644)
	must(t, os.Lchown(p("owned-nobody"), 65534, 65534))
	write("owned-setuid", []byte("s"), 0o644)
	must(t, os.Lchown(p("owned-setuid"), 1234, 5678))
	must(t, unix.Chmod(p("owned-setuid"), 0o6750)) // chown clears setuid
	must(t, os.Lchown(p("dangling"), 4321, 8765))
	mkdir("owned-dir", 0o700)
	must(t, os.Lchown(p("owned-dir"), 99, 98))

	// Extended attributes, binary values included, on files, folders,
	// symlinks and FIFOs (trusted.*: user.* is for files and folders).
	write("xattrs", []byte("x"), 0o644)
	setx("xattrs", "user.plain", []byte("value"))
	setx("xattrs", "user.binary", []byte{0, 1, 0xff, 0, '\n', 0x80})
	setx("xattrs", "user.empty", nil)
	setx("xattrs", "user.big", bytes.Repeat([]byte{0xfe, 0}, 1500))
	setx("xattrs", "trusted.rewind", []byte{0})
	must(t, unix.Chmod(p("xattrs"), 0o444)) // user.* then needs care on restore
	mkdir("xattr-dir", 0o755)
	setx("xattr-dir", "user.on-a-dir", []byte("d\x00d"))
	must(t, unix.Chmod(p("xattr-dir"), 0o555))
	setx("abs-link", "trusted.on-a-symlink", []byte("l"))
	setx("fifo", "trusted.on-a-fifo", []byte("f"))

	// POSIX ACLs: an access ACL on a file, access and default ACLs on a
	// folder, and what the folder's entries inherited.
	write("acl-file", []byte("acl"), 0o640)
	runTool(t, "setfacl", "-m", "u:1234:rw,g:5678:r,m::rw", p("acl-file"))
	mkdir("acl-dir", 0o750)
	runTool(t, "setfacl", "-m", "u:4321:rx", p("acl-dir"))
	runTool(t, "setfacl", "-d", "-m", "u:1234:rwx,g::rx,o::-", p("acl-dir"))
	write("acl-dir/inherited", []byte("i"), 0o640)
	must(t, os.Mkdir(p("acl-dir/sub"), 0o700))

	// A security attribute: a file capability (CAP_NET_BIND_SERVICE).
	write("cap", []byte("c"), 0o755)
	must(t, os.Lchown(p("cap"), 1234, 1234))
	err := unix.Lsetxattr(p("cap"), "security.capability", vfsCapV2(1<<unix.CAP_NET_BIND_SERVICE), 0)
	if err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
		t.Fatal(err)
	}
	if err != nil {
		t.Logf("security.capability not settable here (%v): not tested", err)
	}

	// Sparse: data at the start and at 1 MiB, a hole at the end; and a
	// file that is all hole.
	f, err := os.Create(p("sparse"))
	must(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{0xa5}, sparseData), 0)
	must(t, err)
	_, err = f.WriteAt(randomBytes(2, sparseData), 1<<20)
	must(t, err)
	must(t, f.Truncate(sparseSize))
	must(t, f.Close())
	write("all-hole", nil, 0o600)
	must(t, os.Truncate(p("all-hole"), 2<<20))
	return err == nil
}

// setTimes gives every entry below dir distinct times with odd
// nanoseconds, entries before their folder: 2009 and later mtimes,
// atimes a day and a bit earlier, and one mtime before 1970.
func setTimes(t *testing.T, dir string) {
	t.Helper()
	var paths []string
	must(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if p != dir {
			paths = append(paths, p)
		}
		return err
	}))
	slices.Reverse(paths)
	for i, p := range paths {
		mtime := int64(1_234_567_890_123_456_789) + int64(i)*1_000_000_007
		if filepath.Base(p) == "file" {
			mtime = -315_532_800_000_000_000 + 123 // 1960
		}
		atime := mtime - 86_400_000_000_000 - 11
		ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// checkFixture makes sure the comparison cannot pass vacuously: the
// source really has the modes, owners, attributes, ACLs and holes.
func checkFixture(t *testing.T, es map[string]*entry, caps bool) {
	t.Helper()
	for name, mode := range map[string]uint32{"setuid": 0o4755, "setgid": 0o2711, "sticky": 0o1777, "rodir": 0o555, "owned-setuid": 0o6750} {
		if e := es[name]; e == nil || e.perm() != mode {
			t.Errorf("source %s does not have mode %#o", name, mode)
		}
	}
	if e := es["owned"]; e.st.Uid != 3000000000 || e.st.Gid != 70001 {
		t.Errorf("source owned: %d:%d", e.st.Uid, e.st.Gid)
	}
	if e := es["sparse"]; len(e.regions) != 2 || e.st.Blocks*512 >= sparseSize/2 {
		t.Errorf("source sparse file is not sparse: %v, %d blocks", e.regions, e.st.Blocks)
	}
	if e := es["all-hole"]; len(e.regions) != 0 {
		t.Errorf("source all-hole has data: %v", e.regions)
	}
	if e := es["acl-dir"]; !strings.Contains(e.acl, "default:user:1234:rwx") || !strings.Contains(e.acl, "user:4321:r-x") {
		t.Errorf("acl-dir lacks its ACLs:\n%s", e.acl)
	}
	if e := es["acl-dir/inherited"]; !strings.Contains(e.acl, "user:1234:") {
		t.Errorf("acl-dir/inherited did not inherit the default ACL:\n%s", e.acl)
	}
	if e := es["hard-a"]; e.st.Nlink != 3 {
		t.Errorf("hard-a has %d links", e.st.Nlink)
	}
	if _, ok := es["cap"].xattrs["security.capability"]; caps && !ok {
		t.Errorf("cap has no security.capability")
	}
	if e := es["xattrs"]; len(e.xattrs) != 5 {
		t.Errorf("xattrs has %d attributes", len(e.xattrs))
	}
}

// checkNames checks that the snapshot records user and group names for
// IDs that have them, and none for those that do not.
func checkNames(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot, src string) {
	t.Helper()
	u, uerr := user.LookupId("65534")
	g, gerr := user.LookupGroupId("65534")
	n := lookupNode(t, r, sn, filepath.Join(src, "owned-nobody"))
	if uerr == nil && n.User != u.Username {
		t.Errorf("owned-nobody: user %q recorded, want %q", n.User, u.Username)
	}
	if gerr == nil && n.Group != g.Name {
		t.Errorf("owned-nobody: group %q recorded, want %q", n.Group, g.Name)
	}
	if n := lookupNode(t, r, sn, filepath.Join(src, "file")); n.User != "root" || n.UID != 0 {
		t.Errorf("file: user %q (%d), want root", n.User, n.UID)
	}
	if n := lookupNode(t, r, sn, filepath.Join(src, "owned")); n.User != "" || n.Group != "" || n.UID != 3000000000 || n.GID != 70001 {
		t.Errorf("owned: %q:%q (%d:%d), want no names and 3000000000:70001", n.User, n.Group, n.UID, n.GID)
	}
}

// compareTrees compares two captures entry by entry (see
// TestMetadataRoundTrip for the fields), then hard-link groups.
func compareTrees(t *testing.T, want, got map[string]*entry) {
	t.Helper()
	for p := range got {
		if want[p] == nil {
			t.Errorf("%q restored but not in the source", p)
		}
	}
	srcInodes := map[uint64][]string{} // source inode → names
	for p, w := range want {
		g := got[p]
		if g == nil {
			t.Errorf("%q not restored", p)
			continue
		}
		check := func(field string, want, got any) {
			t.Helper()
			if want != got {
				t.Errorf("%q: %s = %v, want %v", p, field, got, want)
			}
		}
		check("type", fmt.Sprintf("%#o", w.typ()), fmt.Sprintf("%#o", g.typ()))
		check("mode", fmt.Sprintf("%#o", w.perm()), fmt.Sprintf("%#o", g.perm()))
		check("uid", w.st.Uid, g.st.Uid)
		check("gid", w.st.Gid, g.st.Gid)
		check("mtime", w.st.Mtim.Nano(), g.st.Mtim.Nano())
		check("atime", w.st.Atim.Nano(), g.st.Atim.Nano())
		check("links", w.st.Nlink, g.st.Nlink)
		check("rdev", w.st.Rdev, g.st.Rdev)
		check("link target", w.target, g.target)
		check("acl", w.acl, g.acl)
		if w.typ() == unix.S_IFREG {
			check("size", w.st.Size, g.st.Size)
			if !bytes.Equal(w.data, g.data) {
				t.Errorf("%q: content differs", p)
			}
			check("data regions", fmt.Sprint(w.regions), fmt.Sprint(g.regions))
			if sparse(w) {
				check("blocks", w.st.Blocks, g.st.Blocks)
			}
			srcInodes[w.st.Ino] = append(srcInodes[w.st.Ino], p)
		}
		if !mapsEqual(w.xattrs, g.xattrs) {
			t.Errorf("%q: xattrs = %q, want %q", p, g.xattrs, w.xattrs)
		}
	}
	dstGroup := map[uint64]uint64{} // restored inode → source inode
	for ino, ps := range srcInodes {
		for _, p := range ps {
			g := got[p]
			if g == nil {
				continue
			}
			if other, ok := dstGroup[g.st.Ino]; ok && other != ino {
				t.Errorf("%q shares its restored inode with a file it was not linked to", p)
			}
			dstGroup[g.st.Ino] = ino
			if first := got[ps[0]]; first != nil && first.st.Ino != g.st.Ino {
				t.Errorf("%q and %q are one inode in the source, two after restore", ps[0], p)
			}
		}
	}
}

func sparse(e *entry) bool {
	var n int64
	for _, r := range e.regions {
		n += r[1] - r[0]
	}
	return n < e.st.Size
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// vfsCapV2 encodes a version 2 security.capability value granting the
// permitted capabilities in the low 32 bits of perm.
func vfsCapV2(perm uint32) []byte {
	var b []byte
	for _, v := range []uint32{0x02000000, perm, 0, 0, 0} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

// TestRestoreIntoFolderWithDefaultACL restores into an empty folder that
// has a default ACL. Everything created in it inherits that ACL, and
// since restored metadata is exactly the snapshot's, what was inherited
// must be removed again: files and folders without an ACL in the
// snapshot come out without one.
func TestRestoreIntoFolderWithDefaultACL(t *testing.T) {
	setfacl := testutil.RequireTool(t, "setfacl")
	testutil.RequireTool(t, "getfacl")
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "plain"), []byte("no ACL"))
	writeFile(t, filepath.Join(src, "sub", "file"), []byte("no ACL either"))
	writeFile(t, filepath.Join(src, "big"), randomBytes(9, 300<<10))
	must(t, os.Symlink("plain", filepath.Join(src, "link")))
	want := captureTree(t, src)
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)

	target := filepath.Join(base, "target")
	must(t, os.Mkdir(target, 0o755))
	if out, err := exec.Command(setfacl, "-d", "-m", "u:1234:rwx", target).CombinedOutput(); err != nil {
		t.Skipf("no default ACL on %s: %v: %s", target, err, out)
	}
	if st, err := restore(t, r, sn, src, restorer.Options{Target: target}); err != nil {
		t.Fatalf("restore: %v\n%s", err, errorsText(st))
	}
	got := captureTree(t, target)
	for p, w := range want {
		g := got[p]
		if g == nil {
			t.Errorf("%q not restored", p)
			continue
		}
		if !mapsEqual(w.xattrs, g.xattrs) || w.acl != g.acl {
			t.Errorf("%q: restored with xattrs %q and ACL\n%s\nwant %q and\n%s", p, g.xattrs, g.acl, w.xattrs, w.acl)
		}
	}
}
