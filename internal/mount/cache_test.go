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
	c := newBlobCache(300, func(ctx context.Context, i id.ID) ([]byte, error) {
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
	c := newBlobCache(1<<20, func(ctx context.Context, i id.ID) ([]byte, error) {
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
