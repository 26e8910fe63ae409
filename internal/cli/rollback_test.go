package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// undoTime finds the time in the "to undo" line of rollback's output.
var undoLine = regexp.MustCompile(`to undo: rewind rollback (\S+) --at (\S+)\n`)

func undoTime(t *testing.T, r result, p string) string {
	t.Helper()
	m := undoLine.FindStringSubmatch(string(r.stdout))
	if m == nil || m[1] != p {
		t.Fatalf("rollback does not say how to undo it: %v", r)
	}
	return m[2]
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// TestRollbackFile: a test rolls a file back and then undoes the
// rollback.
func TestRollbackFile(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	f := filepath.Join(src, "app.conf")
	writeFiles(t, src, map[string][]byte{"app.conf": []byte("version 1\n"), "other": []byte("untouched")})
	if err := os.Chmod(f, 0o640); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	m1 := time.Now().Format(time.RFC3339Nano)
	writeFiles(t, src, map[string][]byte{"app.conf": []byte("version 2, longer\n")})
	e.mustRun("backup", src)
	// The current state was never backed up: rollback must save it.
	writeFiles(t, src, map[string][]byte{"app.conf": []byte("version 3, live\n")})
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}

	r := e.mustRun("rollback", f, "--at", m1)
	if got := readFile(t, f); got != "version 1\n" {
		t.Fatalf("after rollback: %q", got)
	}
	if m := mode(t, f).Perm(); m != 0o640 {
		t.Errorf("after rollback: mode %o, want 640", m)
	}
	if got := readFile(t, filepath.Join(src, "other")); got != "untouched" {
		t.Errorf("rollback of a file changed its neighbour: %q", got)
	}
	undo := undoTime(t, r, f)

	var pre []jsonSnapshot
	checkDoc(t, "snapshot", e.mustRun("snapshots", "--json", "--tag", "pre-rollback").stdout, &pre)
	if len(pre) != 1 || !slices.Equal(pre[0].Paths, []string{f}) || !slices.Equal(pre[0].Tags, []string{"pre-rollback"}) {
		t.Fatalf("pre-rollback snapshots: %+v", pre)
	}
	if got, _ := time.Parse(time.RFC3339Nano, undo); !got.Equal(pre[0].Summary.BackupEnd) {
		t.Errorf("undo time %s is not the moment the pre-rollback snapshot shows (its end, %s)", undo, pre[0].Summary.BackupEnd)
	}

	// Undo: back to the live state that was never backed up by hand.
	r = e.mustRun("rollback", f, "--at", undo)
	if got := readFile(t, f); got != "version 3, live\n" {
		t.Fatalf("after undoing the rollback: %q", got)
	}
	if m := mode(t, f).Perm(); m != 0o600 {
		t.Errorf("after undo: mode %o, want 600", m)
	}
	// The undo saved a state too, and can be undone in turn.
	e.mustRun("rollback", f, "--at", undoTime(t, r, f))
	if got := readFile(t, f); got != "version 1\n" {
		t.Errorf("after undoing the undo: %q", got)
	}

	// Refused, changing nothing: no --at, a file that did not exist at
	// the time, a path inside the repository.
	e.expectCode(ExitFatal, "rollback", f)
	writeFiles(t, src, map[string][]byte{"late.txt": []byte("late")})
	r = e.expectCode(ExitFatal, "rollback", filepath.Join(src, "late.txt"), "--at", m1)
	if !strings.Contains(string(r.stderr), "did not exist at") {
		t.Errorf("rollback of a file that did not exist: %v", r)
	}
	if got := readFile(t, filepath.Join(src, "late.txt")); got != "late" {
		t.Errorf("a refused rollback changed the file: %q", got)
	}
	r = e.expectCode(ExitFatal, "rollback", e.path("repo", "snapshots"), "--at", m1)
	if !strings.Contains(string(r.stderr), "the repository") {
		t.Errorf("rollback inside the repository: %v", r)
	}
	e.mustRun("check")
}

// TestRollbackDirectory: a directory rollback removes what was created
// after the moment, brings back what was deleted, replaces entries that
// changed kind, leaves excluded files alone, and is undone whole.
func TestRollbackDirectory(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{
		"a.txt": []byte("a1"), "sub/b.txt": []byte("b1"), "kind/inner": []byte("in a dir"),
		"flip": []byte("a file"), "cache.tmp": []byte("never backed up"),
	})
	e.mustRun("backup", "--exclude", "*.tmp", src)
	m1 := time.Now().Format(time.RFC3339Nano)
	then := readFiles(t, src)

	writeFiles(t, src, map[string][]byte{"a.txt": []byte("a2, changed"), "new.txt": []byte("new"), "newdir/deep/x": []byte("x")})
	removeAll(t, filepath.Join(src, "sub", "b.txt"), filepath.Join(src, "kind"), filepath.Join(src, "flip"))
	writeFiles(t, src, map[string][]byte{"kind": []byte("now a file"), "flip/y": []byte("now a dir"), "later.tmp": []byte("excluded too")})
	if err := os.Symlink("/etc", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	before := readFiles(t, src)

	r := e.mustRun("rollback", src, "--at", m1)
	want := mergeFiles(then, map[string][]byte{"later.tmp": []byte("excluded too")})
	sameAsMoment(t, "after rollback", want, src)
	for _, gone := range []string{"new.txt", "newdir", "link"} {
		if _, err := os.Lstat(filepath.Join(src, gone)); !os.IsNotExist(err) {
			t.Errorf("%s was created after the moment and is still there (%v)", gone, err)
		}
	}
	if !mode(t, filepath.Join(src, "kind")).IsDir() || !mode(t, filepath.Join(src, "flip")).IsRegular() {
		t.Error("entries that changed kind are not back as they were")
	}
	// new.txt, newdir/deep/x, newdir/deep, newdir, link, the file kind,
	// flip/y and the directory flip.
	if !strings.Contains(string(r.stdout), " 8 entries removed") {
		t.Errorf("rollback output: %v", r)
	}
	if _, err := os.Stat("/etc"); err != nil {
		t.Fatal("removing the symlink removed what it points to")
	}

	// Undo: everything as it was before the rollback, the symlink and the
	// files made after the moment included.
	e.mustRun("rollback", src, "--at", undoTime(t, r, src))
	sameAsMoment(t, "after undo", before, src)
	if target, err := os.Readlink(filepath.Join(src, "link")); err != nil || target != "/etc" {
		t.Errorf("symlink after undo: %q, %v", target, err)
	}
	if _, err := os.Lstat(filepath.Join(src, "sub", "b.txt")); !os.IsNotExist(err) {
		t.Errorf("the undo did not remove the file the rollback brought back (%v)", err)
	}

	// versions shows the round trip: the original, the state made after
	// it (first seen in the pre-rollback snapshot), the rollback's state,
	// the undone one.
	var vs []jsonFileVersion
	checkDoc(t, "versions.version", e.mustRun("versions", "--json", filepath.Join(src, "a.txt")).stdout, &vs)
	var contents []string
	for _, v := range vs {
		contents = append(contents, v.Change)
	}
	if !slices.Equal(contents, []string{"first", "content", "content"}) {
		t.Errorf("versions of a.txt after a rollback and its undo: %q", contents)
	}
	e.mustRun("check")
}

// mergeFiles merges file maps, later ones winning.
func mergeFiles(ms ...map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
