package fault_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/backend/test"
)

// With no fault configured the wrapper keeps the whole contract.
func TestBackend(t *testing.T) {
	test.RunTests(t, func(*testing.T) backend.Backend { return fault.New(mem.New()) })
}

func BenchmarkBackend(b *testing.B) {
	test.RunBenchmarks(b, func(*testing.B) backend.Backend { return fault.New(mem.New()) })
}

var (
	ctx  = context.Background()
	data = []byte(strings.Repeat("0123456789", 100))
)

func handle(name string) backend.Handle {
	return backend.Handle{Type: backend.PackFile, Name: name + strings.Repeat("0", 64-len(name))}
}

func save(be backend.Backend, h backend.Handle) error {
	return be.Save(ctx, h, backend.NewByteReader(data))
}

func load(be backend.Backend, h backend.Handle, length int, offset int64) ([]byte, error) {
	var got []byte
	err := be.Load(ctx, h, length, offset, func(rd io.Reader) (err error) {
		got, err = io.ReadAll(rd)
		return err
	})
	return got, err
}

func TestFailNth(t *testing.T) {
	inner := mem.New()
	be := fault.New(inner)
	be.FailNth(fault.Save, 2, nil)

	if err := save(be, handle("01")); err != nil {
		t.Fatalf("first Save: %v", err)
	}
	err := save(be, handle("02"))
	if !errors.Is(err, fault.ErrInjected) || backend.IsPermanent(err) {
		t.Fatalf("second Save: got %v, want a non-permanent ErrInjected", err)
	}
	if _, err := inner.Stat(ctx, handle("02")); !backend.IsNotExist(err) {
		t.Fatalf("the failed Save reached the backend: Stat gives %v", err)
	}
	if err := save(be, handle("02")); err != nil {
		t.Fatalf("third Save: %v", err)
	}
	if n := be.Calls(fault.Save); n != 3 {
		t.Fatalf("Calls(Save) = %d, want 3", n)
	}

	// Other operations are not touched by a Save fault.
	if _, err := load(be, handle("01"), 0, 0); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestFailEvery(t *testing.T) {
	be := fault.New(mem.New())
	if err := save(be, handle("01")); err != nil {
		t.Fatal(err)
	}
	errMine := backend.Permanent(errors.New("mine"))
	for _, op := range []fault.Op{fault.Load, fault.Stat, fault.Remove, fault.List} {
		be.FailNth(op, fault.Every, errMine)
	}
	for range 3 {
		if _, err := load(be, handle("01"), 0, 0); !errors.Is(err, errMine) || !backend.IsPermanent(err) {
			t.Fatalf("Load: got %v, want the configured permanent error", err)
		}
		if _, err := be.Stat(ctx, handle("01")); !errors.Is(err, errMine) {
			t.Fatalf("Stat: got %v", err)
		}
		if err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil }); !errors.Is(err, errMine) {
			t.Fatalf("List: got %v", err)
		}
		if err := be.Remove(ctx, handle("01")); !errors.Is(err, errMine) {
			t.Fatalf("Remove: got %v", err)
		}
	}
	be.Reset()
	if got, err := load(be, handle("01"), 0, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Load after Reset: %v", err)
	}
}

// TestFailNthAfter: the call takes effect but reports an error, as when an
// answer is lost; a retry of the Save then finds the identical file.
func TestFailNthAfter(t *testing.T) {
	inner := mem.New()
	be := fault.New(inner)
	be.FailNthAfter(fault.Save, 1, nil)
	if err := save(be, handle("01")); !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("Save: got %v, want ErrInjected", err)
	}
	if _, err := inner.Stat(ctx, handle("01")); err != nil {
		t.Fatalf("the Save did not reach the backend: %v", err)
	}
	if err := save(be, handle("01")); err != nil {
		t.Fatalf("Save again: %v", err)
	}

	be.FailNthAfter(fault.Load, 1, nil)
	called := false
	err := be.Load(ctx, handle("01"), 0, 0, func(io.Reader) error { called = true; return nil })
	if !errors.Is(err, fault.ErrInjected) || !called {
		t.Fatalf("Load: got %v (fn called: %v), want ErrInjected after fn", err, called)
	}
	// A real error wins over the injected one.
	be.FailNthAfter(fault.Stat, 1, nil)
	if _, err := be.Stat(ctx, handle("99")); !backend.IsNotExist(err) {
		t.Fatalf("Stat of a missing file: got %v, want ErrNotExist", err)
	}
}

