package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// passwordSetting is one way to give rewind a password in a test: as a
// flag or an environment variable, pointing at the right password or a
// wrong one.
type passwordSetting struct {
	name string
	flag bool
	// apply adds the setting to args or env, giving it password pw.
	apply func(e *env, args []string, pw string) (*env, []string)
}

func passwordSettingsForTest(t *testing.T, e *env) []passwordSetting {
	file := func(pw string) string {
		f, err := os.CreateTemp(e.dir, "pw-*")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(pw + "\n"); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}
	command := func(pw string) string { return fmt.Sprintf("printf '%%s\\n' '%s'", pw) }
	return []passwordSetting{
		{"--password-file", true, func(e *env, args []string, pw string) (*env, []string) {
			return e, append(args, "--password-file", file(pw))
		}},
		{"--password-command", true, func(e *env, args []string, pw string) (*env, []string) {
			return e, append(args, "--password-command", command(pw))
		}},
		{"REWIND_PASSWORD", false, func(e *env, args []string, pw string) (*env, []string) {
			return e.with("REWIND_PASSWORD", pw), args
		}},
		{"REWIND_PASSWORD_FILE", false, func(e *env, args []string, pw string) (*env, []string) {
			return e.with("REWIND_PASSWORD_FILE", file(pw)), args
		}},
		{"REWIND_PASSWORD_COMMAND", false, func(e *env, args []string, pw string) (*env, []string) {
			return e.with("REWIND_PASSWORD_COMMAND", command(pw)), args
		}},
	}
}

// TestPasswordPrecedence gives the password in every pair of ways, one
// right and one wrong, both orders. A flag wins over a variable; two
// flags, or two variables, are refused with both named, whatever they
// hold. It used to be that REWIND_PASSWORD silently won over an explicit
// --password-file.
func TestPasswordPrecedence(t *testing.T) {
	t.Parallel()
	base := newRepo(t, 0).without("REWIND_PASSWORD")
	settings := passwordSettingsForTest(t, base)
	for i, a := range settings {
		for j, b := range settings {
			if i == j || (a.flag == b.flag && j < i) {
				continue // same-level pairs are refused in either order: once is enough
			}
			// a holds the right password, b a wrong one.
			e, args := a.apply(base, []string{"snapshots"}, testPassword)
			e, args = b.apply(e, args, "wrong "+b.name)
			r := e.run(args...)
			switch {
			case a.flag == b.flag:
				if r.code != ExitFatal || !strings.Contains(string(r.stderr), a.name) || !strings.Contains(string(r.stderr), b.name) {
					t.Errorf("%s with %s: want exit 1 naming both; %v", a.name, b.name, r)
				}
			case a.flag:
				if r.code != ExitOK {
					t.Errorf("the right password in %s did not win over a wrong one in %s: %v", a.name, b.name, r)
				}
			default:
				if r.code != ExitBadPassword || !strings.Contains(string(r.stderr), "came from "+b.name) {
					t.Errorf("a wrong password in %s should win over the right one in %s, and be named: %v", b.name, a.name, r)
				}
			}
		}
	}
}

