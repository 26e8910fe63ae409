package cli

// Snapshots forged to escape: listings holding names that restore refuses
// ("..", ".", "", names with '/' or NUL, a second entry of one name, an
// entry out of name order). dump must leave them out of its tar stream,
// so that an extractor that trusts its input writes nothing outside its
// target, and ls and find must show them quoted and flagged, never under
// a cleaned path that is not theirs.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// forger writes hand-made listings into a repository, as someone holding
// its key could.
type forger struct {
	t   *testing.T
	ctx context.Context
	r   *repository.Repository
}

func (f forger) listing(nodes ...tree.Node) []id.ID {
	f.t.Helper()
	b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
		i, _, err := f.r.SaveBlob(f.ctx, pack.TreeBlob, blob)
		return i, err
	}}
	for i := range nodes {
		if err := b.Add(&nodes[i]); err != nil {
			f.t.Fatal(err)
		}
	}
	ids, err := b.Finish()
	if err != nil {
		f.t.Fatal(err)
	}
	return ids
}

func (f forger) file(name, content string) tree.Node {
	f.t.Helper()
	i, _, err := f.r.SaveBlob(f.ctx, pack.DataBlob, []byte(content))
	if err != nil {
		f.t.Fatal(err)
	}
	return tree.Node{Name: name, Type: tree.File, Mode: 0o644, Size: uint64(len(content)),
		Content: []tree.Chunk{{ID: i, Size: uint64(len(content))}}, MTime: time.Now().UnixNano()}
}

func (f forger) dir(name string, nodes ...tree.Node) tree.Node {
	return tree.Node{Name: name, Type: tree.Dir, Mode: 0o755, Subtree: f.listing(nodes...), MTime: time.Now().UnixNano()}
}

func symlink(name, target string) tree.Node {
	return tree.Node{Name: name, Type: tree.Symlink, Mode: 0o777, LinkTarget: target}
}

