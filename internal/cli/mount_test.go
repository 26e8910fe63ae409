package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

// fidelityTree writes a tree with what a mount must show as stored: hard
// links, xattrs (user and trusted), access and default ACLs, symlinks
// (relative, absolute, dangling), a FIFO, a device, a sparse file, odd
// modes, owners and names.
func fidelityTree(t *testing.T, src string) {
	t.Helper()
	setfacl := testutil.RequireTool(t, "setfacl")
	writeFiles(t, src, map[string][]byte{
		"a":                   []byte("hello, mount\n"),
		"big":                 randomBytes(7, 3<<20+12345),
		"sub/c":               []byte("first\n"),
		"deep/x/y/z/f":        []byte("deep\n"),
		"tab\tname":           []byte("tab"),
		"new\nline":           []byte("newline"),
		"-dash":               []byte("dash"),
		"é ünïcode ✓":         []byte("utf8"),
		"bad\xffutf8":         []byte("latin1"),
		"sticky/setuid":       []byte("#!/bin/sh\n"),
		"private/secret.txt":  []byte("s3cret"),
		"owned/by-someone-el": []byte("other"),
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(n string) string { return filepath.Join(src, n) }
	must(os.Link(p("a"), p("sub/hardlink-a")))
	must(os.Link(p("a"), p("hardlink-a2")))
	must(os.Symlink("a", p("rel-link")))
	must(os.Symlink("/etc/hostname", p("abs-link")))
	must(os.Symlink("nowhere/at/all", p("dangling")))
	must(unix.Mkfifo(p("fifo"), 0o640))
	must(unix.Mknod(p("null-dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	// sparse: a hole, 64 KiB of data, a hole to 8 MiB.
	f, err := os.Create(p("sparse"))
	must(err)
	_, err = f.WriteAt(randomBytes(9, 64<<10), 3<<20)
	must(err)
	must(f.Truncate(8 << 20))
	must(f.Close())
	must(os.Chmod(p("sticky"), 0o1777))
	must(os.Chmod(p("sticky/setuid"), 0o4755))
	must(os.Chmod(p("private"), 0o700))
	must(os.Chmod(p("private/secret.txt"), 0o600))
	must(os.Lchown(p("owned/by-someone-el"), 1234, 5678))
	must(os.Lchown(p("owned"), 4321, 8765))
	must(unix.Setxattr(p("a"), "user.note", []byte("a note"), 0))
	must(unix.Setxattr(p("a"), "trusted.secret", []byte{0, 1, 2, 255}, 0))
	must(unix.Setxattr(p("sub"), "user.dir", []byte("on a dir"), 0))
	for _, args := range [][]string{
		{"-m", "u:1234:rw,g:5678:r", p("private/secret.txt")},
		{"-m", "u:1234:rwx", p("sub")},
		{"-d", "-m", "u:1234:rx,g:5678:rx", p("sub")},
	} {
		if out, err := exec.Command(setfacl, args...).CombinedOutput(); err != nil {
			t.Fatalf("setfacl %v: %v: %s", args, err, out)
		}
	}
	old := time.Date(2011, 3, 4, 5, 6, 7, 890000000, time.UTC)
	for _, n := range []string{"a", "big", "deep/x/y", "tab\tname", "owned"} {
		must(os.Chtimes(p(n), old, old))
	}
	must(unix.Lutimes(p("rel-link"), []unix.Timeval{unix.NsecToTimeval(old.UnixNano()), unix.NsecToTimeval(old.UnixNano())}))
}

// lastMoment returns the last moment at/ lists.
func lastMoments(t *testing.T, mnt string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(mnt, "at"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestMountFidelity backs up a tree, then one directory of it again after
// a change, and checks with rsync -aHAX --checksum that at/MOMENT shows
// what restore --at MOMENT writes, for both moments, and what the source
// holds (quiet since); that at/ answers each path from its own snapshot;
// that hard links share an inode and the sparse file reports its hole.
func TestMountFidelity(t *testing.T) {
	testutil.RequireFUSE(t)
	e := newRepo(t, 0)
	src := e.path("src")
	fidelityTree(t, src)
	e.mustRun("backup", src)
	time.Sleep(1100 * time.Millisecond) // the two moments are seconds apart
	if err := os.WriteFile(filepath.Join(src, "sub/c"), []byte("second\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", filepath.Join(src, "sub"))

	mnt := e.path("mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, e, mnt)
	moments := lastMoments(t, mnt)
	if len(moments) != 2 {
		t.Fatalf("at/ should list the two snapshots' moments, got %q", moments)
	}
	for i, moment := range moments {
		view := filepath.Join(mnt, "at", moment, src)
		target := e.path("restore-" + moment)
		e.mustRun("restore", "--at", moment, "--target", target)
		if d := rsyncDiff(t, view, filepath.Join(target, src)); d != "" {
			t.Errorf("at/%s differs from restore --at %s:\n%s", moment, moment, d)
		}
		want := []string{"first\n", "second\n"}[i]
		if got, err := os.ReadFile(filepath.Join(view, "sub/c")); err != nil || string(got) != want {
			t.Errorf("at/%s: sub/c holds %q (%v), want %q", moment, got, err, want)
		}
		if i == 1 {
			if d := rsyncDiff(t, view, src); d != "" {
				t.Errorf("at/%s differs from the source, unchanged since:\n%s", moment, d)
			}
			// The comparison sees a difference where there is one.
			if err := os.Chmod(filepath.Join(target, src, "a"), 0o600); err != nil {
				t.Fatal(err)
			}
			if d := rsyncDiff(t, view, filepath.Join(target, src)); !strings.Contains(d, "a\n") {
				t.Errorf("rsync should report the mode changed on a, reported %q", d)
			}
		}
	}
	// At the first moment everything comes from one snapshot, where the
	// three names are one file. (At the second, sub/ comes from the
	// second snapshot, where hardlink-a is a file of its own, as restore
	// --at writes it.)
	view := filepath.Join(mnt, "at", moments[0], src)
	var a, l1, l2 unix.Stat_t
	for p, st := range map[string]*unix.Stat_t{"a": &a, "sub/hardlink-a": &l1, "hardlink-a2": &l2} {
		if err := unix.Lstat(filepath.Join(view, p), st); err != nil {
			t.Fatal(err)
		}
	}
	if a.Ino != l1.Ino || a.Ino != l2.Ino || a.Nlink != 3 {
		t.Errorf("hard links: inodes %d %d %d, nlink %d; want one inode, nlink 3", a.Ino, l1.Ino, l2.Ino, a.Nlink)
	}
	f, err := os.Open(filepath.Join(view, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
	if err != nil || data == 0 || data > 3<<20 {
		t.Errorf("SEEK_DATA from 0 in the sparse file: %d, %v; want the data at or before 3 MiB", data, err)
	}
	hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
	if err != nil || hole <= 3<<20 || hole >= 8<<20 {
		t.Errorf("SEEK_HOLE after the data: %d, %v; want the hole after 3 MiB+64 KiB", hole, err)
	}
	f.Close()

	// SIGINT unmounts cleanly.
	if err := m.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := m.wait(); code != 0 {
		t.Errorf("rewind mount after SIGINT: exit %d: %s", code, m.log())
	}
	if isMountpoint(t, mnt) {
		t.Errorf("%s still mounted after SIGINT", mnt)
	}
}

// TestMountListing checks hosts/HOST/TIME-ID, ids/ID, tags/TAG/TIME-ID and
// latest/HOST, and that umount ends the command.
func TestMountListing(t *testing.T) {
	testutil.RequireFUSE(t)
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("one")})
	e.mustRun("backup", "--host", "web1", "--tag", "daily", src)
	time.Sleep(1100 * time.Millisecond) // TIME-ID names sort by time
	writeFiles(t, src, map[string][]byte{"f": []byte("two")})
	e.mustRun("backup", "--host", "web1", src)
	e.mustRun("backup", "--host", "db1", "--tag", "daily", src)
	var sns []struct {
		ID       string `json:"short_id"`
		Hostname string `json:"hostname"`
	}
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil {
		t.Fatal(err)
	}
	if len(sns) != 3 {
		t.Fatalf("want 3 snapshots, got %d", len(sns))
	}

	mnt := e.path("mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, e, mnt, "--host", "web1")
	names := func(p string) []string {
		t.Helper()
		ents, err := os.ReadDir(filepath.Join(mnt, p))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(mnt, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := strings.Join(names("."), " "); got != "at hosts ids latest tags" {
		t.Errorf("root: %s", got)
	}
	// --host web1 shows web1's snapshots only.
	if got := names("hosts"); len(got) != 1 || got[0] != "web1" {
		t.Errorf("hosts/: %q", got)
	}
	web := names("hosts/web1")
	if len(web) != 2 {
		t.Fatalf("hosts/web1: %q", web)
	}
	for _, n := range web {
		if _, err := time.Parse("2006-01-02T15:04:05", n[:19]); err != nil || len(n) != 28 {
			t.Errorf("hosts/web1/%s is not TIME-ID", n)
		}
	}
	if got := read(filepath.Join("hosts/web1", web[0], src, "f")); got != "one" {
		t.Errorf("first snapshot's f: %q", got)
	}
	if got := read(filepath.Join("latest/web1", src, "f")); got != "two" {
		t.Errorf("latest/web1 f: %q", got)
	}
	if got := names("tags/daily"); len(got) != 1 || got[0] != web[0] {
		t.Errorf("tags/daily: %q, want %q", got, web[:1])
	}
	ids := names("ids")
	if len(ids) != 2 {
		t.Errorf("ids/: %q", ids)
	}
	for _, sn := range sns {
		_, err := os.Stat(filepath.Join(mnt, "ids", sn.ID))
		if (sn.Hostname == "web1") != (err == nil) {
			t.Errorf("ids/%s of host %s: %v", sn.ID, sn.Hostname, err)
		}
	}
	if got := read(filepath.Join("at/-0s", src, "f")); got != "two" {
		t.Errorf("at/-0s f: %q", got)
	}

	// umount ends the command, with status 0.
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if code := m.wait(); code != 0 {
		t.Errorf("rewind mount after umount: exit %d: %s", code, m.log())
	}
}

// TestMountBadInput: a mountpoint that is not an empty directory is
// refused; a moment before every snapshot, or no moment at all, is ENOENT
// in at/ and the mount stays up; --at before every snapshot is refused.
func TestMountBadInput(t *testing.T) {
	testutil.RequireFUSE(t)
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("one"), "g": []byte("two")})
	e.mustRun("backup", src)

	r := e.expectCode(ExitFatal, "mount", src)
	if !strings.Contains(string(r.stderr), "is not empty") {
		t.Errorf("non-empty mountpoint: %s", r.stderr)
	}
	r = e.expectCode(ExitFatal, "mount", filepath.Join(src, "f"))
	if !strings.Contains(string(r.stderr), "not a directory") {
		t.Errorf("file as mountpoint: %s", r.stderr)
	}
	mnt := e.path("mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	r = e.run("mount", mnt, "--at", "2001-01-01 00:00:00")
	if r.code == 0 || !strings.Contains(string(r.stderr), "no snapshot of host") {
		t.Errorf("--at before every snapshot: %v", r)
	}

	// Without fusermount3, the message names the package.
	r = e.with("PATH", e.path("home")).run("mount", mnt)
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "install the fuse3 package") {
		t.Errorf("without fusermount3: %v", r)
	}

	startMount(t, e, mnt)
	for _, name := range []string{"2001-01-01T00:00:00", "not a moment", "-9999d"} {
		_, err := os.Stat(filepath.Join(mnt, "at", name))
		if !errors.Is(err, syscall.ENOENT) {
			t.Errorf("at/%s: %v, want ENOENT", name, err)
		}
	}
	if _, err := os.ReadDir(filepath.Join(mnt, "ids")); err != nil {
		t.Errorf("the mount should stay up: %v", err)
	}
}

// TestMountCorruptPack: reading a file whose data blob is damaged gives
// EIO and a warning naming it; other files read right and the mount stays
// up.
func TestMountCorruptPack(t *testing.T) {
	testutil.RequireFUSE(t)
	e := newRepo(t, 1<<20)
	files := map[string][]byte{}
	for i := range 6 {
		files[filepath.Join("d", string(rune('a'+i)))] = randomBytes(uint64(40+i), 300<<10)
	}
	src := e.path("src")
	writeFiles(t, src, files)
	e.mustRun("backup", src)
	l := readLayout(t, e.path("repo"))
	victim := l.dataPacks[0]
	hit := l.blobsIn(victim)[0]
	packFile := e.path("repo", "data", victim.String()[:2], victim.String())
	if err := os.Chmod(packFile, 0o600); err != nil {
		t.Fatal(err)
	}
	pf, err := os.OpenFile(packFile, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := int64(hit.Offset + hit.Length/2)
	pf.ReadAt(b, off)
	b[0] ^= 0x20
	if _, err := pf.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	pf.Close()

	mnt := e.path("mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, e, mnt)
	var lost, intact int
	for p, ids := range l.files {
		damaged := false
		for _, i := range ids {
			damaged = damaged || i == hit.ID
		}
		got, err := os.ReadFile(filepath.Join(mnt, "latest", hostname(t), p))
		rel, _ := filepath.Rel(src, p)
		switch {
		case damaged:
			lost++
			if !errors.Is(err, syscall.EIO) {
				t.Errorf("%s, with a damaged blob: %v, want EIO", p, err)
			}
		default:
			intact++
			if err != nil || !bytes.Equal(got, files[rel]) {
				t.Errorf("%s, intact: %v, %d bytes", p, err, len(got))
			}
		}
	}
	if lost == 0 || intact == 0 {
		t.Fatalf("the damage should hit some files and spare others: %d lost, %d intact", lost, intact)
	}
	if !strings.Contains(m.log(), hit.ID.Short()) {
		t.Errorf("the mount's warning should name blob %s: %s", hit.ID.Short(), m.log())
	}
}

// TestMountKilled: a mount whose process is killed (SIGKILL) leaves a dead
// mountpoint; the next mount says to unmount it with fusermount3 -u, and
// after that mounts again.
func TestMountKilled(t *testing.T) {
	fusermount := testutil.RequireFUSE(t)
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("one")})
	e.mustRun("backup", src)
	mnt := e.path("mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, e, mnt)
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	m.wait()
	if _, err := os.ReadDir(mnt); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after SIGKILL the mountpoint should be dead (ENOTCONN), got %v", err)
	}
	r := e.expectCode(ExitFatal, "mount", mnt)
	if !strings.Contains(string(r.stderr), "fusermount3 -u "+mnt) {
		t.Errorf("mount over a dead mount should say to unmount it: %s", r.stderr)
	}
	if out, err := exec.Command(fusermount, "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v: %s", err, out)
	}
	startMount(t, e, mnt)
	if b, err := os.ReadFile(filepath.Join(mnt, "latest", hostname(t), src, "f")); err != nil || string(b) != "one" {
		t.Errorf("after remounting: %q, %v", b, err)
	}
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
