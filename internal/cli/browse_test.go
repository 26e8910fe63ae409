package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// browseFixture is a repository with two snapshots of src: the second
// adds new.txt, removes etc/sub/x.txt, changes data/note.txt and chmods
// etc/app.conf.
type browseFixture struct {
	e      *env
	src    string
	s1, s2 jsonSnapshot
	files  map[string][]byte // the second snapshot's files, relative to src
}

func newBrowseFixture(t *testing.T) *browseFixture {
	t.Helper()
	e := newRepo(t, 0)
	src := e.path("src")
	files := map[string][]byte{
		"etc/app.conf":  []byte("listen = 8080\n"),
		"etc/sub/x.txt": []byte("x\n"),
		"data/blob.bin": randomBytes(3, 100<<10),
		"data/note.txt": []byte("first\n"),
		"hello.txt":     []byte("hello world\n"),
	}
	writeFiles(t, src, files)
	if err := os.Symlink("hello.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	writeFiles(t, src, map[string][]byte{"new.txt": []byte("new\n"), "data/note.txt": []byte("second, longer\n")})
	if err := os.Remove(filepath.Join(src, "etc/sub/x.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "etc/app.conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
	if len(sns) != 2 {
		t.Fatalf("want 2 snapshots, got %d", len(sns))
	}
	return &browseFixture{e: e, src: src, s1: sns[0], s2: sns[1], files: readFiles(t, src)}
}

// lines splits human output into its non-empty lines.
func lines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestBrowse(t *testing.T) {
	t.Parallel()
	f := newBrowseFixture(t)
	e, src := f.e, f.src
	etc := filepath.Join(src, "etc")

	t.Run("ls references", func(t *testing.T) {
		// latest, a unique prefix and a full ID, each with :PATH.
		for ref, want := range map[string][]string{
			"latest:" + etc:              {etc + "/app.conf", etc + "/sub"},
			f.s1.ShortID + ":" + etc:     {etc + "/app.conf", etc + "/sub"},
			f.s1.ID[:5] + ":" + etc:      {etc + "/app.conf", etc + "/sub"},
			f.s1.ID + ":" + etc + "/sub": {etc + "/sub/x.txt"},
			f.s2.ID + ":" + src + "/":    {src + "/data", etc, src + "/hello.txt", src + "/link", src + "/new.txt"},
		} {
			if got := lines(e.mustRun("ls", ref).stdout); !slices.Equal(got, want) {
				t.Errorf("ls %s = %q, want %q", ref, got, want)
			}
		}
		// Without a path: the root of the snapshot, which holds the first
		// element of the backed-up path.
		first := "/" + strings.Split(strings.TrimPrefix(src, "/"), "/")[0]
		if got := lines(e.mustRun("ls", "latest").stdout); !slices.Equal(got, []string{first}) {
			t.Errorf("ls latest = %q, want %q", got, first)
		}
		// A file, in long form.
		got := lines(e.mustRun("ls", "-l", "latest:"+etc+"/app.conf").stdout)
		if len(got) != 1 || !strings.HasPrefix(got[0], "-rw------- ") || !strings.HasSuffix(got[0], " "+etc+"/app.conf") {
			t.Errorf("ls -l of a file = %q", got)
		}
		got = lines(e.mustRun("ls", "-l", "latest:"+src+"/link").stdout)
		if len(got) != 1 || !strings.HasSuffix(got[0], src+"/link -> hello.txt") {
			t.Errorf("ls -l of a symlink = %q", got)
		}
		got = lines(e.mustRun("ls", "--recursive", "latest:"+src+"/data").stdout)
		if !slices.Equal(got, []string{src + "/data/blob.bin", src + "/data/note.txt"}) {
			t.Errorf("ls --recursive = %q", got)
		}
	})

	t.Run("ls bad references", func(t *testing.T) {
		for _, c := range []struct{ ref, msg string }{
			{"latest:" + src + "/no-such-file", "not in snapshot"},
			{"latest:" + src + "/hello.txt/below", "not a directory"},
			{"zzzz", "no matching snapshot"},
			{unusedPrefix(f.s1.ID, f.s2.ID), "no matching snapshot"},
			{"latest", ""}, // with a filter that matches nothing, below
		} {
			args := []string{"ls", c.ref}
			if c.msg == "" {
				args, c.msg = append(args, "--host", "no-such-host"), "no snapshot to call latest"
			}
			r := e.run(args...)
			if r.code != ExitFatal || !strings.Contains(string(r.stderr), c.msg) || len(r.stdout) != 0 {
				t.Errorf("want exit 1 and %q on stderr, got %v", c.msg, r)
			}
		}
	})

	t.Run("find", func(t *testing.T) {
		// app.conf was chmodded between the snapshots: two versions.
		got := findRows(t, e.mustRun("find", "app.conf").stdout)
		want := []findRow{{f.s1.ShortID, "", 1, etc + "/app.conf"}, {f.s2.ShortID, "", 1, etc + "/app.conf"}}
		if !slices.Equal(got, want) {
			t.Errorf("find app.conf = %+v, want %+v", got, want)
		}
		// hello.txt did not change: one line for both snapshots.
		got = findRows(t, e.mustRun("find", "hello.txt").stdout)
		want = []findRow{{f.s1.ShortID, f.s2.ShortID, 2, src + "/hello.txt"}}
		if !slices.Equal(got, want) {
			t.Errorf("find hello.txt = %+v, want %+v", got, want)
		}
		// Only in the first.
		got = findRows(t, e.mustRun("find", "x.txt").stdout)
		want = []findRow{{f.s1.ShortID, "", 1, etc + "/sub/x.txt"}}
		if !slices.Equal(got, want) {
			t.Errorf("find x.txt = %+v, want %+v", got, want)
		}
		// A pattern with a slash matches whole paths; ** spans directories.
		got = findRows(t, e.mustRun("find", src+"/**/*.txt", "--path", src, "--host", f.s2.Hostname).stdout)
		want = []findRow{
			{f.s1.ShortID, "", 1, src + "/data/note.txt"}, {f.s1.ShortID, "", 1, etc + "/sub/x.txt"},
			{f.s1.ShortID, f.s2.ShortID, 2, src + "/hello.txt"},
			{f.s2.ShortID, "", 1, src + "/data/note.txt"}, {f.s2.ShortID, "", 1, src + "/new.txt"},
		}
		if !slices.Equal(got, want) {
			t.Errorf("find **/*.txt = %+v, want %+v", got, want)
		}
		r := e.mustRun("find", "no-such-name")
		if len(r.stdout) != 0 || !strings.Contains(string(r.stderr), "no matches") {
			t.Errorf("find without matches: %v", r)
		}
	})

	t.Run("diff", func(t *testing.T) {
		want := []string{
			"U  " + etc + "/app.conf",
			"U  " + etc + "/sub",
			"-  " + etc + "/sub/x.txt",
			"M  " + src + "/data/note.txt",
			"+  " + src + "/new.txt",
		}
		got := lines(e.mustRun("diff", f.s1.ShortID, "latest").stdout)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("diff lacks %q:\n%s", w, strings.Join(got, "\n"))
			}
		}
		for _, unchanged := range []string{"/hello.txt", "/link", "/data/blob.bin"} {
			for _, l := range got {
				if strings.HasSuffix(l, src+unchanged) {
					t.Errorf("diff lists unchanged %s: %q", unchanged, l)
				}
			}
		}
		if last := got[len(got)-1]; !strings.HasPrefix(last, "1 added, 1 removed, 1 changed, ") {
			t.Errorf("diff statistics: %q", last)
		}
		// Narrowed to a path, and without metadata-only changes.
		got = lines(e.mustRun("diff", "--metadata=false", f.s1.ShortID+":"+etc, f.s2.ShortID+":"+etc).stdout)
		if !slices.Equal(got[:len(got)-1], want[2:3]) {
			t.Errorf("diff --metadata=false of etc = %q, want %q", got, want[2:3])
		}
		// Narrowed to a file: the file itself is compared. (This used to
		// report no change at all.)
		for name, want := range map[string][]string{
			"data/note.txt": {"M  " + src + "/data/note.txt", "0 added, 0 removed, 1 changed, 0 metadata only"},
			"etc/app.conf":  {"U  " + etc + "/app.conf", "0 added, 0 removed, 0 changed, 1 metadata only"},
			"hello.txt":     {"0 added, 0 removed, 0 changed, 0 metadata only"},
		} {
			p := src + "/" + name
			if got := lines(e.mustRun("diff", f.s1.ShortID+":"+p, f.s2.ShortID+":"+p).stdout); !slices.Equal(got, want) {
				t.Errorf("diff of %s = %q, want %q", name, got, want)
			}
		}
	})

	t.Run("dump", func(t *testing.T) {
		for _, name := range []string{"data/blob.bin", "hello.txt", "data/note.txt"} {
			r := e.mustRun("dump", "latest:"+src+"/"+name)
			if !bytes.Equal(r.stdout, f.files[name]) {
				t.Errorf("dump %s: %d bytes differ from the source (%d bytes)", name, len(r.stdout), len(f.files[name]))
			}
		}
		r := e.mustRun("dump", f.s1.ShortID+":"+etc+"/sub/x.txt")
		if string(r.stdout) != "x\n" {
			t.Errorf("dump of a file from the first snapshot: %q", r.stdout)
		}
		// A directory is a tar stream of everything below it.
		r = e.mustRun("dump", "latest:"+src)
		tr := tar.NewReader(bytes.NewReader(r.stdout))
		got := map[string][]byte{}
		var names []string
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("dump of a directory is not a valid tar stream: %v", err)
			}
			names = append(names, h.Name)
			switch h.Typeflag {
			case tar.TypeReg:
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				got[h.Name] = b
			case tar.TypeSymlink:
				if h.Name != "link" || h.Linkname != "hello.txt" {
					t.Errorf("tar symlink %s -> %s", h.Name, h.Linkname)
				}
			}
			if h.Name == "etc/app.conf" && h.Mode&0o777 != 0o600 {
				t.Errorf("tar etc/app.conf mode %o, want 600", h.Mode)
			}
		}
		if len(got) != len(f.files) {
			t.Errorf("tar has files %q, want the %d files of the snapshot", names, len(f.files))
		}
		for name, data := range f.files {
			if !bytes.Equal(got[name], data) {
				t.Errorf("tar entry %s: %d bytes differ from the source (%d bytes)", name, len(got[name]), len(data))
			}
		}
		if !slices.Contains(names, "data") && !slices.Contains(names, "data/") {
			t.Errorf("tar has no entry for the directory data: %q", names)
		}
		r = e.run("dump", "latest:"+src+"/link")
		if r.code != ExitFatal || !strings.Contains(string(r.stderr), "symlink") {
			t.Errorf("dump of a symlink should be refused: %v", r)
		}
	})

	t.Run("cat", func(t *testing.T) {
		var cfg map[string]any
		if err := json.Unmarshal(e.mustRun("cat", "config").stdout, &cfg); err != nil || cfg["version"] != 1.0 || !hexID.MatchString(fmt.Sprint(cfg["id"])) {
			t.Errorf("cat config: %v %v", cfg, err)
		}
		var sn jsonSnapshot
		decodeStrict(t, e.mustRun("cat", "snapshot", f.s1.ShortID).stdout, &sn)
		if sn.ID != f.s1.ID {
			t.Errorf("cat snapshot %s gave %s", f.s1.ShortID, sn.ID)
		}
		var nodes []map[string]any
		if err := json.Unmarshal(e.mustRun("cat", "tree", f.s2.Tree[0]).stdout, &nodes); err != nil || len(nodes) != 1 {
			t.Fatalf("cat tree of the root: %v %v", nodes, err)
		}
		if first := strings.Split(strings.TrimPrefix(src, "/"), "/")[0]; nodes[0]["Name"] != first {
			t.Errorf("cat tree of the root lists %v, want %s", nodes[0]["Name"], first)
		}
		for _, name := range dirNames(t, e.path("repo", "index")) {
			var idx map[string]any
			if err := json.Unmarshal(e.mustRun("cat", "index", name).stdout, &idx); err != nil || idx["Packs"] == nil {
				t.Errorf("cat index %s: %v %v", name, idx, err)
			}
		}
		for _, name := range dirNames(t, e.path("repo", "keys")) {
			var key map[string]any
			if err := json.Unmarshal(e.mustRun("cat", "key", name).stdout, &key); err != nil || key["kdf"] != "argon2id" {
				t.Errorf("cat key %s: %v %v", name, key, err)
			}
		}
		// Find hello.txt's blob through the pack headers, and read it.
		found := false
		for _, dir := range dirNames(t, e.path("repo", "data")) {
			for _, p := range dirNames(t, e.path("repo", "data", dir)) {
				var blobs []struct {
					Type      int
					ID        string
					RawLength int
				}
				if err := json.Unmarshal(e.mustRun("cat", "pack", p).stdout, &blobs); err != nil || len(blobs) == 0 {
					t.Fatalf("cat pack %s: %v %v", p, blobs, err)
				}
				for _, b := range blobs {
					if b.Type == 1 && b.RawLength == len(f.files["hello.txt"]) {
						found = found || bytes.Equal(e.mustRun("cat", "blob", b.ID).stdout, f.files["hello.txt"])
					}
				}
			}
		}
		if !found {
			t.Error("no data blob read with cat blob holds hello.txt")
		}
		for _, args := range [][]string{{"cat", "snapshot"}, {"cat", "blob", "nothex"}, {"cat", "nonsense", "x"}} {
			if r := e.run(args...); r.code != ExitFatal || len(r.stderr) == 0 {
				t.Errorf("want exit 1 with a message: %v", r)
			}
		}
	})
}

