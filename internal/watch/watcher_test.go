package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// run is a Watcher running in the test over a real repository, with what
// it captured.
type run struct {
	t    *testing.T
	repo *repository.Repository
	root string

	mu       sync.Mutex
	captures []Capture
	status   Status

	cancel context.CancelFunc
	done   chan error
}

// startWatcher watches root with a RepoCommitter on a new repository.
func startWatcher(t *testing.T, backend, root string, opt Options) *run {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(ctx, be, []byte("watch test"), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rn := &run{t: t, repo: r, root: root, done: make(chan error, 1)}
	log := testLogger(t)
	opt.Roots, opt.Backend, opt.Logger = []string{root}, backend, log
	if opt.Interval == 0 {
		opt.Interval = 100 * time.Millisecond
	}
	if opt.FullScanEvery == 0 {
		opt.FullScanEvery = -1
	}
	opt.Committer = &RepoCommitter{
		Repo: r,
		Lock: func(ctx context.Context) (func() error, func(), error) {
			lk, err := lock.Acquire(ctx, r, lock.Shared, lock.Options{Command: "watch", Logger: log})
			if err != nil {
				return nil, nil, err
			}
			return lk.Check, func() { lk.Release(context.WithoutCancel(ctx)) }, nil
		},
		Archive: archiver.Options{Tags: []string{"watch"}, Logger: log},
		Paths:   []string{root},
		Log:     log,
	}
	opt.OnCommit = func(c Capture) {
		rn.mu.Lock()
		rn.captures = append(rn.captures, c)
		rn.mu.Unlock()
	}
	opt.OnStatus = func(s Status) {
		rn.mu.Lock()
		rn.status = s
		rn.mu.Unlock()
	}
	w, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	rn.cancel = cancel
	go func() { rn.done <- w.Run(wctx) }()
	t.Cleanup(func() { rn.stop() })
	return rn
}

// stop asks the watcher to stop and returns what Run returned.
func (rn *run) stop() error {
	rn.cancel()
	select {
	case err, ok := <-rn.done:
		if ok {
			close(rn.done)
			return err
		}
		return nil
	case <-time.After(time.Minute):
		rn.t.Fatal("the watcher did not stop")
	}
	return nil
}

func (rn *run) latest() (*snapshot.Snapshot, int) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if len(rn.captures) == 0 {
		return nil, 0
	}
	return rn.captures[len(rn.captures)-1].Result.Snapshot, len(rn.captures)
}

