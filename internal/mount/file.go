package mount

import (
	"context"
	"errors"
	"sort"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// SEEK_DATA and SEEK_HOLE (lseek(2)).
const (
	seekData = 3
	seekHole = 4
)

// A file is a stored regular file. Its chunk list is read on the first
// open; reads go through the mount's blob cache.
type file struct {
	leaf

	once   sync.Once
	chunks []tree.Chunk
	// ends[i] is the offset just past chunk i.
	ends  []uint64
	errno syscall.Errno
}

// zeros answers a read that falls in a hole; the server only reads it.
var zeros = make([]byte, 1<<20)

// seqSlack is how far from the end of the last read a read may start and
// still count as sequential.
const seqSlack = 4 << 20

// handle is one open of a file: it notices sequential reads, which start
// readahead.
type handle struct {
	mu   sync.Mutex
	next int64
}

func (f *file) content(ctx context.Context) syscall.Errno {
	f.once.Do(func() {
		cs, err := snapshot.ReadableContent(f.m.ctx, f.m.r, f.meta)
		if err != nil {
			if errors.Is(err, snapshot.ErrNotBackedUp) {
				f.m.warnf("%q: %v", f.meta.Name, err)
			} else {
				f.m.warn("content list", err)
			}
			f.errno = syscall.EIO
			return
		}
		f.chunks = cs
		f.ends = make([]uint64, len(cs))
		var off uint64
		for i, c := range cs {
			off += c.Size
			f.ends[i] = off
		}
	})
	return f.errno
}

func (f *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if errno := f.content(ctx); errno != 0 {
		return nil, 0, errno
	}
	// The content never changes: the kernel may keep what it read.
	return &handle{}, fuse.FOPEN_KEEP_CACHE, 0
}

// chunkAt returns the index of the chunk holding offset off.
func (f *file) chunkAt(off uint64) int {
	return sort.Search(len(f.ends), func(i int) bool { return f.ends[i] > off })
}

func (f *file) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if errno := f.content(ctx); errno != 0 {
		return nil, errno
	}
	size := uint64(0)
	if len(f.ends) > 0 {
		size = f.ends[len(f.ends)-1]
	}
	if off < 0 || uint64(off) >= size {
		return fuse.ReadResultData(nil), 0
	}
	want := min(uint64(len(dest)), size-uint64(off))
	out := dest[:want]
	pos := uint64(off)
	i := f.chunkAt(pos)
	seq := false
	if h, ok := fh.(*handle); ok {
		// The kernel's own readahead sends several reads at once, which
		// may arrive out of order: a read near where the last one ended
		// counts as sequential.
		h.mu.Lock()
		seq = off >= h.next-seqSlack && off <= h.next+seqSlack
		h.next = max(h.next, off+int64(want))
		h.mu.Unlock()
	}
	// The blobs this read covers load at once, on as many cores as the
	// slots allow, and a sequential read's next ones with them.
	window := want
	if seq {
		window += f.m.readahead
	}
	f.readahead(i, window)
	if want <= uint64(len(zeros)) && f.holes(i, pos+want) {
		// All in one hole (most of a sparse disk image): the zeros
		// need not be written first.
		return fuse.ReadResultData(zeros[:want]), 0
	}
	for n := uint64(0); n < want; i++ {
		c := f.chunks[i]
		start := f.ends[i] - c.Size
		in := pos - start
		take := min(c.Size-in, want-n)
		if c.IsHole() {
			clear(out[n : n+take])
		} else {
			data, release, err := f.m.cache.pin(ctx, c.ID)
			if err != nil {
				f.m.warnf("%q: blob %s: %v", f.meta.Name, c.ID.Short(), err)
				return nil, syscall.EIO
			}
			if uint64(len(data)) != c.Size {
				release()
				f.m.warnf("%q: blob %s holds %d bytes, the file's list says %d", f.meta.Name, c.ID.Short(), len(data), c.Size)
				return nil, syscall.EIO
			}
			copy(out[n:n+take], data[in:in+take])
			release()
		}
		n += take
		pos += take
	}
	return fuse.ReadResultData(out), 0
}

// holes reports whether the chunks from i on are holes up to offset end.
func (f *file) holes(i int, end uint64) bool {
	for ; i < len(f.chunks); i++ {
		if !f.chunks[i].IsHole() {
			return false
		}
		if f.ends[i] >= end {
			return true
		}
	}
	return true
}

// readahead starts loading the data blobs from chunk i on, up to window
// bytes, that are not cached yet, as many at once as the mount's slots
// allow; the reader loads the others itself.
func (f *file) readahead(i int, window uint64) {
	var ahead uint64
	for ; i < len(f.chunks) && ahead < window; i++ {
		c := f.chunks[i]
		ahead += c.Size
		if c.IsHole() || f.m.cache.has(c.ID) {
			continue
		}
		select {
		case f.m.prefetch <- struct{}{}:
		default:
			return // enough loads running
		}
		go func() {
			defer func() { <-f.m.prefetch }()
			f.m.cache.get(f.m.ctx, c.ID)
		}()
	}
}

// Lseek answers SEEK_DATA and SEEK_HOLE from the chunk list: holes are the
// chunks stored as holes. The kernel answers the other whences itself.
func (f *file) Lseek(ctx context.Context, fh fs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if errno := f.content(ctx); errno != 0 {
		return 0, errno
	}
	size := f.meta.Size
	if len(f.ends) > 0 {
		size = f.ends[len(f.ends)-1]
	}
	if off >= size {
		return 0, syscall.ENXIO
	}
	for i := f.chunkAt(off); i < len(f.chunks); i++ {
		hole := f.chunks[i].IsHole()
		if (whence == seekData && !hole) || (whence == seekHole && hole) {
			return max(off, f.ends[i]-f.chunks[i].Size), 0
		}
	}
	if whence == seekData {
		return 0, syscall.ENXIO
	}
	if whence == seekHole {
		return size, 0
	}
	return 0, syscall.EINVAL
}