func TestShortReadNth(t *testing.T) {
	be := fault.New(mem.New())
	if err := save(be, handle("01")); err != nil {
		t.Fatal(err)
	}
	be.ShortReadNth(2, 10)
	if got, err := load(be, handle("01"), 100, 50); err != nil || !bytes.Equal(got, data[50:150]) {
		t.Fatalf("first Load: %v", err)
	}
	got, err := load(be, handle("01"), 100, 50)
	if err != nil || !bytes.Equal(got, data[50:60]) {
		t.Fatalf("second Load = %q, %v; want the first 10 bytes and no error", got, err)
	}
	err = be.Load(ctx, handle("01"), 0, 0, func(rd io.Reader) error {
		_, err := io.ReadFull(rd, make([]byte, len(data)))
		return err
	})
	if err != nil {
		t.Fatalf("third Load: %v", err)
	}

	be.ShortReadNth(1, 10)
	err = be.Load(ctx, handle("01"), 100, 0, func(rd io.Reader) error {
		_, err := io.ReadFull(rd, make([]byte, 100))
		return err
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("io.ReadFull of a short read: got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestFlipBitNth(t *testing.T) {
	be := fault.New(mem.New())
	if err := save(be, handle("01")); err != nil {
		t.Fatal(err)
	}
	for _, bit := range []int64{0, 7, 8, 13, 799, 8*int64(len(data)) - 1} {
		be.FlipBitNth(1, bit)
		be.SplitReads(3) // the flip must land right across read boundaries
		got, err := load(be, handle("01"), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(data)
		want[bit/8] ^= 1 << (bit % 8)
		if !bytes.Equal(got, want) {
			t.Fatalf("bit %d: loaded data differs elsewhere than in that bit", bit)
		}
	}
	// Relative to the range, and only once.
	be.FlipBitNth(1, 0)
	got, _ := load(be, handle("01"), 10, 100)
	if got[0] != data[100]^1 || !bytes.Equal(got[1:], data[101:110]) {
		t.Fatalf("flip in a range: got %q", got)
	}
	if got, _ := load(be, handle("01"), 0, 0); !bytes.Equal(got, data) {
		t.Fatal("the stored file changed, or the flip applied twice")
	}
	// Past the range or negative: nothing changes.
	be.FlipBitNth(1, 8*10)
	be.FlipBitNth(2, -1)
	for range 2 {
		if got, _ := load(be, handle("01"), 10, 0); !bytes.Equal(got, data[:10]) {
			t.Fatal("a bit outside the range was flipped")
		}
	}
}

func TestSplitReads(t *testing.T) {
	be := fault.New(mem.New())
	if err := save(be, handle("01")); err != nil {
		t.Fatal(err)
	}
	be.SplitReads(7)
	err := be.Load(ctx, handle("01"), 0, 0, func(rd io.Reader) error {
		buf := make([]byte, 100)
		for total := 0; total < len(data); {
			n, err := rd.Read(buf)
			if n > 7 {
				t.Errorf("Read returned %d bytes, want at most 7", n)
			}
			if !bytes.Equal(buf[:n], data[total:total+n]) {
				t.Errorf("wrong bytes at %d", total)
			}
			total += n
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDelay checks that a delayed call still honours its context. Nothing
// is timed: the delay is far longer than any test run.
func TestDelay(t *testing.T) {
	be := fault.New(mem.New())
	if err := save(be, handle("01")); err != nil {
		t.Fatal(err)
	}
	be.Delay(fault.Load, time.Hour)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- be.Load(cctx, handle("01"), 0, 0, func(io.Reader) error { return nil })
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("delayed Load after cancel: got %v, want context.Canceled", err)
	}
	if _, err := be.Stat(ctx, handle("01")); err != nil {
		t.Fatalf("Stat is not delayed but failed: %v", err)
	}

	be.Delay(fault.Load, time.Millisecond)
	if _, err := load(be, handle("01"), 0, 0); err != nil {
		t.Fatalf("Load with a short delay: %v", err)
	}
}

// TestConfigureWhileRunning changes faults while calls run; run with -race.
func TestConfigureWhileRunning(t *testing.T) {
	be := fault.New(mem.New())
	if err := save(be, handle("01")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				_, err := load(be, handle("01"), 10, 0)
				if err != nil && !errors.Is(err, fault.ErrInjected) {
					t.Errorf("Load: %v", err)
					return
				}
			}
		})
	}
	failed := 0
	for i := range 200 {
		be.FailNth(fault.Load, 1+i%3, nil)
		be.FlipBitNth(1, int64(i))
		be.SplitReads(i % 5)
		if _, err := be.Stat(ctx, handle("01")); err != nil {
			failed++
		}
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d Stats failed with only Load faults configured", failed)
	}
}

func TestInvalidOp(t *testing.T) {
	be := fault.New(mem.New())
	be.FailNth(fault.Op(200), 1, nil)
	be.Delay(fault.Op(200), time.Hour)
	if err := save(be, handle("01")); err != nil {
		t.Fatalf("a fault on an unknown op applied to Save: %v", err)
	}
	if s := fault.Op(200).String(); !strings.Contains(s, "200") {
		t.Errorf("Op(200).String() = %q", s)
	}
}
