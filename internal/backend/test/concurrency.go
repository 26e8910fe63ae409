package test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
)

// testContextCanceled checks that every method fails at once with a done
// context, and changes nothing.
func testContextCanceled(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	stored := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
	data := randomData(rng, 10_000)
	save(t, be, stored, data)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{canceled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, c.want) {
				t.Errorf("%s with a done context: got %v, want %v", op, err, c.want)
			}
		}
		h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
		check("Save", be.Save(c.ctx, h, backend.NewByteReader(data)))
		_, err := be.Stat(context.Background(), h)
		checkNotExist(t, "Stat after a cancelled Save", err)

		called := false
		check("Load", be.Load(c.ctx, stored, 0, 0, func(io.Reader) error { called = true; return nil }))
		if called {
			t.Error("Load with a done context called fn")
		}
		_, err = be.Stat(c.ctx, stored)
		check("Stat", err)
		check("Remove", be.Remove(c.ctx, stored))
		check("List", be.List(c.ctx, backend.PackFile, func(backend.FileInfo) error { return nil }))
	}
	checkLoad(t, be, stored, data)
}

// testListContextCanceled cancels the context from within List's callback:
// List must stop and return the context's error.
func testListContextCanceled(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	for range 20 {
		save(t, be, backend.Handle{Type: backend.IndexFile, Name: randomName(rng)}, []byte("index"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := be.List(ctx, backend.IndexFile, func(backend.FileInfo) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("List after cancel: got %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Fatalf("List called fn %d times after cancel, want 1", calls)
	}
}

// testConcurrent runs Saves, Loads, Stats and Lists from many goroutines,
// including Saves of the same file with the same content.
func testConcurrent(t *testing.T, be backend.Backend) {
	const workers, filesEach = 16, 12
	ctx := context.Background()
	rng := newRand(t)

	// Files every worker saves, all with the same content.
	shared := make([]backend.Handle, 8)
	sharedData := make(map[backend.Handle][]byte)
	for i := range shared {
		shared[i] = backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
		sharedData[shared[i]] = randomData(rng, 1000+rng.IntN(100_000))
	}

	var mu sync.Mutex
	want := make(map[backend.Handle][]byte) // mu

	var wg sync.WaitGroup
	for w := range workers {
		wrng := rand.New(rand.NewPCG(uint64(w), 1))
		wg.Go(func() {
			for i := range filesEach {
				h := backend.Handle{Type: backend.PackFile, Name: randomName(wrng)}
				data := randomData(wrng, wrng.IntN(50_000))
				if err := be.Save(ctx, h, backend.NewByteReader(data)); err != nil {
					t.Errorf("Save(%v): %v", h, err)
					return
				}
				mu.Lock()
				want[h] = data
				mu.Unlock()

				sh := shared[(w+i)%len(shared)]
				if err := be.Save(ctx, sh, backend.NewByteReader(sharedData[sh])); err != nil {
					t.Errorf("Save(%v) of shared content: %v", sh, err)
					return
				}
				concurrentLoad(t, be, wrng, sh, sharedData[sh])
				concurrentLoad(t, be, wrng, h, data)
				if fi, err := be.Stat(ctx, h); err != nil || fi.Size != int64(len(data)) {
					t.Errorf("Stat(%v) = %+v, %v; want size %d", h, fi, err, len(data))
				}
				if i%4 == 0 {
					err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil })
					if err != nil {
						t.Errorf("List: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	for h, data := range sharedData {
		want[h] = data
	}
	wantSizes := make(map[string]int64)
	for h, data := range want {
		wantSizes[h.Name] = int64(len(data))
		checkLoad(t, be, h, data)
	}
	checkList(t, be, backend.PackFile, wantSizes)
}

// concurrentLoad loads a random range of h and checks it against data.
func concurrentLoad(t *testing.T, be backend.Backend, rng *rand.Rand, h backend.Handle, data []byte) {
	offset := rng.IntN(len(data) + 1)
	length := rng.IntN(len(data) - offset + 1)
	got, err := load(be, h, length, int64(offset))
	if err != nil {
		t.Errorf("Load(%v, length %d, offset %d): %v", h, length, offset, err)
		return
	}
	want := data[offset:]
	if length > 0 {
		want = want[:length]
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Load(%v, length %d, offset %d): wrong content", h, length, offset)
	}
}

// testConcurrentConflict saves different content under one name from many
// goroutines at once: exactly one Save wins, the others get ErrExists, and
// the file holds the winner's content whole.
func testConcurrentConflict(t *testing.T, be backend.Backend) {
	const writers = 8
	rng := newRand(t)
	for range 5 {
		h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
		contents := make([][]byte, writers)
		for i := range contents {
			contents[i] = randomData(rng, 100_000+i) // sizes differ too
		}
		errs := make([]error, writers)
		var start sync.WaitGroup
		start.Add(1)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				start.Wait()
				errs[i] = be.Save(context.Background(), h, backend.NewByteReader(contents[i]))
			})
		}
		start.Done()
		wg.Wait()

		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("Save(%v): writers %d and %d both succeeded", h, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, backend.ErrExists):
				t.Fatalf("Save(%v) by writer %d: got %v, want ErrExists", h, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("Save(%v): no writer succeeded", h)
		}
		checkLoad(t, be, h, contents[winner])
	}
}

// testConcurrentLoadRemove loads ranges of a file while it is removed and
// saved again with new content. Each Load must see one version whole, or no
// file.
func testConcurrentLoadRemove(t *testing.T, be backend.Backend) {
	const size, rounds, readers = 64 << 10, 50, 4
	ctx := context.Background()
	h := backend.Handle{Type: backend.PackFile, Name: randomName(newRand(t))}
	version := func(v int) []byte { return bytes.Repeat([]byte{byte(v)}, size+v) }
	save(t, be, h, version(0))

	var done atomic.Bool
	var wg sync.WaitGroup
	for r := range readers {
		rng := rand.New(rand.NewPCG(uint64(r), 2))
		wg.Go(func() {
			for !done.Load() {
				offset := rng.IntN(size)
				got, err := load(be, h, rng.IntN(size-offset)+1, int64(offset))
				if backend.IsNotExist(err) {
					continue
				}
				if err != nil {
					t.Errorf("Load: %v", err)
					return
				}
				for _, c := range got {
					if c != got[0] {
						t.Errorf("Load returned bytes of two versions: %d and %d", got[0], c)
						return
					}
				}
			}
		})
	}
	for v := 1; v <= rounds && !t.Failed(); v++ {
		if err := be.Remove(ctx, h); err != nil {
			t.Errorf("Remove: %v", err)
			break
		}
		if err := be.Save(ctx, h, backend.NewByteReader(version(v))); err != nil {
			t.Errorf("Save of version %d: %v", v, err)
			break
		}
	}
	done.Store(true)
	wg.Wait()
	checkLoad(t, be, h, version(rounds))
}
