package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// tarSource builds, on a fresh ext4, a tree holding what a tar of a
// server's directory must carry, and returns its root.
func tarSource(t *testing.T) string {
	t.Helper()
	setfacl := testutil.RequireTool(t, "setfacl")
	root := filepath.Join(testutil.Ext4(t), "srv")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
	}
	long := strings.Repeat("d", 150)
	for _, d := range []string{"a/sub", "b", "acl/inherit", "sticky", "sgid", long + "/" + strings.Repeat("e", 120)} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	writeFiles(t, root, map[string][]byte{
		"a/data.bin":     randomBytes(1, 300<<10),
		"a/small.txt":    []byte("three names\n"),
		"acl/file":       []byte("acl\n"),
		"xattr.txt":      []byte("labelled\n"),
		"suid":           randomBytes(2, 5000),
		"caf\xe9-latin1": []byte("not utf-8\n"),
		"sticky/tmp":     nil,
		long + "/" + strings.Repeat("e", 120) + "/" + strings.Repeat("f", 200): randomBytes(3, 777),
	})
	// Hard links across directories, one with three names.
	must(os.Link(filepath.Join(root, "a/data.bin"), filepath.Join(root, "b/data-link.bin")))
	must(os.Link(filepath.Join(root, "a/small.txt"), filepath.Join(root, "b/small1")))
	must(os.Link(filepath.Join(root, "a/small.txt"), filepath.Join(root, "a/sub/small2")))
	// Sparse files: several holes and a hole at the end; all hole; a
	// hard-linked sparse file.
	sparse := func(name string, size int64, at ...int64) {
		f, err := os.Create(filepath.Join(root, name))
		must(err)
		for i, off := range at {
			_, err := f.WriteAt(randomBytes(uint64(10+i), 4096*(i+1)), off)
			must(err)
		}
		must(f.Truncate(size))
		must(f.Close())
	}
	sparse("sparse.img", 9<<20, 0, 1<<20, 3<<20+8192, 6<<20)
	sparse("a/sub/tail-hole", 2<<20, 4096)
	sparse("empty-disk.img", 64<<20)
	must(os.Link(filepath.Join(root, "sparse.img"), filepath.Join(root, "b/sparse-link.img")))
	// ACLs, access and default, and xattrs, text and binary.
	run(setfacl, "-m", "u:1000:rx,g:2000:rwx,m::rwx", filepath.Join(root, "acl"))
	run(setfacl, "-d", "-m", "u::rwx,u:1001:rw,g::rx,o::-", filepath.Join(root, "acl"))
	run(setfacl, "-d", "-m", "u:1002:r", filepath.Join(root, "acl/inherit"))
	run(setfacl, "-m", "u:65534:r,g:0:w", filepath.Join(root, "acl/file"))
	must(unix.Lsetxattr(filepath.Join(root, "xattr.txt"), "user.comment", []byte("rewind dump"), 0))
	must(unix.Lsetxattr(filepath.Join(root, "xattr.txt"), "user.bin", []byte{0, 1, 2, 0xff, '\n', '=', 0}, 0))
	must(unix.Lsetxattr(filepath.Join(root, "a/sub"), "user.dir", []byte("on a directory"), 0))
	// Devices, a FIFO, a symlink, special modes, owners without names.
	must(unix.Mknod(filepath.Join(root, "blk"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 17))))
	must(unix.Mknod(filepath.Join(root, "chr"), unix.S_IFCHR|0o620, int(unix.Mkdev(136, 1000))))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o640))
	must(os.Symlink("a/data.bin", filepath.Join(root, "link")))
	must(os.Chmod(filepath.Join(root, "suid"), 0o4751))
	must(os.Chmod(filepath.Join(root, "sticky"), 0o1777))
	must(os.Chmod(filepath.Join(root, "sgid"), 0o2770))
	must(os.Lchown(filepath.Join(root, "suid"), 4321, 8765))
	must(os.Lchown(filepath.Join(root, "sgid"), 1234, 5678))
	must(os.Lchown(filepath.Join(root, "link"), 4321, 0))
	// The dumped directory's own metadata, set last so that nothing in it
	// inherits the default ACL.
	run(setfacl, "-m", "g:3000:rx", root)
	run(setfacl, "-d", "-m", "g:3001:rwx", root)
	must(unix.Lsetxattr(root, "user.top", []byte("root of the dump"), 0))
	must(os.Chmod(root, 0o2751))
	// Nanosecond times on everything, deepest first so that a directory's
	// time is not changed by setting its children's.
	var paths []string
	must(filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		ns := int64(1700000000+i)*1e9 + int64(i)*1234567 + 89
		ts := []unix.Timespec{unix.NsecToTimespec(ns - 5e9), unix.NsecToTimespec(ns)}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	// Before 1970, on a sparse file and a plain one.
	for _, p := range []string{"a/sub/tail-hole", "xattr.txt"} {
		ts := []unix.Timespec{unix.NsecToTimespec(-86400e9 - 1), unix.NsecToTimespec(-1234567890_123456789)}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, p), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	return root
}

