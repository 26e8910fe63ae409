package watch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// The tests make their changes from their own process.
func init() { ignoreOwnEvents = false }

// testLogger logs through t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// backends returns the backends to test. fanotify needs root (and Linux
// 5.9): without it, its tests are skipped, or failed under CI=true.
func backends(t *testing.T) []string {
	if !testutil.IsRoot() {
		if testutil.CI() {
			t.Fatal("fanotify tests need root")
		}
		t.Log("not root: testing inotify only")
		return []string{BackendInotify}
	}
	return []string{BackendFanotify, BackendInotify}
}

// collector gathers what a source reports.
type collector struct {
	mu   sync.Mutex
	seen map[Event]int
	all  []Event
}

func startSource(t *testing.T, src Source) *collector {
	t.Helper()
	c := &collector{seen: map[Event]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(evs []Event) {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, ev := range evs {
				c.seen[ev]++
				c.all = append(c.all, ev)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("source Run: %v", err)
		}
	})
	return c
}

// waitFor polls until every wanted event was reported; it fails the test
// with what is missing after a generous bound (an event source that lost
// the event, not a slow one).
func (c *collector) waitFor(t *testing.T, want ...Event) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		var missing []Event
		for _, ev := range want {
			if c.seen[ev] == 0 {
				missing = append(missing, ev)
			}
		}
		c.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("never reported: %v\nreported: %v", missing, c.all)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *collector) anyUnder(dir string) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, ev := range c.all {
		if under(ev.Path, dir) {
			out = append(out, ev)
		}
	}
	return out
}

func mustWrite(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSourceReportsChanges makes each kind of change below a watched
// folder and checks that the source reports it, with what it is: writes,
// closes, creates, renames on both sides, removals, a chmod of a
// directory, and a nested directory whose files are created at once. A
// change next to the folder (same filesystem: fanotify sees it) and one
// below an ignored path are not reported.
func TestSourceReportsChanges(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			base := t.TempDir()
			root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
			ignored := filepath.Join(root, "ignored")
			p := func(rel string) string { return filepath.Join(root, rel) }
			for _, f := range []string{"a.txt", "old.txt", "gone.txt", "d/b.txt", "sub/c.txt", "ignored/i.txt"} {
				mustWrite(t, p(f), "before\n")
			}
			mustWrite(t, filepath.Join(outside, "x"), "x")
			src, err := Open(b, []string{root}, []string{ignored}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if src.Name() != b {
				t.Fatalf("asked for %s, got %s", b, src.Name())
			}
			c := startSource(t, src)

			mustWrite(t, filepath.Join(outside, "x"), "changed outside")
			mustWrite(t, filepath.Join(ignored, "i.txt"), "changed, ignored")
			f, err := os.OpenFile(p("a.txt"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("appended\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
			mustWrite(t, p("new.txt"), "new\n")
			if err := os.Rename(p("old.txt"), p("d/renamed.txt")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(p("gone.txt")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p("sub"), 0o700); err != nil {
				t.Fatal(err)
			}
			// A new nested directory filled at once: its own creation is
			// reported as a new directory, whatever happens inside before a
			// watch could be there.
			mustWrite(t, p("n1/n2/n3/deep.txt"), "deep\n")
			c.waitFor(t,
				Event{p("a.txt"), OpWrite}, Event{p("a.txt"), OpClose},
				Event{p("new.txt"), OpChange}, Event{p("new.txt"), OpClose},
				Event{p("old.txt"), OpChange}, Event{p("d/renamed.txt"), OpChange},
				Event{p("gone.txt"), OpChange},
				Event{p("sub"), OpChange},
				Event{p("n1"), OpNewDir},
			)
			// A directory renamed: gone from one place, new in the other.
			// (Events still queued for entries in it may name either place;
			// the new one is walked whole anyway.)
			if err := os.Rename(p("d"), p("d-moved")); err != nil {
				t.Fatal(err)
			}
			c.waitFor(t, Event{p("d"), OpChange}, Event{p("d-moved"), OpNewDir})
			// Events arrive in order: had the changes outside or below the
			// ignored path been reported, they would be here by now.
			if evs := c.anyUnder(outside); len(evs) > 0 {
				t.Errorf("changes outside the root reported: %v", evs)
			}
			if evs := c.anyUnder(ignored); len(evs) > 0 {
				t.Errorf("changes below an ignored path reported: %v", evs)
			}
		})
	}
}

// setSysctl sets a /proc/sys value and returns a function restoring it.
func setSysctl(t *testing.T, file, value string) func() {
	t.Helper()
	old, err := os.ReadFile(file)
	if err != nil {
		t.Skipf("no %s: %v", file, err)
	}
	if err := os.WriteFile(file, []byte(value), 0); err != nil {
		t.Fatalf("set %s: %v", file, err)
	}
	var once sync.Once
	restore := func() {
		once.Do(func() {
			if err := os.WriteFile(file, old, 0); err != nil {
				t.Errorf("restore %s: %v", file, err)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

// TestSourceOverflow fills a tiny kernel queue while nobody reads it: the
// source must report an overflow of the root, so that the root is walked
// whole. The queue size is a sysctl read when the queue is made, set for
// the moment of Open and restored at once.
func TestSourceOverflow(t *testing.T) {
	testutil.RequireRoot(t)
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			restore := setSysctl(t, fmt.Sprintf("/proc/sys/fs/%s/max_queued_events", b), "32")
			src, err := Open(b, []string{root}, nil, testLogger(t))
			restore()
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				mustWrite(t, filepath.Join(root, fmt.Sprintf("f%03d", i)), "x")
			}
			c := startSource(t, src)
			c.waitFor(t, Event{root, OpOverflow})
		})
	}
}
