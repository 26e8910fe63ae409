package cli

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenNorm makes a command's output independent of the run: each
// snapshot's short ID becomes snap-001, snap-002... and its time a fixed
// time of the same width, in the order of the snapshots, and the sandbox's
// directory becomes /SRC. File times, hosts and names are fixed by
// construction.
type goldenNorm struct {
	repl []string
}

func newGoldenNorm(t *testing.T, e *env, src string) *goldenNorm {
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
	n := &goldenNorm{repl: []string{src, "/SRC"}}
	for i, sn := range sns {
		n.repl = append(n.repl, sn.ShortID, fmt.Sprintf("snap-%03d", i+1),
			sn.Time.UTC().Format(timeFormat), fmt.Sprintf("2000-01-01 00:00:%02d", i+1))
	}
	return n
}

func (n *goldenNorm) apply(b []byte) []byte {
	return []byte(strings.NewReplacer(n.repl...).Replace(string(b)))
}

// checkGolden compares got with testdata/name.golden, or rewrites the
// file with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGoldenText -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test -run TestGoldenText -update rewrites it after review):\n--- got\n%s--- want\n%s", name, p, got, want)
	}
}

// nextSecond waits until the wall clock is in a later second than after,
// so that snapshots taken one after another have distinct times.
func nextSecond(after time.Time) {
	for time.Now().Truncate(time.Second).Equal(after.Truncate(time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGoldenText pins what a user reads from snapshots, ls -l, versions,
// forget --dry-run and find, so that a change of it shows in review.
func TestGoldenText(t *testing.T) {
	testutil.RequireRootOrCI(t)
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{
		"a.txt":    []byte("alpha\n"),
		"keep.txt": []byte("the same in every snapshot\n"),
		"su":       []byte("#!/bin/sh\n"),
	})
	p := func(name string) string { return filepath.Join(src, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chown(p("su"), 0, 0))     // before the chmod: chown clears set-user-ID
	must(unix.Chmod(p("su"), 0o4750)) // os.Chmod wants os.ModeSetuid, not 0o4000
	must(os.Link(p("a.txt"), p("a-link.txt")))
	must(os.Symlink("a.txt", p("sym")))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(p("loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 200))))
	must(unix.Mkfifo(p("fifo"), 0o600))
	// Modes set after creation, so that the umask does not show.
	for name, mode := range map[string]uint32{"a.txt": 0o644, "keep.txt": 0o644, "null": 0o666, "loop": 0o660, "fifo": 0o600} {
		must(unix.Chmod(p(name), mode))
	}
	stamp := func() {
		t.Helper()
		ents, err := os.ReadDir(src)
		must(err)
		for i, d := range ents {
			mt := time.Date(2021, 6, 1, 12, 0, i, 0, time.UTC)
			ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
			must(unix.UtimesNanoAt(unix.AT_FDCWD, p(d.Name()), ts, unix.AT_SYMLINK_NOFOLLOW))
		}
	}
	stamp()

	last := time.Now()
	backup := func(host string) {
		t.Helper()
		nextSecond(last)
		e.mustRun("backup", "--host", host, src)
		last = time.Now()
	}
	backup("web1")
	backup("web1")
	must(os.WriteFile(p("a.txt"), []byte("alpha, changed\n"), 0o644))
	stamp()
	backup("web1")
	backup("a-very-long-host-name.example.org")

	n := newGoldenNorm(t, e, src)
	run := func(name string, args ...string) {
		t.Helper()
		r := e.mustRun(args...)
		checkGolden(t, name, n.apply(r.stdout))
	}
	run("snapshots", "snapshots")
	run("ls-l", "ls", "-l", "latest:"+src)
	run("versions", "versions", "--host", "web1", p("a.txt"))
	run("forget-dry-run", "forget", "--dry-run", "--keep-last", "1")
	run("find", "find", "*.txt")
	run("find-l", "find", "-l", "keep.txt")

	// Counts of one say so in the singular, in every output above and in
	// the summaries of backup and restore.
	var outs [][]byte
	one := e.mustRun("backup", "--host", "one", src+"/keep.txt")
	outs = append(outs, one.stdout, one.stderr)
	r := e.mustRun("restore", "--host", "one", "latest", "--target", e.path("restored"))
	outs = append(outs, r.stdout, r.stderr)
	outs = append(outs, e.mustRun("snapshots", "--host", "one").stdout, e.mustRun("forget", "--dry-run", "--host", "web1", "--keep-last", "2").stdout)
	outs = append(outs, e.mustRun("versions", "--host", "one", src+"/keep.txt").stdout)
	bad := regexp.MustCompile(`(?m)(^|[^0-9.,/])1 (?:[a-z-]+ )?(?:files|snapshots|entries|packs|directories|blobs|keys|locks|trees|versions|problems|requests|errors|paths|changes)\b`)
	for _, o := range outs {
		if m := bad.Find(o); m != nil {
			t.Errorf("output says %q:\n%s", m, o)
		}
	}
}