// dirNames lists a directory's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// unusedPrefix returns a two-digit hex prefix of none of ids.
func unusedPrefix(ids ...string) string {
	for i := range 256 {
		p := fmt.Sprintf("%02x", i)
		if !slices.ContainsFunc(ids, func(s string) bool { return strings.HasPrefix(s, p) }) {
			return p
		}
	}
	panic("unreachable with fewer than 256 IDs")
}

// TestAmbiguousPrefix: a prefix that matches several snapshots is refused
// with a message that says so; a longer one works.
func TestAmbiguousPrefix(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	// Among 17 snapshots two share a first digit; usually far fewer do.
	seen := map[byte]string{}
	var a, b string
	for i := 0; i < 17 && a == ""; i++ {
		s := checkBackupJSON(t, e.mustRun("backup", "--json", "--tag", fmt.Sprint(i), src))
		if other, ok := seen[s.SnapshotID[0]]; ok {
			a, b = other, s.SnapshotID
		}
		seen[s.SnapshotID[0]] = s.SnapshotID
	}
	if a == "" {
		t.Fatal("17 snapshot IDs with distinct first digits")
	}
	common := 0
	for a[common] == b[common] {
		common++
	}
	r := e.run("ls", a[:common]+":"+src)
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "ambiguous") || !strings.Contains(string(r.stderr), "matches 2 snapshots") {
		t.Errorf("an ambiguous prefix should be refused clearly: %v", r)
	}
	for _, id := range []string{a, b} {
		if got := lines(e.mustRun("ls", id[:common+1]+":"+src).stdout); !slices.Equal(got, []string{src + "/f"}) {
			t.Errorf("ls with the unique prefix %s: %q", id[:common+1], got)
		}
	}
}

// findRow is one line of find's table.
type findRow struct {
	first, last string
	snapshots   int
	entry       string
}

// findRows parses find's table: First, its date and time, Last with its
// date and time when the entry spans snapshots, Snapshots, Host, Entry.
func findRows(t *testing.T, out []byte) []findRow {
	t.Helper()
	ls := lines(out)
	if len(ls) < 2 || !strings.HasPrefix(ls[0], "First ") || strings.Trim(ls[1], "-") != "" {
		t.Fatalf("find output has no table header:\n%s", out)
	}
	var rows []findRow
	for _, l := range ls[2:] {
		f := strings.Fields(l)
		var r findRow
		var n string
		switch len(f) {
		case 6:
			r.first, n, r.entry = f[0], f[3], f[5]
		case 9:
			r.first, r.last, n, r.entry = f[0], f[3], f[6], f[8]
		default:
			t.Fatalf("find line %q has %d fields", l, len(f))
		}
		var err error
		if r.snapshots, err = strconv.Atoi(n); err != nil {
			t.Fatalf("find line %q: snapshots %q", l, n)
		}
		rows = append(rows, r)
	}
	return rows
}