// TestSourcePasswordPrecedence: the source repository of copy follows the
// same rule: --from-password-file wins over REWIND_FROM_PASSWORD.
func TestSourcePasswordPrecedence(t *testing.T) {
	t.Parallel()
	src := newRepo(t, 0)
	data := src.path("data")
	writeFiles(t, data, map[string][]byte{"a": []byte("alpha"), "d/b": []byte("beta")})
	src.mustRun("backup", data)
	dstRepo := src.path("dst")
	dst := src.with("REWIND_REPOSITORY", dstRepo)
	dst.mustRun("init", "--repo", dstRepo)
	pw := src.path("from-pw")
	if err := os.WriteFile(pw, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst = dst.with("REWIND_FROM_REPOSITORY", src.path("repo"), "REWIND_FROM_PASSWORD", "not the source's password")
	dst.mustRun("copy", "--from-password-file", pw)
	r := dst.expectCode(ExitFatal, "copy", "--from-password-file", pw, "--from-password-command", "echo x")
	if !strings.Contains(string(r.stderr), "--from-password-file") || !strings.Contains(string(r.stderr), "--from-password-command") {
		t.Errorf("two source password flags: %v", r)
	}
	r = dst.expectCode(ExitBadPassword, "copy")
	if !strings.Contains(string(r.stderr), "came from REWIND_FROM_PASSWORD") {
		t.Errorf("a wrong source password should name where it came from: %v", r)
	}
}

// TestPasswordFileProblems: a password file that is empty, blank,
// missing or not a file stops rewind with exit 1 and a message naming
// the file and saying what to do. An empty file used to be taken as the
// empty password and reported as a wrong password (exit 12).
func TestPasswordFileProblems(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0).without("REWIND_PASSWORD")
	contents := map[string]string{
		"empty":            "",
		"newline":          "\n",
		"spaces":           "  \t ",
		"blank lines":      "\n \n\n",
		"blank first line": "\n" + testPassword + "\n",
	}
	for what, content := range contents {
		f := e.path("pw-" + strings.ReplaceAll(what, " ", "-"))
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, run := range []func() result{
			func() result { return e.run("snapshots", "--password-file", f) },
			func() result { return e.with("REWIND_PASSWORD_FILE", f).run("snapshots") },
			func() result { return e.with("REWIND_PASSWORD_FILE", f).run("init", "--repo", e.path("new-"+what)) },
		} {
			r := run()
			checkPasswordFileError(t, what, r, f, "first line")
		}
		if _, err := os.Stat(e.path("new-" + what)); err == nil {
			t.Errorf("%s: init made a repository with a password file that holds none", what)
		}
	}
	missing := e.path("no-such-file")
	checkPasswordFileError(t, "missing", e.run("snapshots", "--password-file", missing), missing, "does not exist")
	checkPasswordFileError(t, "a folder", e.run("snapshots", "--password-file", e.dir), e.dir, "cannot be read")
	pw := e.path("new-pw")
	if err := os.WriteFile(pw, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.with("REWIND_PASSWORD", testPassword).run("key", "add", "--new-password-file", pw)
	checkPasswordFileError(t, "new password file", r, pw, "first line")
}

// TestDefaultPasswordFileEmpty: the default repository's password file,
// emptied by accident, is named as empty rather than a wrong password,
// and backup does not make a repository with an empty password.
func TestDefaultPasswordFileEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	pwFile := e.path("xdg", "rewind", "repo.password")
	if err := os.MkdirAll(e.path("xdg", "rewind"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	checkPasswordFileError(t, "empty default, first backup", e.run("backup", src), pwFile, "first line")
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	if err := os.WriteFile(pwFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkPasswordFileError(t, "emptied default", e.run("snapshots"), pwFile, "first line")
}

func checkPasswordFileError(t *testing.T, what string, r result, file, advice string) {
	t.Helper()
	stderr := string(r.stderr)
	switch {
	case r.code != ExitFatal:
		t.Errorf("%s: want exit 1: %v", what, r)
	case strings.Contains(stderr, "wrong password"):
		t.Errorf("%s: reported as a wrong password: %v", what, r)
	case !strings.Contains(stderr, file) || !strings.Contains(stderr, advice):
		t.Errorf("%s: the message should name %s and say %q: %v", what, file, advice, r)
	}
}

// TestPasswordCommandProblems runs password commands that hang, fail and
// print nothing. A hanging one used to hang rewind for ever.
func TestPasswordCommandProblems(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0).without("REWIND_PASSWORD")
	hang := "sleep 600"
	r := e.expectCode(ExitFatal, "snapshots", "--password-command", hang, "--password-timeout", "300ms")
	for _, want := range []string{hang, "did not finish within 300ms", "--password-timeout"} {
		if !strings.Contains(string(r.stderr), want) {
			t.Errorf("hanging command: no %q in %v", want, r)
		}
	}
	r = e.with("REWIND_PASSWORD_COMMAND", hang, "REWIND_PASSWORD_TIMEOUT", "250ms").expectCode(ExitFatal, "snapshots")
	if !strings.Contains(string(r.stderr), "did not finish within 250ms") {
		t.Errorf("REWIND_PASSWORD_TIMEOUT not honoured: %v", r)
	}
	// The flag wins over the variable, here too.
	r = e.with("REWIND_PASSWORD_TIMEOUT", "1h").expectCode(ExitFatal, "snapshots", "--password-command", hang, "--password-timeout", "200ms")
	if !strings.Contains(string(r.stderr), "within 200ms") {
		t.Errorf("--password-timeout should win over REWIND_PASSWORD_TIMEOUT: %v", r)
	}
	r = e.with("REWIND_PASSWORD_TIMEOUT", "soon").expectCode(ExitFatal, "snapshots", "--password-command", "echo x")
	if !strings.Contains(string(r.stderr), "REWIND_PASSWORD_TIMEOUT") {
		t.Errorf("a bad REWIND_PASSWORD_TIMEOUT should be named: %v", r)
	}

	fails := "echo 'secret store locked' >&2; exit 4"
	r = e.expectCode(ExitFatal, "snapshots", "--password-command", fails)
	for _, want := range []string{fails, "exit status 4", "secret store locked"} {
		if !strings.Contains(string(r.stderr), want) {
			t.Errorf("failing command: no %q in %v", want, r)
		}
	}
	for _, silent := range []string{"true", "printf '\\n\\n'"} {
		r = e.expectCode(ExitFatal, "snapshots", "--password-command", silent)
		if !strings.Contains(string(r.stderr), "printed no password") || strings.Contains(string(r.stderr), "wrong password") {
			t.Errorf("command printing nothing (%s): %v", silent, r)
		}
	}
}

// TestPasswordFileUnreadable runs rewind as an unprivileged user on a
// password file only root can read: it says the file cannot be read and
// what to do, with exit 1, and creates nothing.
func TestPasswordFileUnreadable(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	// A folder the unprivileged user can enter, holding a copy of the
	// binary and root's password file.
	dir, err := os.MkdirTemp("", "rewind-pw-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "rewind")
	b, err := os.ReadFile(rewindBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "root-only.pw")
	if err := os.WriteFile(pw, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	var stderr bytes.Buffer
	// A binary just written may be "busy" for a moment: a process forked
	// meanwhile by a parallel test holds it open for writing until it
	// execs (golang.org/issue/22315). Try again then.
	for try := 0; ; try++ {
		cmd := exec.Command(bin, "init", "--repo", repo, "--password-file", pw)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		stderr.Reset()
		cmd.Stderr = &stderr
		err = cmd.Run()
		if !errors.Is(err, syscall.ETXTBSY) || try == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitFatal {
		t.Fatalf("want exit 1, got %v: %s", err, stderr.String())
	}
	for _, want := range []string{pw, "cannot be read", "permission denied", "permissions"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no %q in %q", want, stderr.String())
		}
	}
	if _, err := os.Stat(repo); err == nil {
		t.Error("init made a repository without a password")
	}
}
