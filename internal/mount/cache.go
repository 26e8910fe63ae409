package mount

import (
	"container/list"
	"context"
	"sync"

	"github.com/rewind-backup/rewind/internal/id"
)

// blobCache holds decrypted blobs, least recently used first out, bounded
// by the bytes it holds. Loads of one blob by several readers at once (a
// read and a readahead of it) share one load.
//
// A cache made with recycle reuses the buffers of the blobs it drops for
// the next loads (a sequential read of a large file would otherwise
// allocate, and the runtime zero, one buffer per blob): its readers pin a
// blob while they copy from it (pin), and a dropped blob's buffer is
// reused only once no reader holds it.
type blobCache struct {
	load    func(ctx context.Context, i id.ID, buf []byte) ([]byte, error)
	max     int64
	recycle bool

	mu       sync.Mutex
	size     int64
	lru      *list.List // of *cached, most recent at the front
	byID     map[id.ID]*list.Element
	inflight map[id.ID]*loading
	free     [][]byte
}

type cached struct {
	id   id.ID
	data []byte
	// refs counts the readers copying from data; dropped is set when the
	// blob left the cache while pinned.
	refs    int
	dropped bool
}

type loading struct {
	done chan struct{}
	data []byte
	err  error
}

// maxFree bounds the buffers kept for reuse.
const maxFree = 64

func newBlobCache(max int64, recycle bool, load func(ctx context.Context, i id.ID, buf []byte) ([]byte, error)) *blobCache {
	return &blobCache{load: load, max: max, recycle: recycle, lru: list.New(), byID: map[id.ID]*list.Element{}, inflight: map[id.ID]*loading{}}
}

// get returns blob i's plain bytes, which the caller must not change. In
// a recycling cache they may be reused once dropped: readers there use
// pin.
func (c *blobCache) get(ctx context.Context, i id.ID) ([]byte, error) {
	data, _, err := c.fetch(ctx, i, false)
	return data, err
}

// pin returns blob i's plain bytes and a release that the caller must
// call once done with them; until then they are not reused.
func (c *blobCache) pin(ctx context.Context, i id.ID) ([]byte, func(), error) {
	return c.fetch(ctx, i, true)
}

func (c *blobCache) fetch(ctx context.Context, i id.ID, pin bool) ([]byte, func(), error) {
	for tries := 0; ; tries++ {
		c.mu.Lock()
		if e, ok := c.byID[i]; ok {
			c.lru.MoveToFront(e)
			ce := e.Value.(*cached)
			release := c.hold(ce, pin)
			c.mu.Unlock()
			return ce.data, release, nil
		}
		l, waiting := c.inflight[i]
		if waiting && tries < 2 {
			c.mu.Unlock()
			select {
			case <-l.done:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			if l.err != nil {
				return nil, nil, l.err
			}
			if !c.recycle {
				return l.data, func() {}, nil
			}
			// Look again, pinning it: it may have been dropped and
			// its buffer reused since.
			continue
		}
		l = &loading{done: make(chan struct{})}
		if !waiting {
			c.inflight[i] = l
		}
		var buf []byte
		if n := len(c.free); n > 0 {
			buf, c.free = c.free[n-1], c.free[:n-1]
		}
		c.mu.Unlock()

		// The load is not the reader's: it finishes for the others
		// waiting on it even when this reader gives up.
		l.data, l.err = c.load(context.WithoutCancel(ctx), i, buf)
		c.mu.Lock()
		if !waiting {
			delete(c.inflight, i)
		}
		release := func() {}
		if l.err == nil {
			ce := c.add(i, l.data)
			if ce != nil {
				release = c.hold(ce, pin)
			}
		}
		c.mu.Unlock()
		close(l.done)
		return l.data, release, l.err
	}
}

// hold pins ce for a reader when pin is set, and returns its release;
// c.mu is held.
func (c *blobCache) hold(ce *cached, pin bool) func() {
	if !pin || !c.recycle {
		return func() {}
	}
	ce.refs++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		ce.refs--
		if ce.refs == 0 && ce.dropped {
			c.reuse(ce.data)
		}
	}
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
// is held. It returns the entry, nil when the blob was cached already.
func (c *blobCache) add(i id.ID, data []byte) *cached {
	if _, ok := c.byID[i]; ok {
		return nil
	}
	ce := &cached{id: i, data: data}
	c.byID[i] = c.lru.PushFront(ce)
	c.size += int64(len(data))
	for c.size > c.max && c.lru.Len() > 1 {
		e := c.lru.Back()
		old := e.Value.(*cached)
		c.lru.Remove(e)
		delete(c.byID, old.id)
		c.size -= int64(len(old.data))
		if old.refs > 0 {
			old.dropped = true
		} else {
			c.reuse(old.data)
		}
	}
	return ce
}

// reuse keeps a dropped blob's buffer for a next load; c.mu is held.
func (c *blobCache) reuse(b []byte) {
	if c.recycle && len(c.free) < maxFree && cap(b) > 0 {
		c.free = append(c.free, b[:0])
	}
}

// bytes returns what the cache holds.
func (c *blobCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
