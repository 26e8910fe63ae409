package fs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// Names the fixture uses that are not plain ASCII words.
var oddNames = []string{
	"bad-\xff\xfe-utf8",
	"new\nline",
	" spaces around ",
	"tab\there",
	"-leading-dash",
	"été",
	strings.Repeat("n", maxNameLen),
}

// sparse files in the fixture: apparent size and data written.
const (
	sparseSize = 4 << 20
	sparseData = 64 << 10
)

// buildFixture fills dir with every kind of entry and metadata a restore
// must reproduce: what needs root (devices, other owners, trusted and
// capability attributes) only when running as root, xattrs only where the
// filesystem has them. Times are set last, distinct on every entry.
func buildFixture(t *testing.T, dir string) {
	t.Helper()
	root := testutil.IsRoot()
	xattrs := xattrsSupported(t, dir)
	p := func(elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
	write := func(name string, data []byte, mode uint32) {
		t.Helper()
		must(t, os.WriteFile(p(name), data, 0o600))
		must(t, unix.Chmod(p(name), mode))
	}
	setx := func(name, attr string, value []byte) {
		t.Helper()
		must(t, unix.Lsetxattr(p(name), attr, value, 0))
	}

	write("file", []byte("hello\n"), 0o640)
	write("empty", nil, 0o444)
	write("exec", []byte("#!/bin/sh\n"), 0o755)
	write("setuid", []byte("x"), 0o4755)
	write("setgid", []byte("x"), 0o2711)
	must(t, os.Mkdir(p("sticky"), 0o700))
	must(t, unix.Chmod(p("sticky"), 0o1777))
	must(t, os.Mkdir(p("setgid-dir"), 0o700))
	must(t, unix.Chmod(p("setgid-dir"), 0o2775))
	write("setgid-dir/child", []byte("c"), 0o664)

	// Read-only directory: its mode must be set after its contents.
	must(t, os.Mkdir(p("rodir"), 0o700))
	write("rodir/inner", []byte("inner"), 0o600)
	must(t, unix.Chmod(p("rodir"), 0o555))

	write("hard-a", []byte("shared content"), 0o604)
	must(t, os.Link(p("hard-a"), p("hard-b")))

	must(t, os.Symlink("/etc/passwd", p("abs-link")))
	must(t, os.Symlink("file", p("rel-link")))
	must(t, os.Symlink("../../outside/x", p("up-link")))
	must(t, os.Symlink("no/such/target", p("dangling")))
	must(t, unix.Mkfifo(p("fifo"), 0o620))

	for _, name := range oddNames {
		write(name, []byte(name), 0o644)
	}

	// Sparse: data at the start and in the middle, a hole at the end.
	f, err := os.Create(p("sparse"))
	must(t, err)
	data := bytes.Repeat([]byte{0xa5}, sparseData)
	_, err = f.WriteAt(data, 0)
	must(t, err)
	_, err = f.WriteAt(data, 1<<20)
	must(t, err)
	must(t, f.Truncate(sparseSize))
	must(t, f.Close())
	write("all-hole", nil, 0o644)
	must(t, os.Truncate(p("all-hole"), 1<<20))

	write("old", []byte("1960"), 0o644)
	write("future", []byte("2100"), 0o644)

	if xattrs {
		write("xattrs", []byte("x"), 0o644)
		setx("xattrs", "user.plain", []byte("value"))
		setx("xattrs", "user.binary", []byte{0, 1, 0xff, 0, '\n'})
		setx("xattrs", "user.empty", nil)
		setx("xattrs", "user.big", bytes.Repeat([]byte("0123456789"), 300))
		// More names than the stack buffer of the first llistxattr holds.
		write("many-xattrs", nil, 0o644)
		for i := range 48 {
			setx("many-xattrs", fmt.Sprintf("user.attribute-with-a-long-name-%02d", i), []byte{byte(i)})
		}
		must(t, os.Mkdir(p("xattr-dir"), 0o755))
		setx("xattr-dir", "user.on-a-dir", []byte("d"))
		// Setting user attributes needs write permission, even for the
		// owner: restore must set them before making these read-only.
		must(t, unix.Chmod(p("xattrs"), 0o444))
		must(t, unix.Chmod(p("xattr-dir"), 0o555))

		testutil.RequireTool(t, "setfacl")
		testutil.RequireTool(t, "getfacl")
		write("acl-file", []byte("acl"), 0o640)
		runTool(t, "setfacl", "-m", "u:1234:rw,g:5678:r,m::rw", p("acl-file"))
		must(t, os.Mkdir(p("acl-dir"), 0o750))
		runTool(t, "setfacl", "-m", "u:4321:rx", p("acl-dir"))
		runTool(t, "setfacl", "-d", "-m", "u:1234:rwx,g::rx,o::-", p("acl-dir"))
		write("acl-dir/inherited", []byte("i"), 0o640)
		must(t, os.Mkdir(p("acl-dir/sub"), 0o700))
	}

	if root {
		must(t, unix.Mknod(p("chr"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, unix.Mknod(p("blk"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 200))))
		// The largest major and minor Linux encodes (12 and 20 bits).
		must(t, unix.Mknod(p("big-dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(4095, 1<<20-1))))
		write("owned", []byte("o"), 0o640)
		must(t, os.Lchown(p("owned"), 3000000000, 70001))
		// chown clears setuid, so the mode comes after.
		write("owned-setuid", []byte("s"), 0o644)
		must(t, os.Lchown(p("owned-setuid"), 1234, 5678))
		must(t, unix.Chmod(p("owned-setuid"), 0o6750))
		must(t, os.Lchown(p("dangling"), 4321, 8765))
		must(t, os.Mkdir(p("owned-dir"), 0o700))
		must(t, os.Lchown(p("owned-dir"), 99, 98))
		if xattrs {
			setx("file", "trusted.rewind", []byte("t"))
			setx("fifo", "trusted.on-a-fifo", []byte("f"))
			setx("abs-link", "trusted.on-a-symlink", []byte("l"))
			// A file capability (CAP_NET_BIND_SERVICE permitted): chown
			// clears it, so restore must set owners first.
			write("cap", []byte("c"), 0o755)
			must(t, os.Lchown(p("cap"), 1234, 1234))
			setx("cap", "security.capability", vfsCapV2(1<<unix.CAP_NET_BIND_SERVICE))
		}
	}

	setFixtureTimes(t, dir)
}

// setFixtureTimes gives every entry under dir distinct times with odd
// nanoseconds, children before their directory, and times before 1970 and
// after 2038 to "old" and "future".
func setFixtureTimes(t *testing.T, dir string) {
	t.Helper()
	var paths []string
	must(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if path != dir {
			paths = append(paths, path)
		}
		return err
	}))
	slices.Reverse(paths) // descendants before their directory
	for i, path := range paths {
		mtime := int64(1_234_567_890_123_456_789) + int64(i)*1_000_000_007
		switch filepath.Base(path) {
		case "old":
			mtime = -315_532_800_000_000_000 + 123 // 1960
		case "future":
			mtime = 4_102_444_800_987_654_321 // 2100
		}
		atime := mtime - 86_400_000_000_000 + 11
		ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// vfsCapV2 encodes a version 2 security.capability value granting the
// permitted capabilities in the low 32 bits of perm.
func vfsCapV2(perm uint32) []byte {
	le := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	b := le(0x02000000) // VFS_CAP_REVISION_2, no effective flag
	b = append(b, le(perm)...)
	b = append(b, le(0)...) // inheritable
	b = append(b, le(0)...) // permitted, high word
	return append(b, le(0)...)
}

// xattrsSupported reports whether the filesystem holding dir takes user
// extended attributes.
func xattrsSupported(t *testing.T, dir string) bool {
	t.Helper()
	probe := filepath.Join(dir, ".xattr-probe")
	must(t, os.WriteFile(probe, nil, 0o600))
	defer os.Remove(probe)
	err := unix.Setxattr(probe, "user.probe", []byte("1"), 0)
	if errors.Is(err, unix.ENOTSUP) {
		t.Logf("%s: no user xattrs, not testing them", dir)
		return false
	}
	must(t, err)
	return true
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v: %s", name, args, err, out)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
