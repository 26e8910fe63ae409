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
	for n := uint64(0); n < want; i++ {
		c := f.chunks[i]
		start := f.ends[i] - c.Size
		in := pos - start
		take := min(c.Size-in, want-n)
		if c.IsHole() {
			clear(out[n : n+take])
		} else {
			data, err := f.m.cache.get(ctx, c.ID)
			if err != nil {
				f.m.warnf("%q: blob %s: %v", f.meta.Name, c.ID.Short(), err)
				return nil, syscall.EIO
			}
			if uint64(len(data)) != c.Size {
				f.m.warnf("%q: blob %s holds %d bytes, the file's list says %d", f.meta.Name, c.ID.Short(), len(data), c.Size)
				return nil, syscall.EIO
			}
			copy(out[n:n+take], data[in:in+take])
		}
		n += take
		pos += take
	}
	if h, ok := fh.(*handle); ok {
		// The kernel's own readahead sends several reads at once, which
		// may arrive out of order: a read near where the last one ended
		// counts as sequential.
		h.mu.Lock()
		seq := off >= h.next-seqSlack && off <= h.next+seqSlack
		h.next = max(h.next, off+int64(want))
		h.mu.Unlock()
		if seq {
			f.readahead(i)
		}
	}
	return fuse.ReadResultData(out), 0
}

// readahead starts loading the data blobs from chunk i on, up to the
// mount's readahead window, that are not cached yet.
func (f *file) readahead(i int) {
	var ahead uint64
	for ; i < len(f.chunks) && ahead < f.m.readahead; i++ {
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
