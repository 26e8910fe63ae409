package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Environment of the lock holder helper: when REWIND_TEST_HOLD_LOCK names a
// repository, the test binary does nothing but hold a lock on it (see
// holdLockMain). It is started by the tests below as a separate process.
const (
	holdLockEnv     = "REWIND_TEST_HOLD_LOCK"
	holdLockKindEnv = "REWIND_TEST_HOLD_LOCK_KIND"
)

func init() {
	// init runs before TestMain, so the helper does not build the binary.
	if dir := os.Getenv(holdLockEnv); dir != "" {
		os.Exit(holdLockMain(dir, lock.Kind(os.Getenv(holdLockKindEnv))))
	}
}

// holdLockMain takes a lock of kind on the repository in dir, prints
// "locked ID", holds the lock until its standard input is closed, then
// releases it and prints "released".
func holdLockMain(dir string, kind lock.Kind) int {
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "hold lock:", err)
		return 2
	}
	be, err := local.Open(ctx, dir)
	if err != nil {
		return fail(err)
	}
	r, err := repository.Open(ctx, be, []byte(os.Getenv("REWIND_PASSWORD")))
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	l, err := lock.Acquire(ctx, r, kind, lock.Options{Command: "lock holder"})
	if err != nil {
		return fail(err)
	}
	fmt.Printf("locked %s\n", l.ID())
	io.Copy(io.Discard, os.Stdin)
	if err := l.Release(ctx); err != nil {
		return fail(err)
	}
	fmt.Println("released")
	return 0
}

// holder is a running lock holder process.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	id    string
}

// startHolder starts a process holding a lock of kind on e's repository
// and returns once it holds it.
func startHolder(t *testing.T, e *env, kind lock.Kind) *holder {
	t.Helper()
	c := exec.Command(os.Args[0])
	c.Env = append(e.environ(), holdLockEnv+"="+e.vars["REWIND_REPOSITORY"], holdLockKindEnv+"="+string(kind))
	c.Stderr = os.Stderr
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: c, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		if h.cmd.ProcessState == nil {
			h.cmd.Process.Kill()
			h.cmd.Wait()
		}
	})
	line, err := h.out.ReadString('\n')
	if !strings.HasPrefix(line, "locked ") {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	h.id = strings.TrimSpace(strings.TrimPrefix(line, "locked "))
	return h
}

// release makes the holder release its lock and waits for it to exit.
func (h *holder) release(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	line, _ := h.out.ReadString('\n')
	if err := h.cmd.Wait(); err != nil || line != "released\n" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
}

// openTestRepo opens e's repository in process.
func openTestRepo(t *testing.T, e *env) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, e.vars["REWIND_REPOSITORY"])
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// writeLockFile stores a lock file the way another rewind process would,
// field by field as docs/FORMAT.md gives them, and returns its name.
func writeLockFile(t *testing.T, e *env, fields map[string]any) string {
	t.Helper()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	v := map[string]any{"id": newHexID(), "user": "operator", "created": now, "refreshed": now}
	for k, x := range fields {
		v[k] = x
	}
	f, err := openTestRepo(t, e).SaveJSON(context.Background(), backend.LockFile, v)
	if err != nil {
		t.Fatal(err)
	}
	return f.String()
}

func newHexID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lockDirEntries lists the repository's locks/ folder.
func lockDirEntries(t *testing.T, e *env) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.vars["REWIND_REPOSITORY"], "locks"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	return names
}

