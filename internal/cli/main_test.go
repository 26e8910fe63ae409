package cli

// The tests of this package run the real rewind binary, built once in
// TestMain, as a subprocess with a clean environment: what they check is
// what a user or a script sees (stdout, stderr, exit status, files on
// disk). Repositories that a test only needs as a fixture are created in
// process with cheap argon2id parameters, so that each run of the binary
// does not pay ~0.3 s for the default key derivation; the default
// repository and the key commands go through the binary and pay it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
)

// rewindBin is the binary under test, built by TestMain.
var rewindBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rewind-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rewindBin = filepath.Join(dir, "rewind")
	build := exec.Command("go", "build", "-o", rewindBin, "./cmd/rewind")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build rewind: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// moduleRoot finds the directory holding go.mod above the working
// directory (go test runs in the package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// testPassword opens the repositories made by newRepo.
const testPassword = "correct horse battery staple"

// env is a sandbox for running rewind: its own HOME and XDG_DATA_HOME
// inside a temporary directory, and nothing else of the caller's
// environment but PATH.
type env struct {
	t    *testing.T
	dir  string
	vars map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, vars: map[string]string{
		"PATH":          os.Getenv("PATH"),
		"HOME":          filepath.Join(dir, "home"),
		"XDG_DATA_HOME": filepath.Join(dir, "xdg"),
		"TZ":            "UTC",
	}}
	for _, d := range []string{"home", "xdg"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// with returns a copy of e with more variables set, given as name,
// value pairs.
func (e *env) with(kv ...string) *env {
	c := &env{t: e.t, dir: e.dir, vars: map[string]string{}}
	for k, v := range e.vars {
		c.vars[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c.vars[kv[i]] = kv[i+1]
	}
	return c
}

// without returns a copy of e without the named variables.
func (e *env) without(names ...string) *env {
	c := e.with()
	for _, n := range names {
		delete(c.vars, n)
	}
	return c
}

func (e *env) environ() []string {
	var out []string
	for k, v := range e.vars {
		out = append(out, k+"="+v)
	}
	return out
}

// path returns a path inside the sandbox.
func (e *env) path(elem ...string) string { return filepath.Join(append([]string{e.dir}, elem...)...) }

// result is what one run of the binary did.
type result struct {
	args           []string
	stdout, stderr []byte
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("rewind %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cmd prepares a run of the binary; stdin is empty (not a terminal).
func (e *env) cmd(args ...string) *exec.Cmd {
	c := exec.Command(rewindBin, args...)
	c.Env = e.environ()
	c.Dir = e.dir
	return c
}

// exec runs c and collects its result.
func (e *env) exec(c *exec.Cmd) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	res := result{args: c.Args[1:], stdout: out.Bytes(), stderr: errb.Bytes()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run rewind %v: %v", c.Args[1:], err)
	}
	return res
}

// run runs rewind with args and returns what it did, whatever the exit
// status.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.exec(e.cmd(args...))
}

// mustRun runs rewind and fails the test unless it exits 0.
func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("unexpected failure: %v", r)
	}
	return r
}

// expectCode runs rewind and fails the test unless it exits with code.
func (e *env) expectCode(code int, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != code {
		e.t.Fatalf("want exit %d, got %v", code, r)
	}
	return r
}

// newRepo creates a repository at e.path("repo") with testPassword and
// cheap key derivation, and points REWIND_REPOSITORY and REWIND_PASSWORD
// at it. packSize 0 takes the default.
func newRepo(t *testing.T, packSize int) *env {
	t.Helper()
	e := newEnv(t)
	dir := e.path("repo")
	initRepo(t, dir, testPassword, packSize)
	return e.with("REWIND_REPOSITORY", dir, "REWIND_PASSWORD", testPassword)
}

// initRepo creates a repository in dir, as `rewind init` does but with
// cheap argon2id parameters.
func initRepo(t *testing.T, dir, password string, packSize int) {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(ctx, be, []byte(password), repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// randomBytes returns n incompressible bytes determined by seed.
func randomBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// writeFiles creates files (paths relative to dir, "/"-separated) with
// the given contents, and their parent directories.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readFiles returns every regular file below dir by relative path.
func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameFiles fails the test unless got holds exactly the regular files of
// want, byte for byte.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	w, g := readFiles(t, want), readFiles(t, got)
	for name, data := range w {
		gd, ok := g[name]
		switch {
		case !ok:
			t.Errorf("%s: missing from %s", name, got)
		case !bytes.Equal(gd, data):
			t.Errorf("%s: restored content differs (%d bytes, want %d)", name, len(gd), len(data))
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("%s: restored but not in the source", name)
		}
	}
}

// jsonLine is one line of an event stream: its bytes and its generic
// decoding.
type jsonLine struct {
	raw []byte
	obj map[string]any
}

// jsonLines splits stdout into JSON objects, one per line, failing the
// test on any line that is not a JSON object (human text on stdout).
func jsonLines(t *testing.T, r result) []jsonLine {
	t.Helper()
	if len(r.stdout) == 0 {
		return nil
	}
	if !bytes.HasSuffix(r.stdout, []byte("\n")) {
		t.Fatalf("stdout does not end with a newline: %v", r)
	}
	var out []jsonLine
	for i, line := range bytes.Split(bytes.TrimSuffix(r.stdout, []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("stdout line %d is not a JSON object (%v): %q\n%v", i+1, err, line, r)
		}
		out = append(out, jsonLine{raw: line, obj: m})
	}
	return out
}

// decodeStrict decodes one JSON document into v, refusing fields v does
// not declare and anything after the document.
func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, data)
	}
	if d.More() {
		t.Fatalf("decode %T: more than one JSON document:\n%s", v, data)
	}
}
