package mount

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
)

func blobID(b byte) id.ID { var i id.ID; i[0] = b; return i }

// TestBlobCacheEvicts: the cache stays within its bytes, dropping the
// least recently used blob first.
func TestBlobCacheEvicts(t *testing.T) {
	var loads atomic.Int32
	c := newBlobCache(300, false, func(ctx context.Context, i id.ID, _ []byte) ([]byte, error) {
		loads.Add(1)
		return make([]byte, 100), nil
	})
	ctx := context.Background()
	for _, b := range []byte{1, 2, 3, 1, 4} { // 4 evicts 2, the least recently used
		if _, err := c.get(ctx, blobID(b)); err != nil {
			t.Fatal(err)
		}
	}
	if c.bytes() != 300 {
		t.Errorf("cache holds %d bytes, want 300", c.bytes())
	}
	if !c.has(blobID(1)) || c.has(blobID(2)) || !c.has(blobID(3)) || !c.has(blobID(4)) {
		t.Errorf("want 1, 3, 4 cached and 2 evicted")
	}
	if loads.Load() != 4 {
		t.Errorf("%d loads, want 4 (the second get of 1 is a hit)", loads.Load())
	}
}

// TestBlobCacheSharesLoads: readers of one blob at once share one load;
// a failed load is not cached.
func TestBlobCacheSharesLoads(t *testing.T) {
	var loads atomic.Int32
	release := make(chan struct{})
	c := newBlobCache(1<<20, false, func(ctx context.Context, i id.ID, _ []byte) ([]byte, error) {
		loads.Add(1)
		<-release
		if i == blobID(9) {
			return nil, errors.New("damaged")
		}
		return []byte("data"), nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if b, err := c.get(context.Background(), blobID(1)); err != nil || string(b) != "data" {
				t.Errorf("get: %q, %v", b, err)
			}
		})
	}
	for loads.Load() == 0 {
	}
	close(release)
	wg.Wait()
	if loads.Load() != 1 {
		t.Errorf("%d loads for 8 readers at once, want 1", loads.Load())
	}
	if _, err := c.get(context.Background(), blobID(9)); err == nil {
		t.Error("a failed load should fail")
	}
	if c.has(blobID(9)) {
		t.Error("a failed load should not be cached")
	}
}

// TestBlobCacheRecycles: a recycling cache reuses the buffer of a dropped
// blob for the next load, but not while a reader holds it pinned.
func TestBlobCacheRecycles(t *testing.T) {
	var given [][]byte
	c := newBlobCache(100, true, func(ctx context.Context, i id.ID, buf []byte) ([]byte, error) {
		given = append(given, buf)
		b := append(buf[:0], make([]byte, 100)...)
		b[0] = i[0]
		return b, nil
	})
	ctx := context.Background()
	one, release, err := c.pin(ctx, blobID(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.get(ctx, blobID(2)); err != nil { // drops 1, pinned
		t.Fatal(err)
	}
	if _, err := c.get(ctx, blobID(3)); err != nil { // drops 2, free
		t.Fatal(err)
	}
	if one[0] != 1 {
		t.Fatalf("a pinned blob was overwritten: holds %d", one[0])
	}
	same := func(a, b []byte) bool { return cap(a) > 0 && cap(b) > 0 && &a[:1][0] == &b[:1][0] }
	for _, g := range given {
		if same(g, one) {
			t.Fatal("a load got the buffer of a pinned blob")
		}
	}
	release()
	if _, err := c.get(ctx, blobID(4)); err != nil { // drops 3
		t.Fatal(err)
	}
	if _, err := c.get(ctx, blobID(5)); err != nil {
		t.Fatal(err)
	}
	if len(given) != 5 || !same(given[3], one) || given[4] == nil {
		t.Errorf("the loads after the release did not reuse the released and the dropped buffers")
	}
	if c.bytes() != 100 {
		t.Errorf("cache holds %d bytes, want 100", c.bytes())
	}
}