// dataMap lists a file's data regions with SEEK_DATA and SEEK_HOLE.
func dataMap(t *testing.T, p string) []int64 {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var m []int64
	fd := int(f.Fd())
	for off := int64(0); off < fi.Size(); {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		m = append(m, d, h)
		off = h
	}
	return m
}

// userXattrs lists p's xattrs outside the system namespace, name=value.
func userXattrs(t *testing.T, p string) []string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || strings.HasPrefix(name, "system.") {
			continue
		}
		v := make([]byte, 4096)
		k, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s=%q", name, v[:k]))
	}
	sort.Strings(out)
	return out
}

func getfacl(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("getfacl", "--omit-header", "--numeric", "--physical", p).Output()
	if err != nil {
		t.Fatalf("getfacl %s: %v", p, err)
	}
	return string(out)
}

type treeCheck struct{ modes, times, owners, acls, xattrs, holes bool }

// compareTrees compares got with want through the kernel: every entry's
// type, content and device number, hard links sharing an inode, data
// maps, and what check asks for.
func compareTrees(t *testing.T, want, got string, check treeCheck) {
	t.Helper()
	groups := map[uint64][]string{}
	seen := 0
	err := filepath.Walk(want, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		seen++
		var ws, gs unix.Stat_t
		if err := unix.Lstat(p, &ws); err != nil {
			return err
		}
		if err := unix.Lstat(q, &gs); err != nil {
			t.Errorf("%q: not extracted: %v", rel, err)
			return nil
		}
		if ws.Mode&unix.S_IFMT != gs.Mode&unix.S_IFMT {
			t.Errorf("%q: type %o, want %o", rel, gs.Mode&unix.S_IFMT, ws.Mode&unix.S_IFMT)
			return nil
		}
		isLink := ws.Mode&unix.S_IFMT == unix.S_IFLNK
		if check.modes && !isLink && ws.Mode != gs.Mode {
			t.Errorf("%q: mode %o, want %o", rel, gs.Mode, ws.Mode)
		}
		if check.owners && (ws.Uid != gs.Uid || ws.Gid != gs.Gid) {
			t.Errorf("%q: owner %d:%d, want %d:%d", rel, gs.Uid, gs.Gid, ws.Uid, ws.Gid)
		}
		if check.times && ws.Mtim != gs.Mtim && !isLink {
			t.Errorf("%q: mtime %v, want %v", rel, gs.Mtim, ws.Mtim)
		}
		if ws.Rdev != gs.Rdev {
			t.Errorf("%q: device %d:%d, want %d:%d", rel, unix.Major(gs.Rdev), unix.Minor(gs.Rdev), unix.Major(ws.Rdev), unix.Minor(ws.Rdev))
		}
		switch ws.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if ws.Nlink > 1 {
				groups[ws.Ino] = append(groups[ws.Ino], rel)
			}
			a, err1 := os.ReadFile(p)
			b, err2 := os.ReadFile(q)
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				t.Errorf("%q: content differs (%d and %d bytes; %v, %v)", rel, len(b), len(a), err2, err1)
			}
			if wm, gm := dataMap(t, p), dataMap(t, q); check.holes && fmt.Sprint(wm) != fmt.Sprint(gm) {
				t.Errorf("%q: data regions %v, want %v (holes must stay holes)", rel, gm, wm)
			}
		case unix.S_IFLNK:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(q)
			if a != b {
				t.Errorf("%q: link target %q, want %q", rel, b, a)
			}
		}
		if check.xattrs && !isLink {
			if a, b := userXattrs(t, p), userXattrs(t, q); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("%q: xattrs %q, want %q", rel, b, a)
			}
		}
		if check.acls && !isLink && ws.Mode&unix.S_IFMT != unix.S_IFIFO {
			if a, b := getfacl(t, p), getfacl(t, q); a != b {
				t.Errorf("%q: getfacl\n%s\nwant\n%s", rel, b, a)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) < 3 {
		t.Fatalf("source holds %d hard-link groups, want 3", len(groups))
	}
	for _, names := range groups {
		var first unix.Stat_t
		for i, rel := range names {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(got, rel), &st); err != nil {
				continue
			}
			if i == 0 {
				first = st
			} else if st.Ino != first.Ino {
				t.Errorf("hard links %q: %q is a separate file, not a link", names, rel)
			}
		}
		if first.Nlink != uint64(len(names)) {
			t.Errorf("hard links %q: link count %d, want %d", names, first.Nlink, len(names))
		}
	}
	var extra []string
	filepath.Walk(got, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			seen--
		}
		rel, _ := filepath.Rel(got, p)
		if _, err := os.Lstat(filepath.Join(want, rel)); err != nil {
			extra = append(extra, rel)
		}
		return nil
	})
	if seen != 0 || len(extra) > 0 {
		t.Errorf("extracted tree has %d entries more than the source: %q", -seen, extra)
	}
}

