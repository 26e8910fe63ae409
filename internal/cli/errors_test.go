package cli

import (
	"encoding/json"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestWrongPassword: every command that opens the repository exits 12
// with a message that says what is wrong and where passwords come from.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	e.mustRun("backup", src)
	bad := e.with("REWIND_PASSWORD", "not the password")
	for _, args := range [][]string{
		{"snapshots"},
		{"backup", src},
		{"restore", "latest", "--target", e.path("out")},
		{"ls", "latest"},
		{"check"},
		{"key", "list"},
		{"snapshots", "--json"},
	} {
		r := bad.expectCode(ExitBadPassword, args...)
		if !strings.Contains(string(r.stderr), "wrong password") || !strings.Contains(string(r.stderr), "REWIND_PASSWORD") {
			t.Errorf("unclear wrong-password message: %v", r)
		}
		if len(r.stdout) != 0 {
			t.Errorf("output on stdout despite the failure: %v", r)
		}
	}
	if _, err := os.Stat(e.path("out")); err == nil {
		t.Error("restore with a wrong password created its target")
	}
}

// TestPasswordSources: the password can come from REWIND_PASSWORD, a
// file (flag or environment) or a command; with none and no terminal,
// rewind says what to set.
func TestPasswordSources(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	pwFile := e.path("pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	none := e.without("REWIND_PASSWORD")
	none.mustRun("snapshots", "--password-file", pwFile)
	none.with("REWIND_PASSWORD_FILE", pwFile).mustRun("snapshots")
	none.mustRun("snapshots", "--password-command", "cat "+pwFile)
	none.with("REWIND_PASSWORD_COMMAND", "echo '"+testPassword+"'").mustRun("snapshots")
	// An empty REWIND_PASSWORD is no password, not the empty password.
	for _, n := range []*env{none, e.with("REWIND_PASSWORD", "")} {
		r := n.expectCode(ExitFatal, "snapshots")
		if !strings.Contains(string(r.stderr), "no password given") {
			t.Errorf("without a password rewind should say what to set: %v", r)
		}
	}
	r := none.expectCode(ExitFatal, "snapshots", "--password-command", "exit 3")
	if !strings.Contains(string(r.stderr), "password command") {
		t.Errorf("a failing password command should be named: %v", r)
	}
}

// TestEmptyPasswordVariableWithDefaultRepository: REWIND_PASSWORD set but
// empty (REWIND_PASSWORD=$(cat missing-file)) counts as unset, so the
// default repository's generated password keeps working. It used to be
// taken as the empty password, and every command after the first backup
// failed with "wrong password".
func TestEmptyPasswordVariableWithDefaultRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t).with("REWIND_PASSWORD", "")
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	e.mustRun("backup", src)
	e.mustRun("snapshots")
}

// TestNoRepository: a --repo or REWIND_REPOSITORY that holds no
// repository exits 10 and says how to create one.
func TestNoRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t).with("REWIND_PASSWORD", testPassword)
	empty := e.path("empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	cases := []struct {
		e    *env
		args []string
	}{
		{e, []string{"snapshots", "--repo", e.path("missing")}},
		{e, []string{"snapshots", "--repo", empty}},
		{e, []string{"snapshots", "--repo", "local:" + empty, "--json"}},
		{e.with("REWIND_REPOSITORY", e.path("missing")), []string{"ls", "latest"}},
		{e.without("REWIND_PASSWORD"), []string{"restore", "latest", "--repo", empty, "--target", e.path("out")}},
		// backup never creates a repository named with --repo.
		{e, []string{"backup", "--repo", empty, src}},
	}
	for _, c := range cases {
		r := c.e.expectCode(ExitNoRepo, c.args...)
		if !strings.Contains(string(r.stderr), "no repository") || !strings.Contains(string(r.stderr), "rewind init") {
			t.Errorf("unclear no-repository message: %v", r)
		}
		if len(r.stdout) != 0 {
			t.Errorf("output on stdout despite the failure: %v", r)
		}
	}
	if _, err := os.Stat(filepath.Join(empty, "config")); err == nil {
		t.Error("a command other than init created a repository")
	}
}

// TestNewerRepositoryFormat: a repository whose clear config version is
// newer than this rewind is refused with a message to upgrade, and left
// alone.
func TestNewerRepositoryFormat(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	e.mustRun("backup", src)

	cfgPath := e.path("repo", "config")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg["version"]; !ok {
		t.Fatalf("config has no clear version field: %s", raw)
	}
	cfg["version"] = 99
	edited, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfgPath, 0o600); err != nil { // stored files are read-only
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	before := readFiles(t, e.path("repo"))
	for _, args := range [][]string{{"snapshots"}, {"backup", src}, {"check"}, {"restore", "latest", "--target", e.path("out")}} {
		r := e.run(args...)
		if r.code == 0 {
			t.Fatalf("a repository of format 99 was accepted: %v", r)
		}
		msg := string(r.stderr)
		if !strings.Contains(msg, "upgrade") || !strings.Contains(msg, "99") {
			t.Errorf("the message should give the version and say to upgrade rewind: %v", r)
		}
	}
	after := readFiles(t, e.path("repo"))
	if len(after) != len(before) {
		t.Errorf("the repository changed: %d files before, %d after", len(before), len(after))
	}
}

