package cli

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func init() {
	schemaTypes["backup.dryrun"] = reflect.TypeFor[jsonDryRun]()
}

type jsonDryRun struct {
	MessageType     string          `json:"message_type"`
	DryRun          bool            `json:"dry_run"`
	Parent          string          `json:"parent"`
	FilesNew        int64           `json:"files_new"`
	FilesChanged    int64           `json:"files_changed"`
	FilesUnchanged  int64           `json:"files_unchanged"`
	DirsNew         int64           `json:"dirs_new"`
	DirsChanged     int64           `json:"dirs_changed"`
	DirsUnchanged   int64           `json:"dirs_unchanged"`
	TotalFiles      int64           `json:"total_files_processed"`
	TotalBytes      int64           `json:"total_bytes_processed"`
	BytesRead       int64           `json:"bytes_read"`
	DataBlobs       int64           `json:"data_blobs"`
	TreeBlobs       int64           `json:"tree_blobs"`
	DataAdded       int64           `json:"data_added"`
	Errors          []jsonKindError `json:"errors"`
	ErrorCounts     jsonErrorCounts `json:"error_counts"`
	DurationSeconds float64         `json:"duration_seconds"`
	FilesVanished   int64           `json:"files_vanished"`
	Skipped         []jsonFileError `json:"skipped"`
	NotCrossed      []jsonBoundary  `json:"not_crossed"`
	FilesTooLarge   int64           `json:"files_too_large"`
	TooLarge        []jsonLargeFile `json:"too_large"`
}

