package retention

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
)

// cacheHeader starts a cache file.
const cacheHeader = "rewind retention cache 1"

// Cache remembers the retain-until dates that Extend read or set, by file,
// and the snapshots whose every file it saw locked long enough (which need
// not be walked again: their dates only ever move forward). It only saves
// requests: a date in it is one the server confirmed (or accepted) for the
// file's version. It is safe for concurrent use.
type Cache struct {
	mu   sync.Mutex
	m    map[backend.Handle]time.Time
	done map[id.ID]time.Time // snapshot -> the date its files are locked until
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{m: map[backend.Handle]time.Time{}, done: map[id.ID]time.Time{}}
}

// donePrefix starts the name of a snapshot's line in a cache file.
const donePrefix = "done:"

// isDone reports whether every file of snapshot i was seen locked until t.
func (c *Cache) isDone(i id.ID, t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.done[i]
	return ok && !d.Before(t.Truncate(time.Second)) // the file keeps whole seconds
}

func (c *Cache) setDone(i id.ID, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.done[i]) {
		c.done[i] = t
	}
}

func (c *Cache) get(h backend.Handle) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[h]
	return t, ok
}

func (c *Cache) set(h backend.Handle, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.m[h]) {
		c.m[h] = t
	}
}

// Len returns the number of files in the cache.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// LoadCache reads a cache file. A missing file is an empty cache; so is an
// unreadable one, since the cache only saves requests (the error says
// why, for a warning).
func LoadCache(file string) (*Cache, error) {
	c := NewCache()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read retention cache: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || sc.Text() != cacheHeader {
		return c, fmt.Errorf("retention cache %s: not a cache file, ignored", file)
	}
	types := map[string]backend.FileType{}
	for _, t := range backend.AllTypes {
		types[t.String()] = t
	}
	for n := 2; sc.Scan(); n++ {
		secs, name, ok := strings.Cut(sc.Text(), " ")
		unix, err := strconv.ParseInt(secs, 10, 64)
		if snap, isSnap := strings.CutPrefix(name, donePrefix); isSnap && err == nil {
			i, perr := id.Parse(snap)
			if perr != nil {
				return NewCache(), fmt.Errorf("retention cache %s:%d: malformed line, cache ignored", file, n)
			}
			c.done[i] = time.Unix(unix, 0)
			continue
		}
		var h backend.Handle
		if ok && name == "config" {
			h = backend.Handle{Type: backend.ConfigFile}
		} else if dir, rest, ok2 := strings.Cut(name, "/"); ok2 {
			h = backend.Handle{Type: types[dir], Name: rest}
		}
		if !ok || err != nil || h.Type == 0 || h.Valid() != nil {
			return NewCache(), fmt.Errorf("retention cache %s:%d: malformed line, cache ignored", file, n)
		}
		c.m[h] = time.Unix(unix, 0)
	}
	return c, sc.Err()
}

// Save writes the cache to file (atomically, through a temporary file in
// the same folder, which it creates), leaving out the dates that are past
// at now: they can no longer save a request.
func (c *Cache) Save(file string, now time.Time) error {
	c.mu.Lock()
	lines := make([]string, 0, len(c.m))
	for h, t := range c.m {
		if t.After(now) {
			lines = append(lines, strconv.FormatInt(t.Unix(), 10)+" "+h.String())
		}
	}
	for i, t := range c.done {
		if t.After(now) {
			lines = append(lines, strconv.FormatInt(t.Unix(), 10)+" "+donePrefix+i.String())
		}
	}
	c.mu.Unlock()
	sort.Strings(lines)
	var buf bytes.Buffer
	buf.WriteString(cacheHeader + "\n")
	for _, l := range lines {
		buf.WriteString(l + "\n")
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write retention cache: %w", err)
	}
	f, err := os.CreateTemp(dir, ".retention-*")
	if err != nil {
		return fmt.Errorf("write retention cache: %w", err)
	}
	_, werr := f.Write(buf.Bytes())
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), file)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write retention cache: %w", werr)
	}
	return nil
}