// TestUnreadableSourceFile: a file the user cannot read is named, the
// snapshot is still saved and lists it, and the exit status is 3. Root
// reads everything, so the binary runs as nobody.
func TestUnreadableSourceFile(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root, to run rewind as user nobody on a file nobody cannot read (root can read any file)")
	}
	t.Parallel()
	uid, gid := uint32(65534), uint32(65534)
	if u, err := user.Lookup("nobody"); err == nil {
		if n, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			uid = uint32(n)
		}
		if n, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(n)
		}
	}
	// t.TempDir is private to root: work in a directory nobody can
	// reach, with a copy of the binary.
	base := sharedTempDir(t)
	bin, err := os.ReadFile(rewindBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "rewind"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.dir = base
	e.vars["HOME"] = filepath.Join(base, "home")
	e.vars["XDG_DATA_HOME"] = filepath.Join(base, "xdg")
	src := filepath.Join(base, "src")
	writeFiles(t, src, map[string][]byte{"ok.txt": []byte("readable\n"), "sub/also-ok": []byte("fine\n"), "secret": []byte("hidden\n")})
	secret := filepath.Join(src, "secret")
	if err := os.Chmod(secret, 0); err != nil {
		t.Fatal(err)
	}
	initRepo(t, filepath.Join(base, "repo"), testPassword, 0)
	for _, d := range []string{"home", "xdg"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	err = filepath.Walk(base, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
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

	r := asNobody("backup", src)
	if r.code != ExitPartial {
		t.Fatalf("want exit %d, got %v", ExitPartial, r)
	}
	if !strings.Contains(string(r.stderr), secret) || !strings.Contains(string(r.stderr), "permission denied") {
		t.Errorf("the unreadable file and the reason should be named on stderr: %v", r)
	}
	if !strings.Contains(string(r.stdout), "saved") {
		t.Errorf("the summary should say the snapshot was saved: %v", r)
	}

	// The same with --json: an error event, then the summary listing it;
	// nothing but JSON on stdout.
	r = asNobody("backup", "--json", "--force", src)
	if r.code != ExitPartial {
		t.Fatalf("want exit %d, got %v", ExitPartial, r)
	}
	sum := checkBackupJSON(t, r)
	if len(sum.Errors) != 1 || sum.Errors[0].Path != secret {
		t.Errorf("summary errors = %+v, want %s", sum.Errors, secret)
	}
	var sawError bool
	for _, l := range jsonLines(t, r) {
		if l.obj["message_type"] == "error" && l.obj["path"] == secret {
			sawError = true
		}
	}
	if !sawError {
		t.Errorf("no error event for %s: %v", secret, r)
	}

	// Both snapshots were saved, list the file and mark it.
	var sns []jsonSnapshot
	checkDoc(t, "snapshot", asNobody("snapshots", "--json").stdout, &sns)
	if len(sns) != 2 {
		t.Fatalf("want 2 snapshots, got %d", len(sns))
	}
	for _, sn := range sns {
		if sn.Summary == nil || len(sn.Summary.Errors) != 1 || sn.Summary.Errors[0].Path != secret {
			t.Errorf("snapshot %s does not list the unreadable file: %+v", sn.ShortID, sn.Summary)
		}
	}
	var node jsonNode
	checkDoc(t, "node", asNobody("ls", "--json", "latest:"+secret).stdout, &node)
	if len(node.Flags) != 1 || node.Flags[0] != "unreadable" {
		t.Errorf("ls shows the unreadable file with flags %v, want [unreadable]", node.Flags)
	}
}

// sharedTempDir makes a temporary directory that other users can reach:
// under $TMPDIR if every directory above it lets them through, else under
// /tmp. It is removed when the test ends.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	for _, parent := range []string{os.TempDir(), "/tmp"} {
		if !othersCanTraverse(parent) {
			continue
		}
		d, err := os.MkdirTemp(parent, "rewind-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	if testutil.CI() {
		t.Fatalf("neither %s nor /tmp can be reached by other users", os.TempDir())
	}
	t.Skipf("neither %s nor /tmp can be reached by other users", os.TempDir())
	return ""
}

// othersCanTraverse reports whether every directory from / to dir lets
// other users through.
func othersCanTraverse(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// TestInit: init creates a named repository that backup then uses; it
// needs --repo, a password, and an empty location.
func TestInit(t *testing.T) {
	t.Parallel()
	e := newEnv(t).with("REWIND_PASSWORD", testPassword)
	dir := e.path("repo")

	r := e.expectCode(ExitFatal, "init")
	if !strings.Contains(string(r.stderr), "--repo") {
		t.Errorf("init without --repo should say to name one: %v", r)
	}
	r = e.without("REWIND_PASSWORD").expectCode(ExitFatal, "init", "--repo", dir)
	if !strings.Contains(string(r.stderr), "no password given") {
		t.Errorf("init without a password: %v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "config")); err == nil {
		t.Fatal("init without a password created a repository")
	}

	r = e.mustRun("init", "--repo", dir)
	if !strings.Contains(string(r.stdout), "created repository") || !strings.Contains(string(r.stdout), dir) {
		t.Errorf("init should say what it created: %v", r)
	}
	keys, err := os.ReadDir(filepath.Join(dir, "keys"))
	if err != nil || len(keys) != 1 {
		t.Fatalf("init made %d key files (%v), want 1", len(keys), err)
	}
	r = e.expectCode(ExitFatal, "init", "--repo", dir)
	if !strings.Contains(string(r.stderr), "exists") {
		t.Errorf("init over a repository should be refused: %v", r)
	}
	if again, _ := os.ReadDir(filepath.Join(dir, "keys")); len(again) != 1 {
		t.Errorf("refused init left %d key files", len(again))
	}

	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	named := e.with("REWIND_REPOSITORY", dir)
	named.mustRun("backup", src)
	if _, err := os.Stat(e.path("xdg", "rewind")); err == nil {
		t.Error("a backup to a named repository touched the default one")
	}
	if got := lines(named.mustRun("ls", "latest:"+src).stdout); len(got) != 1 || got[0] != src+"/f" {
		t.Errorf("ls after init and backup: %q", got)
	}
}