// forgeSnapshot stores a snapshot of / whose /srv holds, between entries
// that are fine, every kind of name restore refuses; each of those would
// put a file in outside (or above the extraction directory) if a tar
// extractor were given it. It returns the snapshot's ID.
func forgeSnapshot(t *testing.T, e *env, outside string) string {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, e.path("repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	r.StartWriting(ctx)
	f := forger{t, ctx, r}
	srv := f.dir("srv",
		f.dir("..", f.file("climbed", "one level up")),
		f.file(".", "dot"),
		f.dir("", f.file("blank", "empty name")),
		f.file("../../x", "slashes"),
		f.file("a", "first a"),
		f.file("a\x00b", "nul"),
		f.file("back\nslash", "a newline is a valid name"),
		// Absolute symlink, then a directory of its name.
		symlink("etc", outside),
		f.dir("etc", f.file("planted-abs", "through the absolute symlink")),
		f.file("keep", "kept"),
		// Relative symlink, then a file of its name.
		symlink("rel", "../../outside/by-rel"),
		f.file("rel", "through the relative symlink"),
		// A symlink, an entry out of order, then the symlink's name again.
		symlink("zz", outside),
		f.dir("b", f.file("inside-b", "b is out of order")),
		f.dir("zz", f.file("planted-zz", "after an entry out of order")),
	)
	deep := f.dir("deep", f.dir("er",
		symlink("up", "../../../../outside"),
		f.dir("up", f.file("planted-deep", "two levels down")),
		f.file("z-ok", "fine"),
	))
	root := f.listing(deep, srv)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sn := &snapshot.Snapshot{Time: time.Now(), Tree: root, Paths: []string{"/"}, Hostname: "forger"}
	if err := snapshot.Save(ctx, r, sn); err != nil {
		t.Fatal(err)
	}
	return sn.ID.String()
}

// refusedPaths are the paths snapshot.WalkNames gives the refused entries
// of forgeSnapshot, in listing order, with what their errors say.
var refusedPaths = []struct{ path, why string }{
	{`/deep/er/"up"`, "same name"},
	{`/srv/".."`, "directory reference"},
	{`/srv/"."`, "directory reference"},
	{`/srv/""`, "empty"},
	{`/srv/"../../x"`, "contains '/'"},
	{`/srv/"a\x00b"`, "contains NUL"},
	{`/srv/"etc"`, "same name"},
	{`/srv/"rel"`, "same name"},
	{`/srv/"b"`, "out of name order"},
	{`/srv/"zz"`, "same name"},
}

// acceptedPaths are the entries of forgeSnapshot that are fine.
var acceptedPaths = []string{"/deep", "/deep/er", "/deep/er/up", "/deep/er/z-ok",
	"/srv", "/srv/a", "/srv/back\nslash", "/srv/etc", "/srv/keep", "/srv/rel", "/srv/zz"}

// TestDumpForgedNames dumps the forged snapshot, whole and from /srv and
// /deep/er, and extracts each tar stream with Python's tarfile and its
// fully_trusted filter, which follows whatever the archive says. Nothing
// may land outside the extraction directory, the archive holds exactly
// the accepted entries, every refused one is named on stderr, and the
// exit status is 3.
func TestDumpForgedNames(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed to extract the dumps as a trusting extractor would")
	}
	e := newRepo(t, 0)
	base := e.path("x")
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "sentinel"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap := forgeSnapshot(t, e, outside)

	cases := []struct {
		path string
		want []string // entries of the archive, relative
	}{
		{"/", []string{"deep", "deep/er", "deep/er/up", "deep/er/z-ok", "srv", "srv/a", "srv/back\nslash", "srv/etc", "srv/keep", "srv/rel", "srv/zz"}},
		{"/srv", []string{"a", "back\nslash", "etc", "keep", "rel", "zz"}},
		{"/deep/er", []string{"up", "z-ok"}},
	}
	for i, c := range cases {
		res := e.run("dump", snap+":"+c.path)
		if res.code != ExitPartial {
			t.Fatalf("dump %s: want exit 3, got %v", c.path, res)
		}
		for _, rp := range refusedPaths {
			if !strings.HasPrefix(rp.path, strings.TrimSuffix(c.path, "/")+"/") {
				continue
			}
			if want := "left out " + shownPath(rp.path) + ": "; !bytes.Contains(res.stderr, []byte(want)) {
				t.Errorf("dump %s: stderr does not say %q:\n%s", c.path, want, res.stderr)
			}
		}
		// Extract two levels below base, so that "../.." stays inside
		// base and is seen by the check of base below.
		dest := filepath.Join(base, "ex", string(rune('a'+i)))
		if err := os.MkdirAll(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		py := exec.Command("python3", "-c", `import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tf:
    tf.extractall(sys.argv[1], filter="fully_trusted")
`, dest)
		py.Stdin = bytes.NewReader(res.stdout)
		if out, err := py.CombinedOutput(); err != nil {
			t.Fatalf("dump %s: python tarfile: %v\n%s", c.path, err, out)
		}
		if got := dirEntries(t, outside); !slices.Equal(got, []string{"sentinel"}) {
			t.Errorf("dump %s: outside now holds %q", c.path, got)
		}
		if got := dirEntries(t, base); !slices.Equal(got, []string{"ex", "outside"}) {
			t.Errorf("dump %s: %s now holds %q", c.path, base, got)
		}
		if got := dirEntries(t, filepath.Join(base, "ex")); len(got) != i+1 {
			t.Errorf("dump %s: %s now holds %q", c.path, filepath.Join(base, "ex"), got)
		}
		if got := treeEntries(t, dest); !slices.Equal(got, c.want) {
			t.Errorf("dump %s: extracted\n%q\nwant\n%q", c.path, got, c.want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(outside, "sentinel")); err != nil || string(b) != "untouched" {
		t.Errorf("sentinel holds %q, %v", b, err)
	}

	// restore, from the same check, makes the same entries and refuses
	// the same ones.
	restored := filepath.Join(base, "restored")
	res := e.run("restore", snap, "--target", restored)
	if res.code == 0 {
		t.Errorf("restore of the forged snapshot succeeded: %v", res)
	}
	for _, rp := range refusedPaths {
		if !bytes.Contains(res.stderr, []byte(rp.why)) {
			t.Errorf("restore does not say why %s is refused: %v", rp.path, res)
		}
	}
	if got, want := treeEntries(t, restored), cases[0].want; !slices.Equal(got, want) {
		t.Errorf("restore made\n%q\nwant\n%q", got, want)
	}
	if got := dirEntries(t, outside); !slices.Equal(got, []string{"sentinel"}) {
		t.Errorf("restore: outside now holds %q", got)
	}

	// A file is dumped as it is, with nothing refused.
	if res := e.mustRun("dump", snap+":/srv/keep"); string(res.stdout) != "kept" {
		t.Errorf("dump of /srv/keep wrote %q", res.stdout)
	}
	// A refused entry cannot be reached by its path either: "b" is out of
	// order, and the second "zz" and "etc" hide behind symlinks.
	for _, p := range []string{"/srv/b", "/srv/b/inside-b", "/srv/zz/planted-zz", "/srv/etc/planted-abs", "/deep/er/up/planted-deep"} {
		for _, cmd := range []string{"dump", "ls"} {
			res := e.run(cmd, snap+":"+p)
			if res.code != ExitFatal || len(res.stdout) != 0 {
				t.Errorf("%s %s: want exit 1 and no output, got %v", cmd, p, res)
			}
		}
		res := e.run("restore", snap+":"+p, "--target", filepath.Join(base, "restored"))
		if res.code != ExitFatal {
			t.Errorf("restore %s: want exit 1, got %v", p, res)
		}
	}
}

// TestListForgedNames lists the forged snapshot with ls and find, as text
// and JSON: every refused entry appears once, under the quoted path and
// flagged "invalid-name", nothing below a refused directory appears, and
// the accepted entries are listed under their own paths.
func TestListForgedNames(t *testing.T) {
	e := newRepo(t, 0)
	snap := forgeSnapshot(t, e, e.path("outside"))

	// A name pattern matches names as stored, and "*" does not match
	// one holding a '/'.
	slashName := `/srv/"../../x"`
	check := func(what string, lines []jsonLine, msgType string) {
		t.Helper()
		wantRefused := len(refusedPaths)
		if msgType == "match" {
			wantRefused--
		}
		var accepted []string
		refused := map[string]string{}
		for _, l := range lines {
			var n jsonNode
			checkDoc(t, "node", l.raw, &n)
			if n.MessageType != msgType || n.SnapshotID != snap {
				t.Errorf("%s: %+v", what, n)
			}
			if slices.Contains(n.Flags, "invalid-name") {
				if _, dup := refused[n.Path]; dup {
					t.Errorf("%s: %q listed twice", what, n.Path)
				}
				refused[n.Path] = n.NameError
				continue
			}
			if n.NameError != "" || !strings.HasSuffix(n.Path, "/"+n.Name) {
				t.Errorf("%s: accepted entry %+v", what, n)
			}
			accepted = append(accepted, n.Path)
		}
		if !slices.Equal(accepted, acceptedPaths) {
			t.Errorf("%s: accepted entries\n%q\nwant\n%q", what, accepted, acceptedPaths)
		}
		if len(refused) != wantRefused {
			t.Errorf("%s: %d refused entries, want %d: %q", what, len(refused), wantRefused, refused)
		}
		for _, rp := range refusedPaths {
			if msgType == "match" && rp.path == slashName {
				continue
			}
			if why, ok := refused[rp.path]; !ok || !strings.Contains(why, rp.why) {
				t.Errorf("%s: refused %q: %q (listed %v), want %q", what, rp.path, why, ok, rp.why)
			}
		}
	}
	check("ls -R --json", jsonLines(t, e.mustRun("ls", "-R", "--json", snap)), "node")
	check("find --json", jsonLines(t, e.mustRun("find", "*", "--json")), "match")

	for _, args := range [][]string{{"ls", "-R", snap}, {"ls", "-R", "-l", snap}, {"find", "*"}, {"find", "-l", "*"}} {
		out := string(e.mustRun(args...).stdout)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		wantRefused := len(refusedPaths)
		if args[0] == "find" {
			wantRefused--
		}
		for _, rp := range refusedPaths {
			if args[0] == "find" && rp.path == slashName {
				continue
			}
			n := 0
			for _, l := range lines {
				if strings.Contains(l, shownPath(rp.path)+" ") {
					n++
					if !strings.Contains(l, "(refused by restore and dump: ") || !strings.Contains(l, rp.why) {
						t.Errorf("%v: line %q does not flag the entry", args, l)
					}
				}
			}
			if n != 1 {
				t.Errorf("%v: %q is on %d lines:\n%s", args, shownPath(rp.path), n, out)
			}
		}
		for _, bad := range []string{"/srv/..", "/srv/climbed", "/climbed", "planted", "inside-b", "blank", "/x\n", "\x00", "back\nslash"} {
			if strings.Contains(out, bad) {
				t.Errorf("%v: output holds %q:\n%s", args, bad, out)
			}
		}
		if !strings.Contains(out, `/srv/back\nslash`) {
			t.Errorf("%v: the name with a newline is not shown escaped:\n%s", args, out)
		}
		if refusedLines := strings.Count(out, "(refused by restore and dump: "); refusedLines != wantRefused {
			t.Errorf("%v: %d entries flagged, want %d:\n%s", args, refusedLines, wantRefused, out)
		}
	}
}

// dirEntries lists a directory's names, sorted.
func dirEntries(t *testing.T, dir string) []string {
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

// treeEntries lists everything below dir, relative, sorted, without
// following symlinks.
func treeEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