func snapshotCount(t *testing.T, e *env) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.vars["REWIND_REPOSITORY"], "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestLockedByOtherHost: a live exclusive lock of another host stops a
// backup with exit status 11 and names its holder; commands that take no
// lock still run.
func TestLockedByOtherHost(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("alpha")})
	foreign := writeLockFile(t, e, map[string]any{"kind": "exclusive", "command": "repair index",
		"host": "far-away-host", "pid": 31337, "pid_start": 99, "boot_id": "2b7c0e4e-5f7d-4c1e-9d55-1f0b6a3c8e21"})

	res := e.expectCode(ExitLocked, "backup", src)
	t.Logf("locked backup:\n%s", res.stderr)
	for _, want := range []string{"repository is locked", "exclusive", `"repair index"`, "PID 31337", "far-away-host",
		"ignored automatically", "--retry-lock", "Nothing needs unlocking by hand"} {
		if !strings.Contains(string(res.stderr), want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	if n := snapshotCount(t, e); n != 0 {
		t.Fatalf("%d snapshots stored while locked", n)
	}
	if got := lockDirEntries(t, e); len(got) != 1 || got[0] != foreign {
		t.Fatalf("locks/ holds %v, want only the foreign lock %s", got, foreign)
	}
	e.expectCode(ExitLocked, "ls", "latest")
	e.mustRun("snapshots")

	// The same lock, no longer refreshed for longer than the stale age, is
	// ignored.
	old := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	openTestRepo(t, e).Backend().Remove(context.Background(), backend.Handle{Type: backend.LockFile, Name: foreign})
	writeLockFile(t, e, map[string]any{"kind": "exclusive", "command": "repair index", "host": "far-away-host",
		"pid": 31337, "created": old, "refreshed": old})
	e.mustRun("backup", src)
	if n := snapshotCount(t, e); n != 1 {
		t.Fatalf("%d snapshots after the backup, want 1", n)
	}
}

// procIdentity reads what a lock records of process pid on this host.
func procIdentity(t *testing.T, pid int) (bootID, pidNS string, start uint64) {
	t.Helper()
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skipf("no boot ID on this system: %v", err)
	}
	pidNS, err = os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Skipf("no PID namespace link on this system: %v", err)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(boot)), pidNS, start
}

// TestDeadProcessLockDoesNotBlock: an exclusive lock left on this host by a
// process that has died is ignored at once, and removed by the next
// command that takes an exclusive lock.
func TestDeadProcessLockDoesNotBlock(t *testing.T) {
	host := "lock-test-" + newHexID()[:8]
	e := newRepo(t, 0).with("REWIND_HOSTNAME", host)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("alpha")})

	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sleeper.ProcessState == nil {
			sleeper.Process.Kill()
			sleeper.Wait()
		}
	})
	pid := sleeper.Process.Pid
	boot, ns, start := procIdentity(t, pid)
	f := writeLockFile(t, e, map[string]any{"kind": "exclusive", "command": "repair index", "host": host,
		"pid": pid, "pid_start": start, "boot_id": boot, "pid_ns": ns})

	// While the process lives, its lock holds.
	res := e.expectCode(ExitLocked, "backup", src)
	if !strings.Contains(string(res.stderr), "PID "+strconv.Itoa(pid)) {
		t.Fatalf("the holder is not named:\n%s", res.stderr)
	}

	if err := sleeper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	sleeper.Wait()
	e.mustRun("backup", src)
	if got := lockDirEntries(t, e); len(got) != 1 || got[0] != f {
		t.Fatalf("locks/ holds %v after the backup, want the dead process's lock %s only", got, f)
	}
	// An exclusive command clears it away.
	e.mustRun("repair", "index")
	if got := lockDirEntries(t, e); len(got) != 0 {
		t.Fatalf("locks/ holds %v after repair index, want nothing", got)
	}
}

// TestRetryLockWaits: with --retry-lock, a backup that finds the repository
// locked by another process waits, and runs once that process has released
// its lock.
func TestRetryLockWaits(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.txt": randomBytes(1, 100_000)})
	h := startHolder(t, e, lock.Exclusive)

	// Without --retry-lock the backup gives up at once.
	res := e.expectCode(ExitLocked, "backup", src)
	if !strings.Contains(string(res.stderr), `"lock holder"`) {
		t.Fatalf("the holder is not named:\n%s", res.stderr)
	}

	c := e.cmd("--retry-lock", "10m", "backup", src)
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	c.Stdout = &stdout
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	// Wait until rewind says it is waiting, then let the holder go.
	var errText strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		errText.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "waiting up to 10m0s") {
			break
		}
	}
	if !strings.Contains(errText.String(), "waiting") {
		t.Fatalf("rewind did not say it waits for the lock:\n%s", errText.String())
	}
	if !strings.Contains(errText.String(), "lock holder") {
		t.Fatalf("the waiting message does not name the holder:\n%s", errText.String())
	}
	if n := snapshotCount(t, e); n != 0 {
		t.Fatalf("a snapshot was stored while the repository was locked")
	}
	h.release(t)
	rest, _ := io.ReadAll(stderr)
	err = c.Wait()
	if err != nil {
		t.Fatalf("backup with --retry-lock: %v\nstderr:\n%s%s\nstdout:\n%s", err, errText.String(), rest, stdout.String())
	}
	if n := snapshotCount(t, e); n != 1 {
		t.Fatalf("%d snapshots after the waiting backup, want 1", n)
	}
	if got := lockDirEntries(t, e); len(got) != 0 {
		t.Fatalf("locks/ holds %v after both released", got)
	}
}

