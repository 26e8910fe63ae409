package repository

import (
	"container/list"
	"sync"

	"github.com/rewind-backup/rewind/internal/id"
)

// blobCache keeps recently loaded tree blobs, bounded by total bytes, so
// that walking a snapshot and its parent does not decrypt the same tree
// twice.
type blobCache struct {
	mu    sync.Mutex // guards all fields
	max   int
	size  int
	order *list.List
	items map[id.ID]*list.Element
}

type cacheItem struct {
	id   id.ID
	data []byte
}

func newBlobCache(max int) *blobCache {
	return &blobCache{max: max, order: list.New(), items: make(map[id.ID]*list.Element)}
}

func (c *blobCache) get(i id.ID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[i]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheItem).data, true
}

func (c *blobCache) add(i id.ID, data []byte) {
	if len(data) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[i]; ok {
		return
	}
	c.items[i] = c.order.PushFront(&cacheItem{id: i, data: append([]byte(nil), data...)})
	c.size += len(data)
	for c.size > c.max {
		e := c.order.Back()
		it := e.Value.(*cacheItem)
		c.order.Remove(e)
		delete(c.items, it.id)
		c.size -= len(it.data)
	}
}
