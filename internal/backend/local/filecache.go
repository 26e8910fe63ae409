package local

import (
	"container/list"
	"os"
	"sync"
)

// fileCache keeps a bounded number of read-only file descriptors open, least
// recently used first out. Stored files never change, so a descriptor stays
// good until its file is removed; Load checks for that (see Backend.open).
//
// A descriptor in use by a Load is counted in refs and is closed only when
// the last user releases it, even if it was evicted meanwhile.
type fileCache struct {
	limit int

	mu     sync.Mutex
	lru    list.List              // of *cachedFile, most recently used at the front; mu
	byPath map[string]*cachedFile // mu
	closed bool                   // closeAll was called: cache nothing more; mu
}

// cachedFile is one open descriptor. refs, evicted and elem are guarded by
// fileCache.mu.
type cachedFile struct {
	f       *os.File
	fd      int // f's descriptor, for fstat without allocating
	path    string
	refs    int
	evicted bool
	elem    *list.Element
}

// newFileCache returns a cache that keeps at most limit descriptors open
// when unused; with limit 0 every descriptor is closed on release.
func newFileCache(limit int) *fileCache {
	return &fileCache{limit: limit, byPath: make(map[string]*cachedFile)}
}

// acquire returns an open descriptor for path, opening the file if it is
// not cached. The caller must release it.
func (c *fileCache) acquire(path string) (*cachedFile, error) {
	c.mu.Lock()
	if cf, ok := c.byPath[path]; ok {
		cf.refs++
		c.lru.MoveToFront(cf.elem)
		c.mu.Unlock()
		return cf, nil
	}
	c.mu.Unlock()

	// Open without holding mu, so that a slow open does not stall hits.
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	cf := &cachedFile{f: f, fd: int(f.Fd()), path: path, refs: 1}

	c.mu.Lock()
	defer c.mu.Unlock()
	if other, ok := c.byPath[path]; ok {
		// Another Load opened it meanwhile: use that one.
		other.refs++
		c.lru.MoveToFront(other.elem)
		_ = f.Close()
		return other, nil
	}
	if c.limit == 0 || c.closed {
		cf.evicted = true
		return cf, nil
	}
	cf.elem = c.lru.PushFront(cf)
	c.byPath[path] = cf
	for c.lru.Len() > c.limit {
		c.evictLocked(c.lru.Back().Value.(*cachedFile))
	}
	return cf, nil
}

// release gives back a descriptor from acquire.
func (c *fileCache) release(cf *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf.refs--
	if cf.refs == 0 && cf.evicted {
		_ = cf.f.Close()
	}
}

// drop evicts cf if it is still cached, so that the next acquire of its
// path opens the file again.
func (c *fileCache) drop(cf *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !cf.evicted {
		c.evictLocked(cf)
	}
}

// evict removes the descriptor of path from the cache, if any.
func (c *fileCache) evict(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cf, ok := c.byPath[path]; ok {
		c.evictLocked(cf)
	}
}

// closeAll evicts every descriptor and stops caching new ones. Those in use
// are closed on release.
func (c *fileCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for c.lru.Len() > 0 {
		c.evictLocked(c.lru.Back().Value.(*cachedFile))
	}
}

// len returns the number of cached descriptors.
func (c *fileCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// evictLocked removes cf from the cache and closes it unless it is in use.
// c.mu must be held.
func (c *fileCache) evictLocked(cf *cachedFile) {
	cf.evicted = true
	c.lru.Remove(cf.elem)
	delete(c.byPath, cf.path)
	if cf.refs == 0 {
		_ = cf.f.Close()
	}
}
