package counting_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/counting"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/backend/test"
)

func TestBackend(t *testing.T) {
	test.RunTests(t, func(*testing.T) backend.Backend { return counting.New(mem.New()) })
}

func name(i int) string { return fmt.Sprintf("%064x", i) }

// TestCounts runs known operations from many goroutines at once and checks
// every counter.
func TestCounts(t *testing.T) {
	const workers, each, size = 8, 25, 3000
	be := counting.New(mem.New())
	ctx := context.Background()
	data := make([]byte, size)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				h := backend.Handle{Type: backend.PackFile, Name: name(w*each + i)}
				if err := be.Save(ctx, h, backend.NewByteReader(data)); err != nil {
					t.Error(err)
					return
				}
				// Two loads: the whole file, and 100 bytes of which fn
				// reads only 10.
				err := be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
					_, err := io.Copy(io.Discard, rd)
					return err
				})
				if err == nil {
					err = be.Load(ctx, h, 100, 5, func(rd io.Reader) error {
						_, err := io.ReadFull(rd, make([]byte, 10))
						return err
					})
				}
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := be.Stat(ctx, h); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					if err := be.Remove(ctx, h); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// A failing call counts too, and moves no bytes.
	missing := backend.Handle{Type: backend.IndexFile, Name: name(999999)}
	if _, err := be.Stat(ctx, missing); !backend.IsNotExist(err) {
		t.Fatalf("Stat of a missing file: %v", err)
	}

	n := int64(workers * each)
	want := counting.Stats{
		Requests:  counting.Requests{Save: n, Load: 2 * n, Stat: n + 1, Remove: n / 5, List: workers},
		BytesUp:   n * size,
		BytesDown: n * (size + 10),
	}
	if got := be.Snapshot(); got != want {
		t.Fatalf("Snapshot() = %+v, want %+v", got, want)
	}
	if got := want.Requests.Total(); got != 4*n+1+n/5+workers {
		t.Fatalf("Total() = %d", got)
	}
}

// TestSaveReadTwice checks that bytes up are what the wrapped
// backend read, so that a save which read its reader twice counts twice.
func TestSaveReadTwice(t *testing.T) {
	be := counting.New(twice{mem.New()})
	if err := be.Save(context.Background(), backend.Handle{Type: backend.KeyFile, Name: name(1)}, backend.NewByteReader(make([]byte, 700))); err != nil {
		t.Fatal(err)
	}
	if got := be.Snapshot().BytesUp; got != 1400 {
		t.Fatalf("BytesUp = %d, want 1400", got)
	}
}

// twice reads and rewinds the reader once before saving it.
type twice struct{ *mem.Backend }

func (b twice) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if _, err := io.Copy(io.Discard, rd); err != nil {
		return err
	}
	if err := rd.Rewind(); err != nil {
		return err
	}
	return b.Backend.Save(ctx, h, rd)
}

// TestTempFiler checks that a local backend stays a TempFiler through the
// wrapper and that SaveTemp counts, and that others do not become one.
func TestTempFiler(t *testing.T) {
	if _, ok := counting.New(mem.New()).(backend.TempFiler); ok {
		t.Fatal("a wrapped mem backend offers TempFiler")
	}
	lb, err := local.Create(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	be := counting.New(lb)
	defer be.Close()
	tf, ok := be.(backend.TempFiler)
	if !ok {
		t.Fatal("a wrapped local backend does not offer TempFiler")
	}
	f, err := tf.TempFile(backend.PackFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 4321)); err != nil {
		t.Fatal(err)
	}
	h := backend.Handle{Type: backend.PackFile, Name: name(7)}
	if err := tf.SaveTemp(context.Background(), h, f); err != nil {
		t.Fatal(err)
	}
	if fi, err := be.Stat(context.Background(), h); err != nil || fi.Size != 4321 {
		t.Fatalf("Stat after SaveTemp = %+v, %v", fi, err)
	}
	want := counting.Stats{Requests: counting.Requests{Save: 1, Stat: 1}, BytesUp: 4321}
	if got := be.Snapshot(); got != want {
		t.Fatalf("Snapshot() = %+v, want %+v", got, want)
	}
	if _, err := os.Stat(f.Name()); !os.IsNotExist(err) {
		t.Fatalf("temporary file still there: %v", err)
	}
}
