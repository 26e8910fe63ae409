package limit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/limit"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/backend/test"
)

// TestBackend runs the conformance suite with one operation at a time (so
// that List's callback calling Remove must not deadlock) and rates high
// enough not to slow it down much.
func TestBackend(t *testing.T) {
	test.RunTests(t, func(*testing.T) backend.Backend {
		return limit.New(mem.New(), limit.Config{Connections: 1, UploadKiB: 512 << 10, DownloadKiB: 512 << 10})
	})
}

func name(i int) string { return fmt.Sprintf("%064x", i) }

// TestBandwidth moves a few seconds' worth of data through each limit and
// checks the achieved rate against it. The issue asks for ±15%.
func TestBandwidth(t *testing.T) {
	const rateKiB = 1024
	const size = 5 << 19 // 2.5 MiB: 2.5 s at the limit
	const tolerance = 0.15
	check := func(t *testing.T, what string, elapsed time.Duration) {
		rate := float64(size) / elapsed.Seconds() / 1024
		t.Logf("%s: %d bytes in %v: %.0f KiB/s against a limit of %d KiB/s (%+.1f%%)",
			what, size, elapsed.Round(time.Millisecond), rate, rateKiB, (rate/rateKiB-1)*100)
		if rate < rateKiB*(1-tolerance) || rate > rateKiB*(1+tolerance) {
			t.Errorf("%s: %.0f KiB/s, want %d KiB/s ±%.0f%%", what, rate, rateKiB, tolerance*100)
		}
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	h := backend.Handle{Type: backend.PackFile, Name: name(1)}
	ctx := context.Background()

	t.Run("upload", func(t *testing.T) {
		t.Parallel()
		be := limit.New(mem.New(), limit.Config{UploadKiB: rateKiB})
		start := time.Now()
		if err := be.Save(ctx, h, backend.NewByteReader(data)); err != nil {
			t.Fatal(err)
		}
		check(t, "upload", time.Since(start))
	})
	t.Run("download", func(t *testing.T) {
		t.Parallel()
		m := mem.New()
		if err := m.Save(ctx, h, backend.NewByteReader(data)); err != nil {
			t.Fatal(err)
		}
		be := limit.New(m, limit.Config{DownloadKiB: rateKiB})
		// Four concurrent loads of a quarter each share the limit.
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				err := be.Load(ctx, h, size/4, int64(i*size/4), func(rd io.Reader) error {
					got, err := io.ReadAll(rd)
					if err == nil && !bytes.Equal(got, data[i*size/4:(i+1)*size/4]) {
						err = errors.New("wrong content")
					}
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		check(t, "download", time.Since(start))
	})
}

// gated is a backend whose Stat waits for the gate to open, counting the
// calls inside it.
type gated struct {
	*mem.Backend
	gate         chan struct{}
	inside, most atomic.Int64
}

func (g *gated) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	n := g.inside.Add(1)
	defer g.inside.Add(-1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return backend.FileInfo{}, ctx.Err()
	}
	return backend.FileInfo{}, nil
}

// TestConnections starts more operations than the limit and checks that
// no more than the limit run at once, and that a caller waiting for a
// slot gives up when its context is done.
func TestConnections(t *testing.T) {
	const limitN, callers = 3, 12
	g := &gated{Backend: mem.New(), gate: make(chan struct{})}
	be := limit.New(g, limit.Config{Connections: limitN})
	ctx := context.Background()
	h := backend.Handle{Type: backend.LockFile, Name: name(2)}

	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if _, err := be.Stat(ctx, h); err != nil {
				t.Error(err)
			}
		})
	}
	for g.inside.Load() < limitN {
		time.Sleep(time.Millisecond)
	}
	// Give the other callers the chance to get in if the limit leaked.
	time.Sleep(50 * time.Millisecond)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := be.Stat(cctx, h); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat waiting for a slot with a cancelled context: got %v", err)
	}
	close(g.gate)
	wg.Wait()
	if most := g.most.Load(); most != limitN {
		t.Fatalf("%d operations ran at once, want %d", most, limitN)
	}
}