// dirState maps every file below dir to a hash of its content.
func dirState(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		b := []byte("dir")
		if !d.IsDir() {
			b, err = os.ReadFile(p)
		}
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// inMnt prepares a run of rewind in a mount namespace of its own where
// root is bind-mounted on /mnt. Backing up /mnt/... there, every
// directory above the target is one the test alone changes (unlike
// /tmp), so that two backups of an unchanged tree store the same
// listings, to the byte.
func (e *env) inMnt(root string, args ...string) *exec.Cmd {
	c := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /mnt && exec "$@"`, root, rewindBin}, args...)...)
	c.Env = e.environ()
	c.Dir = e.dir
	return c
}

// TestBackupDryRun: a dry run leaves every file of the repository as it
// was (no pack, index, snapshot or lock), and what it reports is exactly
// what the backup that follows reports: files and directories new,
// changed and unchanged, bytes read, new data and tree blobs and their
// plain size. With -v it names each file that would be new (+) or
// changed (M). It runs on a first backup, an unchanged one, and one with
// a new file, an edited file, a touched file and a copy of known data.
func TestBackupDryRun(t *testing.T) {
	if !testutil.IsRoot() {
		if testutil.CI() {
			t.Fatal("needs root, to mount in a namespace of its own")
		}
		t.Skip("needs root")
	}
	testutil.RequireTool(t, "unshare")
	e := newRepo(t, 0)
	root := e.path("root")
	data := filepath.Join(root, "data")
	big := randomBytes(1, 3<<20)
	writeFiles(t, data, map[string][]byte{
		"big": big, "big-copy": big, "zeros": make([]byte, 1<<20),
		"a/one": randomBytes(2, 1000), "a/two": randomBytes(3, 5000), "b/c/three": randomBytes(4, 70000),
	})
	run := func(args ...string) result {
		t.Helper()
		r := e.exec(e.inMnt(root, args...))
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
		return r
	}
	step := func(name string, wantChanges []string) {
		t.Helper()
		before := dirState(t, e.path("repo"))
		dr := run("backup", "--dry-run", "--json", "-v", "/mnt/data")
		if after := dirState(t, e.path("repo")); !maps.Equal(before, after) {
			t.Fatalf("%s: the dry run changed the repository's files", name)
		}
		lines := jsonLines(t, dr)
		var changes []string
		for _, l := range lines[:len(lines)-1] {
			switch l.obj["message_type"] {
			case "change":
				var c jsonChange
				checkDoc(t, "diff.change", l.raw, &c)
				changes = append(changes, c.Modifier+" "+c.Path)
			case "status":
			default:
				t.Errorf("%s: undocumented line %s", name, l.raw)
			}
		}
		slices.Sort(changes)
		if !slices.Equal(changes, wantChanges) {
			t.Errorf("%s: dry run names\n%q\nwant\n%q", name, changes, wantChanges)
		}
		var d jsonDryRun
		checkDoc(t, "backup.dryrun", lines[len(lines)-1].raw, &d)
		if !d.DryRun || d.MessageType != "summary" {
			t.Errorf("%s: dry run summary %s", name, lines[len(lines)-1].raw)
		}
		s := checkBackupJSON(t, run("backup", "--json", "/mnt/data"))
		got := []int64{d.FilesNew, d.FilesChanged, d.FilesUnchanged, d.DirsNew, d.DirsChanged, d.DirsUnchanged,
			d.TotalFiles, d.TotalBytes, d.BytesRead, d.DataBlobs, d.TreeBlobs, d.DataAdded}
		want := []int64{s.FilesNew, s.FilesChanged, s.FilesUnchanged, s.DirsNew, s.DirsChanged, s.DirsUnchanged,
			s.TotalFiles, s.TotalBytes, s.BytesRead, s.DataBlobs, s.TreeBlobs, s.DataAdded}
		if !slices.Equal(got, want) || d.Parent != s.Parent {
			t.Errorf("%s: dry run reports\n%v (parent %s)\nthe backup\n%v (parent %s)", name, got, d.Parent, want, s.Parent)
		}
	}
	var all []string
	for _, p := range []string{"a/one", "a/two", "b/c/three", "big", "big-copy", "zeros"} {
		all = append(all, "+ /mnt/data/"+p)
	}
	step("first", all)
	step("unchanged", nil)

	edited := bytes.Clone(big)
	edited[1<<20] ^= 0xff
	writeFiles(t, data, map[string][]byte{"big": edited, "new": randomBytes(9, 40000), "b/copy-of-one": randomBytes(2, 1000)})
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(data, "a/two"), future, future); err != nil {
		t.Fatal(err)
	}
	step("changes", []string{"+ /mnt/data/b/copy-of-one", "+ /mnt/data/new", "M /mnt/data/a/two", "M /mnt/data/big"})

	// The text summary says it is a dry run; -v names the files.
	writeFiles(t, data, map[string][]byte{"later": []byte("later")})
	r := run("backup", "-n", "-v", "/mnt/data")
	out := string(r.stdout)
	for _, w := range []string{"+ /mnt/data/later\n", "Would read 5 B of ", "nothing was written to the repository"} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run text does not say %q:\n%s", w, out)
		}
	}
}

// TestBackupDryRunNoRepository: a dry run creates no default repository.
func TestBackupDryRunNoRepository(t *testing.T) {
	e := newEnv(t)
	writeFiles(t, e.dir, map[string][]byte{"src/f": []byte("f")})
	r := e.expectCode(10, "backup", "--dry-run", e.path("src"))
	if !strings.Contains(string(r.stderr), "does not exist") {
		t.Errorf("%v", r)
	}
	if _, err := os.Stat(filepath.Join(e.vars["XDG_DATA_HOME"], "rewind")); !os.IsNotExist(err) {
		t.Errorf("a dry run created the default repository's folder (%v)", err)
	}
}

// TestBackupDryRunUnreadable: as for a backup, files the dry run cannot
// read are named, and it exits 3; still nothing is written.
func TestBackupDryRunUnreadable(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	locked := unreadableSource(t, src)
	asNobody(t, e, "snapshots") // hands the repository to nobody first
	before := dirState(t, e.path("repo"))
	r := asNobody(t, e, "backup", "--dry-run", src)
	if r.code != 3 {
		t.Fatalf("want exit 3: %v", r)
	}
	for _, name := range locked {
		if !strings.Contains(string(r.stderr), filepath.Join(src, name)) {
			t.Errorf("dry run does not name %s: %v", name, r)
		}
	}
	if !strings.Contains(string(r.stderr), "dry run: 7 files could not be read") {
		t.Errorf("exit message: %v", r)
	}
	if after := dirState(t, e.path("repo")); !maps.Equal(before, after) {
		t.Errorf("the dry run changed the repository's files")
	}
}
