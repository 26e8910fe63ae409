package cli

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func TestErrorCountsString(t *testing.T) {
	for _, tt := range []struct {
		c    ErrorCounts
		want string
	}{
		{ErrorCounts{Files: 1}, "1 file"},
		{ErrorCounts{Files: 2}, "2 files"},
		{ErrorCounts{Directories: 1}, "1 directory"},
		{ErrorCounts{Directories: 3}, "3 directories"},
		{ErrorCounts{Other: 1}, "1 other entry"},
		{ErrorCounts{Files: 1, Directories: 1}, "1 file and 1 directory"},
		{ErrorCounts{Files: 2, Other: 2}, "2 files and 2 other entries"},
		{ErrorCounts{Files: 1, Directories: 2, Other: 1}, "1 file, 2 directories and 1 other entry"},
		{ErrorCounts{}, "no entries"},
	} {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.c, got, tt.want)
		}
	}
}

// TestUnreadableKinds backs up, as user nobody, trees where some files and
// some directories cannot be read, and checks that every message counts
// and names them by kind: the exit message ("1 file and 1 directory",
// never "2 files" for a directory), each stderr line, the JSON error
// events, the summary's errors and error_counts, and the snapshot.
func TestUnreadableKinds(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root, to run rewind as user nobody on entries nobody cannot read (root can read any)")
	}
	t.Parallel()
	uid, gid := nobodyIDs()
	base := sharedTempDir(t)
	cases := []struct {
		name        string
		files, dirs []string // made unreadable
		message     string
		counts      jsonErrorCounts
	}{
		{"one-each", []string{"locked.db"}, []string{"private"}, "1 file and 1 directory", jsonErrorCounts{Files: 1, Directories: 1}},
		{"dirs-only", nil, []string{"a-dir", "z-dir"}, "2 directories", jsonErrorCounts{Directories: 2}},
		{"files-and-dirs", []string{"k1", "k2", "sub/k3"}, []string{"sub/closed"}, "3 files and 1 directory", jsonErrorCounts{Files: 3, Directories: 1}},
	}
	for _, c := range cases {
		src := filepath.Join(base, c.name)
		files := map[string][]byte{"readable.txt": []byte("anyone\n"), "sub/also.txt": []byte("fine\n")}
		for _, f := range c.files {
			files[f] = []byte("not for nobody: " + f)
		}
		for _, d := range c.dirs {
			files[filepath.Join(d, "inside")] = []byte("below " + d)
		}
		writeFiles(t, src, files)
		for _, p := range append(append([]string(nil), c.files...), c.dirs...) {
			if err := os.Chmod(filepath.Join(src, p), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := newEnv(t)
	e.dir = base
	for _, d := range []string{"home", "xdg"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.vars["HOME"], e.vars["XDG_DATA_HOME"] = filepath.Join(base, "home"), filepath.Join(base, "xdg")
	initRepo(t, filepath.Join(base, "repo"), testPassword, 0)
	for _, d := range []string{"home", "xdg", "repo"} {
		chownTree(t, filepath.Join(base, d), uid, gid)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary's directory is private to root: run a copy.
	bin, err := os.ReadFile(rewindBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "rewind"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	e = e.with("REWIND_REPOSITORY", filepath.Join(base, "repo"), "REWIND_PASSWORD", testPassword)
	asNobody := func(args ...string) result {
		t.Helper()
		c := e.cmd(args...)
		c.Path = filepath.Join(base, "rewind")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		return e.exec(c)
	}

	for _, c := range cases {
		src := filepath.Join(base, c.name)
		kinds := map[string]string{}
		for _, f := range c.files {
			kinds[filepath.Join(src, f)] = "file"
		}
		for _, d := range c.dirs {
			kinds[filepath.Join(src, d)] = "directory"
		}

		r := asNobody("backup", src)
		if r.code != ExitPartial {
			t.Fatalf("%s: want exit 3, got %v", c.name, r)
		}
		if want := "but " + c.message + " could not be read"; !strings.Contains(string(r.stderr), want) {
			t.Errorf("%s: stderr does not say %q:\n%s", c.name, want, r.stderr)
		}
		for p, kind := range kinds {
			if want := "error: " + kind + " " + p + ": "; !strings.Contains(string(r.stderr), want) {
				t.Errorf("%s: stderr does not say %q:\n%s", c.name, want, r.stderr)
			}
		}

		r = asNobody("backup", "--json", "--force", src)
		if r.code != ExitPartial {
			t.Fatalf("%s: want exit 3, got %v", c.name, r)
		}
		sum := checkBackupJSON(t, r)
		if sum.ErrorCounts != c.counts {
			t.Errorf("%s: error_counts %+v, want %+v", c.name, sum.ErrorCounts, c.counts)
		}
		checkKinds(t, c.name+" summary", sum.Errors, kinds)
		var events []jsonKindError
		for _, l := range jsonLines(t, r) {
			if l.obj["message_type"] == "error" {
				var ev jsonBackupError
				decodeStrict(t, l.raw, &ev)
				events = append(events, jsonKindError{Path: ev.Path, Kind: ev.Kind, Error: ev.Error})
			}
		}
		checkKinds(t, c.name+" events", events, kinds)

		var sns []jsonSnapshot
		checkDoc(t, "snapshot", asNobody("snapshots", "--json", "--path", src).stdout, &sns)
		if len(sns) != 2 {
			t.Fatalf("%s: %d snapshots of %s, want 2", c.name, len(sns), src)
		}
		for _, sn := range sns {
			checkKinds(t, c.name+" snapshot "+sn.ShortID, sn.Summary.Errors, kinds)
		}
	}
}

// checkKinds checks that errs name exactly the paths of want, each once,
// with its kind.
func checkKinds(t *testing.T, what string, errs []jsonKindError, want map[string]string) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range errs {
		kind, ok := want[e.Path]
		switch {
		case !ok || seen[e.Path]:
			t.Errorf("%s: unexpected error %+v", what, e)
		case e.Kind != kind:
			t.Errorf("%s: %s is a %q, want %q", what, e.Path, e.Kind, kind)
		}
		seen[e.Path] = true
	}
	if len(seen) != len(want) {
		t.Errorf("%s: errors %+v, want the paths of %v", what, errs, want)
	}
}

// nobodyIDs returns the user and group IDs of nobody.
func nobodyIDs() (uid, gid uint32) {
	uid, gid = 65534, 65534
	if u, err := user.Lookup("nobody"); err == nil {
		if n, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			uid = uint32(n)
		}
		if n, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(n)
		}
	}
	return uid, gid
}

// chownTree gives everything below dir, dir included, to uid and gid.
func chownTree(t *testing.T, dir string, uid, gid uint32) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
	if err != nil {
		t.Fatal(err)
	}
}
