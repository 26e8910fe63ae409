package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/backend/retry"
	"github.com/rewind-backup/rewind/internal/backend/test"
)

// sleeps records the waits of a retry wrapper instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// fast returns a policy that does not wait, with jitter fixed at the
// middle.
func fast(s *sleeps) retry.Config {
	return retry.Config{Sleep: s.sleep, Jitter: func() float64 { return 0.5 }}
}

// TestBackend runs the conformance suite over a memory backend that fails
// the first call of each operation (some before, some after reaching the
// memory backend): the retries must hide every one of those failures.
func TestBackend(t *testing.T) {
	test.RunTests(t, func(*testing.T) backend.Backend {
		f := fault.New(mem.New())
		f.FailNth(fault.Save, 1, nil)
		f.FailNthAfter(fault.Save, 3, nil) // stored, answer lost
		f.FailNth(fault.Load, 1, nil)
		f.FailNthAfter(fault.Load, 2, nil)
		f.FailNth(fault.Stat, 1, nil)
		f.FailNthAfter(fault.Remove, 1, nil) // removed, answer lost
		f.FailNth(fault.List, 1, nil)
		return retry.New(f, fast(&sleeps{}))
	})
}

func name(i int) string { return fmt.Sprintf("%064x", i) }

func TestTransientRetried(t *testing.T) {
	f := fault.New(mem.New())
	s := &sleeps{}
	be := retry.New(f, fast(s))
	for n := 1; n <= 3; n++ {
		f.FailNth(fault.Save, n, nil)
	}
	h := backend.Handle{Type: backend.IndexFile, Name: name(1)}
	if err := be.Save(context.Background(), h, backend.NewByteReader([]byte("index"))); err != nil {
		t.Fatalf("Save after 3 transient failures: %v", err)
	}
	if n := f.Calls(fault.Save); n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
	// 500 ms, 1 s, 2 s nominal; jitter 0.5 puts each at three quarters.
	want := []time.Duration{375 * time.Millisecond, 750 * time.Millisecond, 1500 * time.Millisecond}
	if got := s.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

func TestDelay(t *testing.T) {
	be := retry.New(mem.New(), retry.Config{InitialDelay: time.Second, MaxDelay: 10 * time.Second})
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		if got := be.Delay(attempt); got != want {
			t.Errorf("Delay(%d) = %v, want %v", attempt, got, want)
		}
	}
	// Real jitter keeps each wait between half and all of the nominal.
	s := &sleeps{}
	cfg := fast(s)
	cfg.Jitter = nil
	cfg.MaxAttempts = 30
	f := fault.New(mem.New())
	f.FailNth(fault.Stat, fault.Every, nil)
	_, _ = retry.New(f, cfg).Stat(context.Background(), backend.Handle{Type: backend.KeyFile, Name: name(2)})
	r := retry.New(mem.New(), cfg)
	for i, d := range s.all() {
		nominal := r.Delay(i + 1)
		if d < nominal/2 || d > nominal {
			t.Errorf("wait %d: %v, want between %v and %v", i+1, d, nominal/2, nominal)
		}
	}
}