// TestNoLockRefusedForWriters: --no-lock is for commands that only read.
func TestNoLockRefusedForWriters(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("alpha")})
	for _, args := range [][]string{{"backup", src}, {"repair", "index"}, {"forget", "--keep-last", "1"}} {
		res := e.expectCode(ExitFatal, append([]string{"--no-lock"}, args...)...)
		if !strings.Contains(string(res.stderr), "--no-lock") {
			t.Errorf("%v: stderr does not explain the refusal:\n%s", args, res.stderr)
		}
	}
	if n := snapshotCount(t, e); n != 0 {
		t.Fatalf("a backup ran with --no-lock")
	}
}

// TestNoLockReadsReadOnlyRepository: a repository its user cannot write to
// cannot be locked, and --no-lock restores from it. As root, permissions do
// not stop writes, so the commands run as nobody.
func TestNoLockReadsReadOnlyRepository(t *testing.T) {
	base, err := os.MkdirTemp("", "rewind-readonly-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	asRoot := os.Geteuid() == 0
	const nobody = 65534

	// The binary, the repository, the target and a home, where nobody can
	// reach them.
	bin := filepath.Join(base, "rewind")
	data, err := os.ReadFile(rewindBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(base, "repo")
	initRepo(t, repo, testPassword, 0)
	e := newEnv(t).with("REWIND_REPOSITORY", repo, "REWIND_PASSWORD", testPassword)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"etc/hosts": []byte("127.0.0.1 localhost\n"), "big.bin": randomBytes(7, 300_000)})
	e.mustRun("backup", src)

	home := filepath.Join(base, "home")
	for _, d := range []string{home, filepath.Join(base, "t1"), filepath.Join(base, "t2")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == base || p == bin {
			return err
		}
		if asRoot {
			if err := os.Lchown(p, nobody, nobody); err != nil {
				return err
			}
		}
		if d.IsDir() && strings.HasPrefix(p, repo) {
			return os.Chmod(p, 0o555)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) result {
		c := exec.Command(bin, args...)
		c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CACHE_HOME=" + home, "TZ=UTC",
			"REWIND_REPOSITORY=" + repo, "REWIND_PASSWORD=" + testPassword}
		c.Dir = base
		if asRoot {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		}
		var out, errb strings.Builder
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		res := result{args: args, stdout: []byte(out.String()), stderr: []byte(errb.String())}
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			res.code = ee.ExitCode()
		case err != nil && asRoot:
			t.Skipf("cannot run rewind as nobody here (%v): the read-only case needs a user that permissions apply to", err)
		case err != nil:
			t.Fatal(err)
		}
		return res
	}

	// Locking needs to write: refused, with the way out named.
	res := run("restore", "latest", "--target", filepath.Join(base, "t1"))
	if res.code != ExitFatal || !strings.Contains(string(res.stderr), "--no-lock") || !strings.Contains(string(res.stderr), "permission denied") {
		t.Fatalf("restore from a read-only repository with locking: %v", res)
	}
	res = run("--no-lock", "restore", "latest", "--target", filepath.Join(base, "t2"))
	if res.code != 0 {
		t.Fatalf("restore --no-lock: %v", res)
	}
	sameFiles(t, src, filepath.Join(base, "t2", strings.TrimPrefix(src, "/")))
	if res := run("--no-lock", "ls", "latest"); res.code != 0 {
		t.Fatalf("ls --no-lock: %v", res)
	}
	if got := lockDirEntries(t, e); len(got) != 0 {
		t.Fatalf("locks/ holds %v", got)
	}
}
