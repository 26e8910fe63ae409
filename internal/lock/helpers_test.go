package lock_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
)

const testPassword = "lock test password"

// initRepo creates a repository on be with cheap key derivation.
func initRepo(t testing.TB, be backend.Backend) *repository.Repository {
	t.Helper()
	r, err := repository.Init(context.Background(), be, []byte(testPassword), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newMemRepo(t testing.TB) *repository.Repository { return initRepo(t, mem.New()) }

func newLocalRepo(t testing.TB) *repository.Repository {
	t.Helper()
	be, err := local.Create(context.Background(), filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return initRepo(t, be)
}

func newFaultRepo(t testing.TB) (*repository.Repository, *fault.Backend) {
	t.Helper()
	fb := fault.New(mem.New())
	return initRepo(t, fb), fb
}

// eachBackend runs fn on a repository in memory and on one in a local
// folder.
func eachBackend(t *testing.T, fn func(t *testing.T, r *repository.Repository)) {
	t.Run("mem", func(t *testing.T) { fn(t, newMemRepo(t)) })
	t.Run("local", func(t *testing.T) { fn(t, newLocalRepo(t)) })
}

// acquire takes a lock that the test must get, released at cleanup.
func acquire(t testing.TB, r *repository.Repository, kind lock.Kind, o lock.Options) *lock.Lock {
	t.Helper()
	if o.Command == "" {
		o.Command = "test-" + string(kind)
	}
	l, err := lock.Acquire(context.Background(), r, kind, o)
	if err != nil {
		t.Fatalf("acquire %s: %v", kind, err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return l
}

// mustConflict fails the test unless acquiring kind fails with a
// *LockedError naming holder.
func mustConflict(t testing.TB, r *repository.Repository, kind lock.Kind, holder string) *lock.LockedError {
	t.Helper()
	l, err := lock.Acquire(context.Background(), r, kind, lock.Options{Command: "loser"})
	if err == nil {
		l.Release(context.Background())
		t.Fatalf("acquire %s: succeeded, want a conflict with lock %s", kind, holder)
	}
	le, ok := err.(*lock.LockedError)
	if !ok {
		t.Fatalf("acquire %s: %v (%T), want *lock.LockedError", kind, err, err)
	}
	if le.Holder.ID != holder {
		t.Fatalf("acquire %s: holder %s, want %s", kind, le.Holder.ID, holder)
	}
	return le
}

// lockFiles returns the names of the files in locks/.
func lockFiles(t testing.TB, r *repository.Repository) []id.ID {
	t.Helper()
	ids, err := r.List(context.Background(), backend.LockFile)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func exists(t testing.TB, r *repository.Repository, f id.ID) bool {
	t.Helper()
	_, err := r.Backend().Stat(context.Background(), backend.Handle{Type: backend.LockFile, Name: f.String()})
	if err != nil && !backend.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// rawLock is a lock file written the way another rewind would write it,
// spelled out field by field as docs/FORMAT.md gives them.
type rawLock map[string]any

// newRawLock returns a fresh live-looking lock of kind from host.
func newRawLock(kind lock.Kind, host string) rawLock {
	now := time.Now().UTC()
	return rawLock{
		"id": randomHex(16), "kind": string(kind), "command": "elsewhere", "host": host,
		"user": "someone", "pid": 4242, "pid_start": 1234, "boot_id": "0d5c4e8a-0000-4000-8000-000000000000",
		"created": now.Format(time.RFC3339Nano), "refreshed": now.Format(time.RFC3339Nano),
	}
}

// with returns a copy of l with more fields set, given as name, value
// pairs.
func (l rawLock) with(kv ...any) rawLock {
	c := rawLock{}
	for k, v := range l {
		c[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func (l rawLock) id() string { return l["id"].(string) }

// save stores l in locks/ as a sealed JSON file.
func (l rawLock) save(t testing.TB, r *repository.Repository) id.ID {
	t.Helper()
	f, err := r.SaveJSON(context.Background(), backend.LockFile, l)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// thisHost sets REWIND_HOSTNAME to a name of the test's own and returns
// it, so that locks can be written as if by this host.
func thisHost(t *testing.T) string {
	t.Helper()
	h := "lock-test-" + randomHex(4)
	t.Setenv("REWIND_HOSTNAME", h)
	return h
}

// procIdentity is what a lock records of a process on this host, read
// from /proc independently of the package.
type procIdentity struct {
	bootID, pidNS string
	start         uint64
}

func readProcIdentity(t testing.TB, pid int) procIdentity {
	t.Helper()
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skipf("no boot ID on this system: %v", err)
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Skipf("no PID namespace link on this system: %v", err)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	start, err := strconv.ParseUint(strings.Fields(rest)[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return procIdentity{bootID: strings.TrimSpace(string(boot)), pidNS: ns, start: start}
}

// localLock returns a lock written as by process pid of this host.
func localLock(t *testing.T, host string, kind lock.Kind, pid int) rawLock {
	t.Helper()
	p := readProcIdentity(t, pid)
	return newRawLock(kind, host).with("pid", pid, "pid_start", p.start, "boot_id", p.bootID, "pid_ns", p.pidNS)
}

// startSleeper starts a real process that lives until killed.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "600")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	return c
}

// eventually polls cond until it holds, failing the test if it still does
// not after a generous bound: a guard against hangs, not a timing
// assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not happen within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
