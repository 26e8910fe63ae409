package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFirstRunDefaultRepository is a new user's first run: no --repo and
// no password anywhere. The first backup creates the default repository
// with a generated password file, the second reuses both, and the backups
// come back byte for byte.
func TestFirstRunDefaultRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{
		"notes.txt":       []byte("first run\n"),
		"data/big.bin":    randomBytes(1, 300<<10),
		"data/empty":      nil,
		"deep/a/b/c/leaf": []byte("leaf\n"),
	})
	repoDir := e.path("xdg", "rewind", "repo")
	pwFile := e.path("xdg", "rewind", "repo.password")

	// Before the first backup there is nothing to list, and the message
	// says how the default repository comes to exist.
	r := e.expectCode(ExitNoRepo, "snapshots")
	if !bytes.Contains(r.stderr, []byte(repoDir)) || !bytes.Contains(r.stderr, []byte("rewind backup")) {
		t.Errorf("no-repository message should name %s and `rewind backup`: %v", repoDir, r)
	}

	r = e.mustRun("backup", src)
	if _, err := os.Stat(filepath.Join(repoDir, "config")); err != nil {
		t.Fatalf("default repository not created: %v", err)
	}
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatalf("password file not created: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("password file has mode %v, want 0600", fi.Mode().Perm())
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(bytes.TrimSpace(pw)); n < 32 {
		t.Errorf("generated password has %d characters; want a strong one", n)
	}
	stderr := string(r.stderr)
	if !strings.Contains(stderr, pwFile) {
		t.Errorf("first backup does not say where the password file is: %v", r)
	}
	if !strings.Contains(stderr, "without it the backups cannot be read") {
		t.Errorf("first backup does not say that losing the password file loses the backups: %v", r)
	}
	if !strings.Contains(stderr, repoDir) {
		t.Errorf("first backup does not say where the repository is: %v", r)
	}

	// The second backup reuses the repository and the password.
	writeFiles(t, src, map[string][]byte{"notes.txt": []byte("second run\n")})
	r = e.mustRun("backup", src)
	if strings.Contains(string(r.stderr), "Created") {
		t.Errorf("second backup created something again: %v", r)
	}
	if pw2, _ := os.ReadFile(pwFile); !bytes.Equal(pw, pw2) {
		t.Error("second backup rewrote the password file")
	}

	r = e.mustRun("snapshots")
	if !strings.Contains(string(r.stdout), "2 snapshots") {
		t.Errorf("snapshots should list both backups: %v", r)
	}
	var list []map[string]any
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &list); err != nil || len(list) != 2 {
		t.Fatalf("snapshots --json: %d entries, %v", len(list), err)
	}

	target := e.path("restore")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, src, filepath.Join(target, src))

	// Without XDG_DATA_HOME the default repository is in
	// ~/.local/share/rewind (which does not exist in this sandbox).
	r = e.without("XDG_DATA_HOME").expectCode(ExitNoRepo, "snapshots")
	if want := e.path("home", ".local", "share", "rewind", "repo"); !bytes.Contains(r.stderr, []byte(want)) {
		t.Errorf("without XDG_DATA_HOME the default repository should be %s: %v", want, r)
	}
}