func TestPermanentNotRetried(t *testing.T) {
	ctx := context.Background()
	m := mem.New()
	h := backend.Handle{Type: backend.SnapshotFile, Name: name(3)}
	if err := m.Save(ctx, h, backend.NewByteReader([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	errDenied := errors.New("HTTP 403 access denied")
	cases := map[string]struct {
		setup func(f *fault.Backend)
		op    fault.Op
		call  func(be backend.Backend) error
		want  error
	}{
		"permanent": {
			setup: func(f *fault.Backend) { f.FailNth(fault.Save, fault.Every, backend.Permanent(errDenied)) },
			op:    fault.Save,
			call: func(be backend.Backend) error {
				return be.Save(ctx, backend.Handle{Type: backend.SnapshotFile, Name: name(4)}, backend.NewByteReader([]byte("x")))
			},
			want: errDenied,
		},
		"not found": {
			op: fault.Stat,
			call: func(be backend.Backend) error {
				_, err := be.Stat(ctx, backend.Handle{Type: backend.PackFile, Name: name(5)})
				return err
			},
			want: backend.ErrNotExist,
		},
		"exists": {
			op:   fault.Save,
			call: func(be backend.Backend) error { return be.Save(ctx, h, backend.NewByteReader([]byte("two"))) },
			want: backend.ErrExists,
		},
		"cancelled": {
			op: fault.Load,
			call: func(be backend.Backend) error {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				return be.Load(cctx, h, 0, 0, func(io.Reader) error { return nil })
			},
			want: context.Canceled,
		},
	}
	for what, c := range cases {
		f := fault.New(m)
		if c.setup != nil {
			c.setup(f)
		}
		err := c.call(retry.New(f, fast(&sleeps{})))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", what, err, c.want)
		}
		if n := f.Calls(c.op); n != 1 {
			t.Errorf("%s: %d attempts, want 1", what, n)
		}
	}
}

func TestGiveUp(t *testing.T) {
	f := fault.New(mem.New())
	f.FailNth(fault.Remove, fault.Every, nil)
	s := &sleeps{}
	cfg := fast(s)
	cfg.MaxAttempts = 4
	err := retry.New(f, cfg).Remove(context.Background(), backend.Handle{Type: backend.LockFile, Name: name(6)})
	if !errors.Is(err, fault.ErrInjected) || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("got %v, want the last error and the number of attempts", err)
	}
	if n := f.Calls(fault.Remove); n != 4 || len(s.all()) != 3 {
		t.Fatalf("%d attempts and %d waits, want 4 and 3", n, len(s.all()))
	}
}

// streamReader is a RewindReader that is no ByteReader.
type streamReader struct {
	*bytes.Reader
	rewinds int
}

func (s *streamReader) Length() int64 { return s.Size() }
func (s *streamReader) Rewind() error {
	s.rewinds++
	_, err := s.Seek(0, io.SeekStart)
	return err
}

// TestRewind fails a Save after the memory backend read and stored the
// content: the next attempt must start the reader again, or it stores
// nothing and fails.
func TestRewind(t *testing.T) {
	m := mem.New()
	f := fault.New(m)
	f.FailNthAfter(fault.Save, 1, nil)
	f.FailNth(fault.Save, 2, nil)
	data := bytes.Repeat([]byte("pack"), 1000)
	rd := &streamReader{Reader: bytes.NewReader(data)}
	h := backend.Handle{Type: backend.PackFile, Name: name(7)}
	if err := retry.New(f, fast(&sleeps{})).Save(context.Background(), h, rd); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if rd.rewinds != 2 {
		t.Fatalf("%d rewinds, want 2", rd.rewinds)
	}
	err := m.Load(context.Background(), h, 0, 0, func(r io.Reader) error {
		got, err := io.ReadAll(r)
		if err == nil && !bytes.Equal(got, data) {
			err = errors.New("stored content differs")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestContextDuringWait cancels the context while the wrapper waits to
// retry: it stops at once with the context's error.
func TestContextDuringWait(t *testing.T) {
	f := fault.New(mem.New())
	f.FailNth(fault.Stat, fault.Every, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := retry.Config{Sleep: func(ctx context.Context, _ time.Duration) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}}
	_, err := retry.New(f, cfg).Stat(ctx, backend.Handle{Type: backend.KeyFile, Name: name(8)})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("got %v, want the cancellation and the last error", err)
	}
	if n := f.Calls(fault.Stat); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

// TestList checks that a List failing before any file is retried, and one
// failing after files were reported is not (they would be reported
// twice).
func TestList(t *testing.T) {
	ctx := context.Background()
	m := mem.New()
	for i := range 5 {
		if err := m.Save(ctx, backend.Handle{Type: backend.IndexFile, Name: name(i)}, backend.NewByteReader([]byte("i"))); err != nil {
			t.Fatal(err)
		}
	}
	f := fault.New(m)
	be := retry.New(f, fast(&sleeps{}))
	count := func() (map[string]int, error) {
		seen := map[string]int{}
		err := be.List(ctx, backend.IndexFile, func(fi backend.FileInfo) error {
			seen[fi.Name]++
			return nil
		})
		return seen, err
	}

	f.FailNth(fault.List, 1, nil)
	seen, err := count()
	if err != nil || len(seen) != 5 {
		t.Fatalf("List after a failure before any file: %v, %v", seen, err)
	}

	f.FailNthAfter(fault.List, 1, nil)
	seen, err = count()
	if !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("List failing after its files: got %v", err)
	}
	for n, c := range seen {
		if c != 1 {
			t.Errorf("%s reported %d times", n, c)
		}
	}

	errStop := errors.New("stop")
	calls := 0
	err = be.List(ctx, backend.IndexFile, func(backend.FileInfo) error { calls++; return errStop })
	if err != errStop || calls != 1 {
		t.Fatalf("List with a failing callback: %v after %d calls, want the callback's error after 1", err, calls)
	}
}

// TestLogs checks that retries are logged with what failed.
func TestLogs(t *testing.T) {
	var buf bytes.Buffer
	f := fault.New(mem.New())
	f.FailNth(fault.Save, 1, errors.New("connection reset by peer"))
	cfg := fast(&sleeps{})
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := backend.Handle{Type: backend.PackFile, Name: name(9)}
	if err := retry.New(f, cfg).Save(context.Background(), h, backend.NewByteReader([]byte("p"))); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"retrying", "op=save", "file=data/" + name(9), "attempt=1", "connection reset by peer", "succeeded after retrying", "attempts=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not say %q:\n%s", want, out)
		}
	}
}
