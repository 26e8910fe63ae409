package lock_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
)

func TestSharedLocksCoexist(t *testing.T) {
	eachBackend(t, func(t *testing.T, r *repository.Repository) {
		a := acquire(t, r, lock.Shared, lock.Options{Command: "backup"})
		b := acquire(t, r, lock.Shared, lock.Options{Command: "restore"})
		if a.ID() == b.ID() {
			t.Fatalf("two locks share the ID %s", a.ID())
		}
		live, stale, err := lock.List(context.Background(), r, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(live) != 2 || len(stale) != 0 {
			t.Fatalf("List: %d live, %d stale; want 2 live", len(live), len(stale))
		}
		if err := a.Check(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestExclusiveConflictsWithShared(t *testing.T) {
	eachBackend(t, func(t *testing.T, r *repository.Repository) {
		ctx := context.Background()
		s := acquire(t, r, lock.Shared, lock.Options{Command: "backup"})
		mustConflict(t, r, lock.Exclusive, s.ID())
		// The failed attempt left nothing behind.
		if files := lockFiles(t, r); len(files) != 1 || files[0] != s.Info().File {
			t.Fatalf("locks/ holds %v, want only %s", files, s.Info().File)
		}
		if err := s.Release(ctx); err != nil {
			t.Fatal(err)
		}

		x := acquire(t, r, lock.Exclusive, lock.Options{Command: "repair index"})
		mustConflict(t, r, lock.Shared, x.ID())
		mustConflict(t, r, lock.Prune, x.ID())
		mustConflict(t, r, lock.Exclusive, x.ID())
		if err := x.Release(ctx); err != nil {
			t.Fatal(err)
		}
		acquire(t, r, lock.Shared, lock.Options{})
	})
}

func TestPruneConflictsWithPruneOnly(t *testing.T) {
	eachBackend(t, func(t *testing.T, r *repository.Repository) {
		s1 := acquire(t, r, lock.Shared, lock.Options{Command: "backup"})
		p := acquire(t, r, lock.Prune, lock.Options{Command: "prune"})
		s2 := acquire(t, r, lock.Shared, lock.Options{Command: "backup"})
		mustConflict(t, r, lock.Prune, p.ID())
		mustConflict(t, r, lock.Exclusive, s1.ID())
		for _, l := range []*lock.Lock{s1, p, s2} {
			if err := l.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestLockedError(t *testing.T) {
	r := newMemRepo(t)
	host := thisHost(t)
	x := acquire(t, r, lock.Exclusive, lock.Options{Command: "repair index", StaleAfter: 45 * time.Minute})
	_, err := lock.Acquire(context.Background(), r, lock.Shared, lock.Options{Command: "backup", StaleAfter: 45 * time.Minute})
	if !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("err = %v, want one matching ErrLocked", err)
	}
	if errors.Is(err, lock.ErrLost) {
		t.Fatalf("err = %v matches ErrLost", err)
	}
	var le *lock.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("err = %T, want *LockedError", err)
	}
	h := le.Holder
	if h.ID != x.ID() || h.Kind != lock.Exclusive || h.Command != "repair index" || h.Host != host || h.PID != x.Info().PID {
		t.Fatalf("holder = %+v, want the exclusive lock %+v", h, x.Info())
	}
	msg := err.Error()
	for _, want := range []string{"repository is locked", "exclusive", `"repair index"`, "PID " + strconv.Itoa(h.PID), host,
		h.Created.Local().Format("2006-01-02 15:04:05"), "ignored automatically", "45m0s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
}

// TestLockFileLayout pins the JSON of a lock file (docs/FORMAT.md, locks):
// other implementations read it.
func TestLockFileLayout(t *testing.T) {
	r := newMemRepo(t)
	host := thisHost(t)
	l := acquire(t, r, lock.Prune, lock.Options{Command: "prune"})
	plain, err := r.LoadFile(context.Background(), backend.LockFile, l.Info().File)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"boot_id", "command", "created", "host", "id", "kind", "pid", "pid_ns", "pid_start", "refreshed", "user"}
	if _, err := os.Stat("/proc/self/ns/pid"); err != nil {
		t.Skipf("no PID namespace link here (%v), so no pid_ns field", err)
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("lock file fields %v, want %v\n%s", keys, want, plain)
	}
	if m["id"] != l.ID() || len(l.ID()) != 32 || m["kind"] != "prune" || m["command"] != "prune" || m["host"] != host {
		t.Fatalf("lock file %s does not match the lock %+v", plain, l.Info())
	}
	for _, k := range []string{"created", "refreshed"} {
		if _, err := time.Parse(time.RFC3339Nano, m[k].(string)); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
}

func TestRefreshKeepsIDAndReplacesFile(t *testing.T) {
	eachBackend(t, func(t *testing.T, r *repository.Repository) {
		ctx := context.Background()
		l := acquire(t, r, lock.Shared, lock.Options{Command: "backup", RefreshEvery: 20 * time.Millisecond})
		first := l.Info()

		// While the lock refreshes, a watcher never finds it missing.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var missing, scans int
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				live, _, err := lock.List(ctx, r, 0)
				if err != nil {
					t.Error(err)
					return
				}
				scans++
				if !slices.ContainsFunc(live, func(i lock.Info) bool { return i.ID == first.ID }) {
					missing++
				}
			}
		})
		seen := map[string]bool{first.File.String(): true}
		eventually(t, "five refreshes", func() bool {
			seen[l.Info().File.String()] = true
			return len(seen) > 5
		})
		close(stop)
		wg.Wait()
		if missing > 0 {
			t.Fatalf("the lock was missing from %d of %d listings during refreshes", missing, scans)
		}

		now := l.Info()
		if now.ID != first.ID || now.Created != first.Created || !now.Refreshed.After(first.Refreshed) || now.File == first.File {
			t.Fatalf("after refreshes: %+v\nfirst: %+v", now, first)
		}
		eventually(t, "the first file removed", func() bool { return !exists(t, r, first.File) })
		live, _, err := lock.List(ctx, r, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(live) != 1 || live[0].ID != first.ID {
			t.Fatalf("List = %+v, want the one lock %s", live, first.ID)
		}
		if err := l.Check(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReleaseRemovesFiles(t *testing.T) {
	eachBackend(t, func(t *testing.T, r *repository.Repository) {
		ctx := context.Background()
		l, err := lock.Acquire(ctx, r, lock.Exclusive, lock.Options{Command: "repair index", RefreshEvery: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		first := l.Info().File
		eventually(t, "a refresh", func() bool { return l.Info().File != first })
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if files := lockFiles(t, r); len(files) != 0 {
			t.Fatalf("after Release locks/ holds %v", files)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		if err := l.Check(); !errors.Is(err, lock.ErrLost) {
			t.Fatalf("Check after Release = %v, want ErrLost", err)
		}
		// The refresher is stopped: nothing comes back.
		acquire(t, r, lock.Exclusive, lock.Options{})
	})
}

func TestStaleByDeadProcess(t *testing.T) {
	r := newLocalRepo(t)
	host := thisHost(t)
	sleeper := startSleeper(t)
	raw := localLock(t, host, lock.Exclusive, sleeper.Process.Pid)
	f := raw.save(t, r)

	// While the process lives its lock holds.
	mustConflict(t, r, lock.Shared, raw.id())

	if err := sleeper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	sleeper.Wait()
	live, stale, err := lock.List(context.Background(), r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 0 || len(stale) != 1 || stale[0].ID != raw.id() || stale[0].File != f {
		t.Fatalf("List: live %+v, stale %+v; want the dead process's lock stale", live, stale)
	}
	s := acquire(t, r, lock.Shared, lock.Options{})
	// A Shared acquirer leaves stale files alone; an exclusive one
	// removes them.
	if !exists(t, r, f) {
		t.Fatal("a shared acquire removed a stale lock file")
	}
	s.Release(context.Background())
	acquire(t, r, lock.Exclusive, lock.Options{})
	if exists(t, r, f) {
		t.Fatal("the exclusive acquire left the stale lock file")
	}
}

func TestStaleByReusedPID(t *testing.T) {
	r := newMemRepo(t)
	host := thisHost(t)
	pid := os.Getpid()
	raw := localLock(t, host, lock.Exclusive, pid)
	start := raw["pid_start"].(uint64)

	// The same PID with another start time is another process.
	reused := raw.with("id", randomHex(16), "pid_start", start+1)
	reused.save(t, r)
	acquire(t, r, lock.Shared, lock.Options{}).Release(context.Background())

	raw.save(t, r)
	mustConflict(t, r, lock.Shared, raw.id())
}

func TestStaleByBootID(t *testing.T) {
	r := newMemRepo(t)
	host := thisHost(t)
	raw := localLock(t, host, lock.Exclusive, os.Getpid())
	rebooted := raw.with("id", randomHex(16), "boot_id", "9f0e1d2c-3b4a-4958-8776-655443322110")
	rebooted.save(t, r)
	_, stale, err := lock.List(context.Background(), r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 || stale[0].ID != rebooted.id() {
		t.Fatalf("stale = %+v, want the lock of the earlier boot", stale)
	}
	acquire(t, r, lock.Shared, lock.Options{}).Release(context.Background())

	// The same process in this boot is alive.
	raw.save(t, r)
	mustConflict(t, r, lock.Shared, raw.id())
}

// TestOtherPIDNamespace: a process of another PID namespace (a container
// sharing the host's name) cannot be seen, so its lock is not judged by
// PID, only by age.
func TestOtherPIDNamespace(t *testing.T) {
	r := newMemRepo(t)
	host := thisHost(t)
	sleeper := startSleeper(t)
	raw := localLock(t, host, lock.Exclusive, sleeper.Process.Pid).with("pid_ns", "pid:[1]")
	sleeper.Process.Kill()
	sleeper.Wait()
	raw.save(t, r)
	mustConflict(t, r, lock.Shared, raw.id())
}

func TestStaleByAgeOnOtherHost(t *testing.T) {
	eachBackend(t, func(t *testing.T, r *repository.Repository) {
		ctx := context.Background()
		old := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
		dead := newRawLock(lock.Exclusive, "otherhost").with("created", old, "refreshed", old)
		f := dead.save(t, r)
		live, stale, err := lock.List(ctx, r, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(live) != 0 || len(stale) != 1 || stale[0].Host != "otherhost" {
			t.Fatalf("List: live %+v, stale %+v", live, stale)
		}
		// With a longer stale age the same lock is live.
		if live, _, _ := lock.List(ctx, r, 3*time.Hour); len(live) != 1 {
			t.Fatalf("with a 3h stale age: live %+v", live)
		}
		p := acquire(t, r, lock.Prune, lock.Options{Command: "prune"})
		if exists(t, r, f) {
			t.Fatal("the prune acquire left the stale lock file")
		}
		p.Release(ctx)

		// A fresh lock of another host is live, whatever its PID.
		fresh := newRawLock(lock.Exclusive, "otherhost").with("pid", 1<<30)
		fresh.save(t, r)
		mustConflict(t, r, lock.Shared, fresh.id())
	})
}

func TestIsStale(t *testing.T) {
	now := time.Now()
	i := lock.Info{Host: "otherhost", Refreshed: now.Add(-10 * time.Minute)}
	if i.IsStale(now, 0) {
		t.Fatal("10 minutes old is stale with the default stale age")
	}
	if !i.IsStale(now, 5*time.Minute) {
		t.Fatal("10 minutes old is not stale with a 5 minute stale age")
	}
	// A clock ahead of ours does not make a lock stale.
	i.Refreshed = now.Add(time.Hour)
	if i.IsStale(now, 0) {
		t.Fatal("a lock refreshed in the future is stale")
	}
}

func TestSeveralFilesCountAsOneLock(t *testing.T) {
	r := newMemRepo(t)
	ctx := context.Background()
	old := time.Now().Add(-time.Hour).UTC()
	a := newRawLock(lock.Prune, "otherhost").with("created", old.Format(time.RFC3339Nano), "refreshed", old.Format(time.RFC3339Nano))
	fa := a.save(t, r)
	b := a.with("refreshed", time.Now().UTC().Format(time.RFC3339Nano))
	fb := b.save(t, r)
	live, stale, err := lock.List(ctx, r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || len(stale) != 0 || live[0].File != fb {
		t.Fatalf("List: live %+v, stale %+v; want one live lock, from %s", live, stale, fb)
	}
	mustConflict(t, r, lock.Prune, a.id())

	// Both files old: one stale lock, and both files go.
	c := a.with("id", randomHex(16))
	fc1 := c.save(t, r)
	fc2 := c.with("user", "other").save(t, r)
	if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.LockFile, Name: fb.String()}); err != nil {
		t.Fatal(err)
	}
	_, stale, err = lock.List(ctx, r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 2 {
		t.Fatalf("stale = %+v, want the locks %s and %s", stale, a.id(), c.id())
	}
	acquire(t, r, lock.Exclusive, lock.Options{})
	for _, f := range []id.ID{fa, fc1, fc2} {
		if exists(t, r, f) {
			t.Errorf("stale lock file %s was not removed", f)
		}
	}
	if files := lockFiles(t, r); len(files) != 1 {
		t.Fatalf("after an exclusive acquire locks/ holds %v, want only its own file", files)
	}
}

func TestUnknownKindIsExclusive(t *testing.T) {
	r := newMemRepo(t)
	future := newRawLock("archive", "otherhost")
	future.save(t, r)
	mustConflict(t, r, lock.Shared, future.id())
}

func TestUnreadableLockFileIgnoredAndKept(t *testing.T) {
	r := newMemRepo(t)
	ctx := context.Background()
	name := strings.Repeat("ab", 32)
	h := backend.Handle{Type: backend.LockFile, Name: name}
	if err := r.Backend().Save(ctx, h, backend.NewByteReader([]byte("not a sealed lock"))); err != nil {
		t.Fatal(err)
	}
	// Sealed with the key, but not a lock.
	bad, err := r.SaveJSON(ctx, backend.LockFile, []int{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	live, stale, err := lock.List(ctx, r, 0)
	if err != nil || len(live)+len(stale) != 0 {
		t.Fatalf("List = %+v, %+v, %v; want no locks", live, stale, err)
	}
	l := acquire(t, r, lock.Exclusive, lock.Options{})
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Backend().Stat(ctx, h); err != nil {
		t.Fatalf("the undecryptable file was removed: %v", err)
	}
	if !exists(t, r, bad) {
		t.Fatal("the undecodable file was removed")
	}
}

// TestListErrorIsNotIgnored: a lock file that cannot be read for a reason
// other than corruption may be a live lock: acquiring must fail.
func TestListErrorIsNotIgnored(t *testing.T) {
	r, fb := newFaultRepo(t)
	newRawLock(lock.Shared, "otherhost").save(t, r)
	fb.FailNth(fault.Load, fault.Every, nil)
	_, err := lock.Acquire(context.Background(), r, lock.Exclusive, lock.Options{})
	if err == nil || errors.Is(err, lock.ErrLocked) || !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("acquire = %v, want the load error", err)
	}
	fb.Reset()
	if files := lockFiles(t, r); len(files) != 1 {
		t.Fatalf("locks/ holds %v after a failed acquire, want the other lock only", files)
	}
}

func TestCheckLostWhenFileRemoved(t *testing.T) {
	eachBackend(t, func(t *testing.T, r *repository.Repository) {
		ctx := context.Background()
		l := acquire(t, r, lock.Shared, lock.Options{Command: "backup", RefreshEvery: 20 * time.Millisecond})
		if err := l.Check(); err != nil {
			t.Fatal(err)
		}
		// Another process takes the lock for stale and removes it.
		f := l.Info().File
		if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.LockFile, Name: f.String()}); err != nil && !backend.IsNotExist(err) {
			t.Fatal(err)
		}
		eventually(t, "Check reports the lost lock", func() bool { return l.Check() != nil })
		err := l.Check()
		if !errors.Is(err, lock.ErrLost) || !strings.Contains(err.Error(), "removed") {
			t.Fatalf("Check = %v, want ErrLost naming the removed file", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if files := lockFiles(t, r); len(files) != 0 {
			t.Fatalf("after Release locks/ holds %v", files)
		}
	})
}

func TestCheckLostWhenRefreshesFail(t *testing.T) {
	r, fb := newFaultRepo(t)
	ctx := context.Background()
	l := acquire(t, r, lock.Shared, lock.Options{Command: "backup", RefreshEvery: 10 * time.Millisecond, StaleAfter: 300 * time.Millisecond})
	fb.FailNth(fault.Save, fault.Every, nil)
	eventually(t, "Check reports the lost lock", func() bool { return l.Check() != nil })
	err := l.Check()
	if !errors.Is(err, lock.ErrLost) || !strings.Contains(err.Error(), "last refreshed") {
		t.Fatalf("Check = %v, want ErrLost for refreshes that failed", err)
	}
	// Lost is for good, even once the repository works again: others
	// may have acted on the lock being stale.
	fb.Reset()
	before := fb.Calls(fault.Save)
	if err := l.Check(); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Check after the fault ended = %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if fb.Calls(fault.Save) != before {
		t.Fatal("a lost lock was refreshed again")
	}
	if files := lockFiles(t, r); len(files) != 0 {
		t.Fatalf("after Release locks/ holds %v", files)
	}
}

func TestRetryWaitsForRelease(t *testing.T) {
	r := newLocalRepo(t)
	ctx := context.Background()
	x, err := lock.Acquire(ctx, r, lock.Exclusive, lock.Options{Command: "repair index"})
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan lock.Info, 1)
	type result struct {
		l   *lock.Lock
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := lock.Acquire(ctx, r, lock.Shared, lock.Options{Command: "backup", RetryFor: time.Hour,
			OnWait: func(h lock.Info) { waiting <- h }})
		done <- result{l, err}
	}()
	h := <-waiting
	if h.ID != x.ID() {
		t.Fatalf("waiting for %s, want %s", h.ID, x.ID())
	}
	if err := x.Release(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("acquire after the release: %v", res.err)
	}
	res.l.Release(ctx)
}

func TestRetryGivesUpWithLockedError(t *testing.T) {
	r := newMemRepo(t)
	x := acquire(t, r, lock.Exclusive, lock.Options{})
	calls := 0
	_, err := lock.Acquire(context.Background(), r, lock.Shared, lock.Options{RetryFor: 300 * time.Millisecond, OnWait: func(lock.Info) { calls++ }})
	var le *lock.LockedError
	if !errors.As(err, &le) || le.Holder.ID != x.ID() {
		t.Fatalf("err = %v, want a LockedError naming %s", err, x.ID())
	}
	if calls != 1 {
		t.Fatalf("OnWait called %d times, want once", calls)
	}
}

func TestRetryStopsOnCancel(t *testing.T) {
	r := newMemRepo(t)
	acquire(t, r, lock.Exclusive, lock.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := lock.Acquire(ctx, r, lock.Shared, lock.Options{RetryFor: time.Hour, OnWait: func(lock.Info) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if files := lockFiles(t, r); len(files) != 1 {
		t.Fatalf("locks/ holds %v, want the holder's file only", files)
	}
}

// TestRacingAcquirersNeverBothSucceed races acquirers of conflicting kinds
// on a real folder: some may all back off, but two conflicting locks are
// never held at once.
func TestRacingAcquirersNeverBothSucceed(t *testing.T) {
	r := newLocalRepo(t)
	ctx := context.Background()
	kinds := []lock.Kind{lock.Exclusive, lock.Exclusive, lock.Shared, lock.Prune, lock.Prune, lock.Exclusive}
	for round := range 30 {
		var mu sync.Mutex
		var held []*lock.Lock
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, k := range kinds {
			wg.Go(func() {
				<-start
				l, err := lock.Acquire(ctx, r, k, lock.Options{Command: "race"})
				if err != nil {
					if !errors.Is(err, lock.ErrLocked) {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				held = append(held, l)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		for i, a := range held {
			for _, b := range held[i+1:] {
				ka, kb := a.Info().Kind, b.Info().Kind
				if ka == lock.Exclusive || kb == lock.Exclusive || ka == lock.Prune && kb == lock.Prune {
					t.Fatalf("round %d: %s and %s locks held at once", round, ka, kb)
				}
			}
		}
		for _, l := range held {
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if files := lockFiles(t, r); len(files) != 0 {
			t.Fatalf("round %d: locks/ holds %v after every lock was released", round, files)
		}
	}
}

func TestAcquireRefusesBadOptions(t *testing.T) {
	r := newMemRepo(t)
	if _, err := lock.Acquire(context.Background(), r, lock.Shared, lock.Options{RefreshEvery: time.Hour}); err == nil {
		t.Fatal("a refresh interval above the stale age was accepted")
	}
	if _, err := lock.Acquire(context.Background(), r, "everything", lock.Options{}); err == nil {
		t.Fatal("an unknown kind was accepted")
	}
	if files := lockFiles(t, r); len(files) != 0 {
		t.Fatalf("locks/ holds %v", files)
	}
}