// waitFor polls the newest snapshot until check accepts it. The bound is
// generous: it catches a change that is never captured, not a slow one.
func (rn *run) waitFor(what string, check func(sn *snapshot.Snapshot) error) *snapshot.Snapshot {
	rn.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for {
		sn, _ := rn.latest()
		if sn != nil {
			if err = check(sn); err == nil {
				return sn
			}
		} else {
			err = errors.New("no snapshot yet")
		}
		if time.Now().After(deadline) {
			rn.t.Fatalf("%s: never captured: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// has returns nil when the snapshot holds path p with content want.
func (rn *run) has(sn *snapshot.Snapshot, p, want string) error {
	n, err := snapshot.Lookup(context.Background(), rn.repo, sn, p)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := restorer.WriteContent(context.Background(), rn.repo, n, &buf); err != nil {
		return err
	}
	if buf.String() != want {
		return fmt.Errorf("%s holds %q, want %q", p, buf.String(), want)
	}
	return nil
}

// lacks returns nil when the snapshot does not hold p.
func (rn *run) lacks(sn *snapshot.Snapshot, p string) error {
	if _, err := snapshot.Lookup(context.Background(), rn.repo, sn, p); err == nil {
		return fmt.Errorf("%s is still in snapshot %s", p, sn.ID.Short())
	}
	return nil
}

func all(errs ...error) error { return errors.Join(errs...) }

// TestWatcherCapturesEveryChange: after the first (full) snapshot, every
// kind of change shows up in a snapshot: a write, a new file, a rename, a
// removal, and a new nested directory whose files were written at once.
// The snapshots after the first are partial.
func TestWatcherCapturesEveryChange(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			p := func(rel string) string { return filepath.Join(root, rel) }
			for i := range 20 {
				mustWrite(t, p(fmt.Sprintf("d%d/f%02d", i%4, i)), fmt.Sprintf("file %d\n", i))
			}
			rn := startWatcher(t, b, root, Options{})
			rn.waitFor("the first snapshot", func(sn *snapshot.Snapshot) error { return rn.has(sn, p("d0/f00"), "file 0\n") })

			mustWrite(t, p("d1/f01"), "rewritten\n")
			mustWrite(t, p("d2/new"), "new\n")
			if err := os.Rename(p("d3/f03"), p("d0/moved")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(p("d0/f04")); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				mustWrite(t, p(fmt.Sprintf("nest/a/b/f%d", i)), fmt.Sprintf("nested %d\n", i))
			}
			rn.waitFor("every change", func(sn *snapshot.Snapshot) error {
				errs := []error{rn.has(sn, p("d1/f01"), "rewritten\n"), rn.has(sn, p("d2/new"), "new\n"),
					rn.has(sn, p("d0/moved"), "file 3\n"), rn.lacks(sn, p("d3/f03")), rn.lacks(sn, p("d0/f04"))}
				for i := range 5 {
					errs = append(errs, rn.has(sn, p(fmt.Sprintf("nest/a/b/f%d", i)), fmt.Sprintf("nested %d\n", i)))
				}
				return all(errs...)
			})
			if err := rn.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			rn.mu.Lock()
			defer rn.mu.Unlock()
			for i, c := range rn.captures {
				if c.Result.Full != (i == 0) {
					t.Errorf("capture %d (%s): full %v; only the first should walk everything", i, c.Batch.Reason, c.Result.Full)
				}
				if !slices.Contains(c.Result.Snapshot.Tags, "watch") {
					t.Errorf("capture %d: tags %q", i, c.Result.Snapshot.Tags)
				}
			}
		})
	}
}

// TestWatcherFullScanCatchesHiddenChange: a write through a shared memory
// mapping raises no event, in fanotify or inotify (and while the mapping
// holds the file, neither does closing its descriptor). The periodic full
// scan must still capture it.
func TestWatcherFullScanCatchesHiddenChange(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	f := filepath.Join(root, "mapped")
	mustWrite(t, f, "0123456789")
	mustWrite(t, filepath.Join(root, "other"), "other\n")
	b := backends(t)[0]
	rn := startWatcher(t, b, root, Options{FullScanEvery: 500 * time.Millisecond})
	rn.waitFor("the first snapshot", func(sn *snapshot.Snapshot) error { return rn.has(sn, f, "0123456789") })

	fd, err := unix.Open(f, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(fd, 0, 10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	// Unmapped only once the test is over: the unmapping would close the
	// file, which is an event.
	defer unix.Munmap(m)
	copy(m, "ABCDEFGHIJ")
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	sn := rn.waitFor("a change made through mmap", func(sn *snapshot.Snapshot) error { return rn.has(sn, f, "ABCDEFGHIJ") })
	rn.mu.Lock()
	defer rn.mu.Unlock()
	for _, c := range rn.captures {
		if c.Result.Snapshot == sn && (!c.Result.Full || c.Batch.Reason != "full scan") {
			t.Errorf("the change was captured by a %q capture (full %v), not the full scan", c.Batch.Reason, c.Result.Full)
		}
	}
}

// TestWatcherMarksFilesInFlux: a file written without pause never goes
// quiet; after the settle time it is captured as it is, flagged in flux,
// while a file written once is captured without the flag.
func TestWatcherMarksFilesInFlux(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	mustWrite(t, filepath.Join(root, "calm"), "calm\n")
	busy := filepath.Join(root, "busy")
	b := backends(t)[0]
	rn := startWatcher(t, b, root, Options{Settle: 300 * time.Millisecond, Quiet: 100 * time.Millisecond})
	rn.waitFor("the first snapshot", func(sn *snapshot.Snapshot) error { return rn.has(sn, filepath.Join(root, "calm"), "calm\n") })

	stop := make(chan struct{})
	writer := make(chan error, 1)
	go func() {
		f, err := os.Create(busy)
		if err != nil {
			writer <- err
			return
		}
		defer f.Close()
		for {
			select {
			case <-stop:
				writer <- nil
				return
			default:
			}
			if _, err := f.WriteString("more\n"); err != nil {
				writer <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	mustWrite(t, filepath.Join(root, "calm2"), "written once\n")
	rn.waitFor("a file being written", func(sn *snapshot.Snapshot) error {
		n, err := snapshot.Lookup(context.Background(), rn.repo, sn, busy)
		if err != nil {
			return err
		}
		if n.Flags&tree.FlagInFlux == 0 {
			return fmt.Errorf("busy file captured with flags %b", n.Flags)
		}
		c, err := snapshot.Lookup(context.Background(), rn.repo, sn, filepath.Join(root, "calm2"))
		if err != nil {
			return err
		}
		if c.Flags != 0 {
			return fmt.Errorf("quiet file captured with flags %b", c.Flags)
		}
		return nil
	})
	close(stop)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
}

// TestWatcherStopCapturesPending: stopping finishes with a snapshot of
// what was pending, and Run returns nil.
func TestWatcherStopCapturesPending(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	mustWrite(t, filepath.Join(root, "a"), "a\n")
	b := backends(t)[0]
	rn := startWatcher(t, b, root, Options{Interval: time.Hour})
	rn.waitFor("the first snapshot", func(sn *snapshot.Snapshot) error { return rn.has(sn, filepath.Join(root, "a"), "a\n") })
	mustWrite(t, filepath.Join(root, "late"), "written before the stop\n")
	// The next capture is an hour away: only the stop can capture it.
	// The first snapshot is visible in the repository before the watcher
	// publishes its status after it, so a pending count is only the late
	// file's once the status counts that snapshot.
	deadline := time.Now().Add(20 * time.Second)
	for {
		rn.mu.Lock()
		pending, saved := rn.status.PendingChanges, rn.status.Snapshots
		rn.mu.Unlock()
		if pending > 0 && saved >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the change never became pending")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rn.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	sn, _ := rn.latest()
	if err := rn.has(sn, filepath.Join(root, "late"), "written before the stop\n"); err != nil {
		t.Error(err)
	}
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.status.State != "stopped" || rn.status.PendingChanges != 0 {
		t.Errorf("final status: state %q, %d pending", rn.status.State, rn.status.PendingChanges)
	}
}
