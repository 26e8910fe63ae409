package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// snapshotPaths lists every entry of snapshot id below dir.
func snapshotPaths(t *testing.T, e *env, id, dir string) []string {
	t.Helper()
	var got []string
	for _, l := range jsonLines(t, e.mustRun("ls", "-R", "--json", id+":"+dir)) {
		var n jsonNode
		checkDoc(t, "node", l.raw, &n)
		got = append(got, n.Path)
	}
	slices.Sort(got)
	return got
}

// TestBackupFilesFrom backs up paths from three kinds of list files and
// the command line at once: comments, blank lines and spaces only count
// in --files-from; --files-from-verbatim keeps a name with spaces around
// it; --files-from-raw carries a name with a newline, from standard
// input.
func TestBackupFilesFrom(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{
		"a.txt": []byte("a"), "dir/b.txt": []byte("b"), "#hash.txt": []byte("h"),
		" spaced ": []byte("s"), "new\nline": []byte("n"), "arg.txt": []byte("g"), "left-out.txt": []byte("x"),
	})
	lines := "# comment line\n" + filepath.Join(src, "a.txt") + "\n\n   " + filepath.Join(src, "dir") + "  \r\n" +
		filepath.Join(src, "#hash.txt") + "\n"
	verbatim := filepath.Join(src, " spaced ") + "\n"
	raw := filepath.Join(src, "new\nline") + "\x00"
	writeFiles(t, e.dir, map[string][]byte{"lines.txt": []byte(lines), "verbatim.txt": []byte(verbatim)})
	c := e.cmd("backup", "--json", "--files-from", e.path("lines.txt"), "--files-from-verbatim", e.path("verbatim.txt"),
		"--files-from-raw", "-", filepath.Join(src, "arg.txt"))
	c.Stdin = strings.NewReader(raw)
	r := e.exec(c)
	if r.code != 0 {
		t.Fatalf("backup: %v", r)
	}
	sum := checkBackupJSON(t, r)
	want := []string{}
	for _, p := range []string{"#hash.txt", " spaced ", "a.txt", "arg.txt", "dir", "dir/b.txt", "new\nline"} {
		want = append(want, filepath.Join(src, p))
	}
	slices.Sort(want)
	if got := snapshotPaths(t, e, sum.SnapshotID, src); !slices.Equal(got, want) {
		t.Errorf("snapshot holds\n%q\nwant\n%q", got, want)
	}
	if sum.FilesNew != 6 {
		t.Errorf("files_new %d, want 6", sum.FilesNew)
	}
}

// TestBackupFilesFromMissing: a listed path that does not exist fails
// the backup before anything is written, naming the path, the file and
// its line; so does a list with no path, and an argument that does not
// exist. The default repository is not even created.
func TestBackupFilesFromMissing(t *testing.T) {
	e := newEnv(t)
	writeFiles(t, e.dir, map[string][]byte{"src/here": []byte("x")})
	here, gone := e.path("src", "here"), e.path("src", "gone")
	writeFiles(t, e.dir, map[string][]byte{
		"list.txt":  []byte("# first\n" + here + "\n\n" + gone + "\n"),
		"empty.txt": []byte("# nothing\n\n"),
		"raw.bin":   []byte(here + "\x00" + gone + "\x00"),
	})
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--files-from", e.path("list.txt")}, []string{gone, "line 4 of " + e.path("list.txt"), "does not exist"}},
		// Verbatim, the comment line is a (relative) path.
		{[]string{"--files-from-verbatim", e.path("list.txt")}, []string{`"# first" (line 1 of`}},
		{[]string{"--files-from-raw", e.path("raw.bin")}, []string{gone, "line 2 of " + e.path("raw.bin")}},
		{[]string{"--files-from", e.path("empty.txt"), here}, []string{e.path("empty.txt"), "lists no paths"}},
		{[]string{"--files-from", e.path("nolist.txt")}, []string{"nolist.txt", "no such file"}},
		{[]string{here, gone}, []string{gone, "no such file"}},
	}
	for _, c := range cases {
		r := e.expectCode(1, append([]string{"backup"}, c.args...)...)
		for _, w := range c.want {
			if !strings.Contains(string(r.stderr), w) {
				t.Errorf("%v: stderr does not say %q: %v", c.args, w, r)
			}
		}
		if _, err := os.Stat(filepath.Join(e.vars["XDG_DATA_HOME"], "rewind")); !os.IsNotExist(err) {
			t.Fatalf("%v: the default repository was created (%v)", c.args, err)
		}
	}
	r := e.expectCode(1, "backup", "--stdin", "--files-from", e.path("list.txt"))
	if !strings.Contains(string(r.stderr), "--stdin") {
		t.Errorf("--stdin with --files-from: %v", r)
	}
}