// TestDumpTarFidelity: a directory dumped as tar and extracted by GNU tar
// (and bsdtar) onto another filesystem is the directory that was backed
// up, as the kernel sees it: hard links, holes, ACLs, xattrs, devices,
// modes, owners and times.
func TestDumpTarFidelity(t *testing.T) {
	gnutar := testutil.RequireTool(t, "tar")
	src := tarSource(t)
	e := newRepo(t, 0)
	e.mustRun("backup", src)
	r := e.mustRun("dump", "latest:"+src)
	archive := e.path("x.tar")
	if err := os.WriteFile(archive, r.stdout, 0o600); err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, p := range []string{"sparse.img", "empty-disk.img"} {
		fi, _ := os.Stat(filepath.Join(src, p))
		stored += fi.Size()
	}
	if int64(len(r.stdout)) >= stored {
		t.Errorf("archive is %d bytes, more than the %d bytes of the sparse files' holes", len(r.stdout), stored)
	}

	dest := testutil.Ext4(t)
	gnu := filepath.Join(dest, "gnu")
	if err := os.Mkdir(gnu, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gnutar, "--acls", "--xattrs", "--xattrs-include=*", "--sparse", "-p", "--numeric-owner",
		"-xf", archive, "-C", gnu).CombinedOutput()
	// GNU tar warns of times before 1970, and sets them.
	onlyWarnings(t, "GNU tar -x", out, err, "implausibly old time stamp")
	compareTrees(t, src, gnu, treeCheck{modes: true, times: true, owners: true, acls: true, xattrs: true, holes: true})

	// Plain tar -x restores holes too: GNU tar reads sparse format 1.0
	// without --sparse.
	plain := filepath.Join(dest, "plain")
	if err := os.Mkdir(plain, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(gnutar, "-xf", archive, "-C", plain).CombinedOutput()
	onlyWarnings(t, "GNU tar -x without options", out, err, "implausibly old time stamp")
	compareTrees(t, src, plain, treeCheck{holes: true})

	bsdtar := testutil.RequireTool(t, "bsdtar")
	bsd := filepath.Join(dest, "bsd")
	if err := os.Mkdir(bsd, 0o700); err != nil {
		t.Fatal(err)
	}
	// bsdtar creates the name that is not UTF-8 byte for byte, but warns
	// and exits 1, as it does for GNU tar's own archive of such a name.
	out, err = exec.Command(bsdtar, "-x", "-p", "--numeric-owner", "-f", archive, "-C", bsd).CombinedOutput()
	onlyWarnings(t, "bsdtar -x", out, err, "Pathname can't be converted from UTF-8", "Error exit delayed")
	compareTrees(t, src, bsd, treeCheck{holes: true, xattrs: true, owners: true})
}

// onlyWarnings fails the test if a tar printed anything but lines holding
// one of the warnings expected, or failed without printing any.
func onlyWarnings(t *testing.T, what string, out []byte, err error, expected ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil && len(out) == 0 {
		t.Fatalf("%s: %v", what, err)
	}
	for _, line := range lines {
		if line != "" && !slices.ContainsFunc(expected, func(w string) bool { return strings.Contains(line, w) }) {
			t.Fatalf("%s: %v: %s", what, err, out)
		}
	}
}

// TestDumpRefusesTerminal: dump to a terminal writes nothing and says to
// redirect or pipe, whether the snapshot path is a file or a directory.
func TestDumpRefusesTerminal(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"etc/app.conf": []byte("port = 80\n")})
	e.mustRun("backup", src)
	for _, p := range []string{src, src + "/etc/app.conf"} {
		master, slave := openPTY(t)
		c := e.cmd("dump", "latest:"+p)
		var errb bytes.Buffer
		c.Stdout, c.Stderr = slave, &errb
		err := c.Run()
		slave.Close()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("dump %s to a terminal: %v, want exit 1; stderr: %s", p, err, errb.Bytes())
		}
		if !strings.Contains(errb.String(), "standard output is a terminal") || !strings.Contains(errb.String(), "> ") {
			t.Errorf("dump %s to a terminal: message %q does not say to redirect", p, errb.String())
		}
		unix.SetNonblock(int(master.Fd()), true)
		got, _ := io.ReadAll(master)
		if len(got) > 0 {
			t.Errorf("dump %s wrote %d bytes to the terminal: %q", p, len(got), got)
		}
		master.Close()
	}
}

// openPTY opens a pseudo-terminal pair through /dev/ptmx.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}
