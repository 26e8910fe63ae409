package mount

import (
	"container/list"
	"context"
	"sync"

	"github.com/rewind-backup/rewind/internal/id"
)

// blobCache holds decrypted data blobs, least recently used first out,
// bounded by the bytes it holds. Loads of one blob by several readers at
// once (a read and a readahead of it) share one load.
type blobCache struct {
	load func(ctx context.Context, i id.ID) ([]byte, error)
	max  int64

	mu       sync.Mutex
	size     int64
	lru      *list.List // of *cached, most recent at the front
	byID     map[id.ID]*list.Element
	inflight map[id.ID]*loading
}

type cached struct {
	id   id.ID
	data []byte
}

type loading struct {
	done chan struct{}
	data []byte
	err  error
}

func newBlobCache(max int64, load func(ctx context.Context, i id.ID) ([]byte, error)) *blobCache {
	return &blobCache{load: load, max: max, lru: list.New(), byID: map[id.ID]*list.Element{}, inflight: map[id.ID]*loading{}}
}

// get returns blob i's plain bytes, which the caller must not change.
func (c *blobCache) get(ctx context.Context, i id.ID) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.byID[i]; ok {
		c.lru.MoveToFront(e)
		data := e.Value.(*cached).data
		c.mu.Unlock()
		return data, nil
	}
	if l, ok := c.inflight[i]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.data, l.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l := &loading{done: make(chan struct{})}
	c.inflight[i] = l
	c.mu.Unlock()

	// The load is not the reader's: it finishes for the others waiting
	// on it even when this reader gives up.
	l.data, l.err = c.load(context.WithoutCancel(ctx), i)
	c.mu.Lock()
	delete(c.inflight, i)
	if l.err == nil {
		c.add(i, l.data)
	}
	c.mu.Unlock()
	close(l.done)
	return l.data, l.err
}

// has reports whether blob i is cached or being loaded.
func (c *blobCache) has(i id.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.byID[i]
	_, loading := c.inflight[i]
	return ok || loading
}

// add inserts a blob and evicts the least recently used past max; c.mu
// is held.
func (c *blobCache) add(i id.ID, data []byte) {
	if _, ok := c.byID[i]; ok {
		return
	}
	c.byID[i] = c.lru.PushFront(&cached{id: i, data: data})
	c.size += int64(len(data))
	for c.size > c.max && c.lru.Len() > 1 {
		e := c.lru.Back()
		old := e.Value.(*cached)
		c.lru.Remove(e)
		delete(c.byID, old.id)
		c.size -= int64(len(old.data))
	}
}

// bytes returns what the cache holds.
func (c *blobCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
