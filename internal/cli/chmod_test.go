package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// repoModes returns the modes of a repository's config file, its data
// folder and one pack, and fails unless every file and folder has the
// same mode as those.
func repoModes(t *testing.T, repo string) (file, dir fs.FileMode) {
	t.Helper()
	file, dir = fs.FileMode(0), fs.FileMode(0)
	err := filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		m := fi.Mode() & (fs.ModePerm | fs.ModeSetgid)
		want := &file
		if d.IsDir() {
			want = &dir
		}
		if *want == 0 {
			*want = m
		}
		if m != *want {
			t.Errorf("%s: mode %v, others %v", path, m, *want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return file, dir
}

// TestInitGroupAccess: init --group-access makes a repository its group
// may write, backups keep it so, and chmod switches it back and forth.
func TestInitGroupAccess(t *testing.T) {
	e := newEnv(t)
	repo := e.path("repo")
	e = e.with("REWIND_REPOSITORY", repo, "REWIND_PASSWORD", testPassword)
	r := e.mustRun("init", "--group-access", "--group", strconv.Itoa(os.Getegid()))
	if !strings.Contains(string(r.stdout), "access: group read-write") {
		t.Errorf("init: %s", r.stdout)
	}
	if f, d := repoModes(t, repo); f != 0o440 || d != 0o770|fs.ModeSetgid {
		t.Fatalf("after init --group-access: files %v folders %v", f, d)
	}
	src := e.path("src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	if f, d := repoModes(t, repo); f != 0o440 || d != 0o770|fs.ModeSetgid {
		t.Fatalf("after a backup: files %v folders %v", f, d)
	}
	e.mustRun("chmod", "--group-read")
	if f, d := repoModes(t, repo); f != 0o440 || d != 0o750|fs.ModeSetgid {
		t.Fatalf("after chmod --group-read: files %v folders %v", f, d)
	}
	e.mustRun("chmod", "--private")
	e.mustRun("backup", src)
	if f, d := repoModes(t, repo); f != 0o400 || d != 0o700 {
		t.Fatalf("after chmod --private: files %v folders %v", f, d)
	}
	e.mustRun("check")

	for _, bad := range [][]string{{"chmod"}, {"chmod", "--private", "--group-access"}, {"chmod", "--private", "--group", "0"}, {"chmod", "--group", "0"}} {
		if r := e.run(bad...); r.code == 0 || len(r.stderr) == 0 {
			t.Errorf("%v: %v", bad, r)
		}
	}
	if r := e.run("chmod", "--group-access", "--group", "no-such-group-here"); r.code == 0 || !strings.Contains(string(r.stderr), "no-such-group-here") {
		t.Errorf("unknown group: %v", r)
	}
}
