package local

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

// writeFiles makes n files of size bytes in dir and returns their paths.
func writeFiles(t testing.TB, dir string, n, size int) []string {
	t.Helper()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%03d", i))
		if err := os.WriteFile(paths[i], make([]byte, size), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

func TestFileCacheBounded(t *testing.T) {
	paths := writeFiles(t, t.TempDir(), 20, 10)
	c := newFileCache(5)
	for round := range 3 {
		for _, p := range paths {
			cf, err := c.acquire(p)
			if err != nil {
				t.Fatal(err)
			}
			c.release(cf)
			if c.len() > 5 {
				t.Fatalf("round %d: %d descriptors cached, limit 5", round, c.len())
			}
		}
	}
	// The most recently used file is a hit.
	last := paths[len(paths)-1]
	cf1, _ := c.acquire(last)
	cf2, _ := c.acquire(last)
	if cf1 != cf2 {
		t.Error("two acquires of a cached file gave different descriptors")
	}
	c.release(cf1)
	c.release(cf2)
	c.closeAll()
	if c.len() != 0 {
		t.Fatalf("%d descriptors cached after closeAll", c.len())
	}
}

// TestFileCacheInUse checks that an evicted descriptor stays open until its
// last user releases it.
func TestFileCacheInUse(t *testing.T) {
	paths := writeFiles(t, t.TempDir(), 3, 10)
	c := newFileCache(1)
	held, err := c.acquire(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths[1:] {
		cf, err := c.acquire(p) // evicts paths[0]
		if err != nil {
			t.Fatal(err)
		}
		c.release(cf)
	}
	if _, err := held.f.ReadAt(make([]byte, 1), 0); err != nil {
		t.Fatalf("read through an evicted descriptor still in use: %v", err)
	}
	c.release(held)
	if _, err := held.f.ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("descriptor still open after evicted and released")
	}
	c.closeAll()
}

// TestFileCacheConcurrent hammers a small cache from many goroutines; run
// with -race.
func TestFileCacheConcurrent(t *testing.T) {
	paths := writeFiles(t, t.TempDir(), 16, 100)
	c := newFileCache(4)
	var wg sync.WaitGroup
	for g := range 8 {
		rng := rand.New(rand.NewPCG(uint64(g), 0))
		wg.Go(func() {
			buf := make([]byte, 10)
			for range 2000 {
				p := paths[rng.IntN(len(paths))]
				cf, err := c.acquire(p)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := cf.f.ReadAt(buf, 50); err != nil {
					t.Errorf("read %s: %v", p, err)
				}
				if rng.IntN(10) == 0 {
					c.evict(p)
				}
				c.release(cf)
			}
		})
	}
	wg.Wait()
	c.closeAll()
}

// BenchmarkLoadRangeCache compares 4 KiB range Loads with and without the
// descriptor cache, over more packs than the cache holds and fewer.
func BenchmarkLoadRangeCache(b *testing.B) {
	// The pack size does not change the cost of a range read; 4 MiB keeps
	// the setup short.
	const packSize, rangeSize = 4 << 20, 4 << 10
	dir := b.TempDir()
	be, err := Create(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, packSize)
	var packs []backend.Handle
	for i := range 2 * maxOpenFiles {
		h := backend.Handle{Type: backend.PackFile, Name: fmt.Sprintf("%064x", i*7919)}
		data[0] = byte(i)
		if err := be.Save(context.Background(), h, backend.NewByteReader(data)); err != nil {
			b.Fatal(err)
		}
		packs = append(packs, h)
	}

	buf := make([]byte, rangeSize)
	read := func(rd io.Reader) error {
		_, err := io.ReadFull(rd, buf)
		return err
	}
	for _, limit := range []int{0, maxOpenFiles} {
		for _, npacks := range []int{8, 2 * maxOpenFiles} {
			b.Run(fmt.Sprintf("cache=%d/packs=%d", limit, npacks), func(b *testing.B) {
				be := newBackend(dir, limit)
				defer be.Close()
				b.SetBytes(rangeSize)
				for b.Loop() {
					h := packs[rng.IntN(npacks)]
					off := rng.Int64N(packSize - rangeSize)
					if err := be.Load(context.Background(), h, rangeSize, off, read); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
