package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// ByteRange is a run of bytes of a file.
type ByteRange struct {
	Off, Len int64
}

// BlockDelta, in Options, lets a caller that knows which parts of a file
// changed since the parent snapshot (a database backup that read its
// write-ahead log) spare reading the rest. It is asked about each
// regular file that is read and has a parent node with readable content
// no larger than the file is now: ok true means that only the bytes in
// ranges (sorted, non-overlapping), and those past the parent's size, can
// differ from the parent's content. The file's content list is then the
// parent's, with every chunk that meets a range replaced by the same
// bytes read afresh, and the grown tail chunked as usual. ok false reads
// the file whole. It is called from many goroutines.
type BlockDelta func(path string, prevSize, size int64) (ranges []ByteRange, ok bool)

// DeltaStats counts what BlockDelta saved.
type DeltaStats struct {
	// Files were built from the parent's chunks and fresh ones.
	Files int64
	// BytesRead were read for them (changed chunks and grown tails);
	// BytesReused were taken from the parent's chunks without reading.
	BytesRead, BytesReused int64
}

type deltaCounters struct {
	files, read, reused atomic.Int64
}

// DeltaStats returns the counts of the files read with Options.BlockDelta.
func (a *Archiver) DeltaStats() DeltaStats {
	return DeltaStats{Files: a.delta.files.Load(), BytesRead: a.delta.read.Load(), BytesReused: a.delta.reused.Load()}
}

// deltaChunks builds the content of the file open as fd from prev's
// chunks and the ranges that changed, into rd.chunks. It returns false
// (nothing read) when the delta does not apply: no BlockDelta, a parent
// node that cannot be used, or a file that shrank.
func (a *Archiver) deltaChunks(ctx context.Context, rd *fileReader, fd int, p string, prev *tree.Node, size int64) (bool, error) {
	if a.opt.BlockDelta == nil || prev == nil || prev.Type != tree.File || prev.Flags&tree.FlagUnreadable != 0 ||
		int64(prev.Size) > size || prev.Size == 0 {
		return false, nil
	}
	ranges, ok := a.opt.BlockDelta(p, int64(prev.Size), size)
	if !ok {
		return false, nil
	}
	ok, st, err := a.buildDelta(ctx, rd, fdFile(fd), prev, size, ranges)
	if ok && err == nil {
		a.delta.files.Add(1)
		a.delta.read.Add(st.BytesRead)
		a.delta.reused.Add(st.BytesReused)
	}
	return ok, err
}

// buildDelta builds the content of a version of size bytes, read from f,
// from prev's chunks, reading again only the chunks that meet ranges and
// the tail past prev's size, into rd.chunks. It returns false (nothing
// read) when prev's content cannot be used, and what it read and reused.
func (a *Archiver) buildDelta(ctx context.Context, rd *fileReader, f io.ReaderAt, prev *tree.Node, size int64, ranges []ByteRange) (bool, DeltaStats, error) {
	if prev == nil || prev.Type != tree.File || prev.Flags&tree.FlagUnreadable != 0 ||
		int64(prev.Size) > size || prev.Size == 0 {
		return false, DeltaStats{}, nil
	}
	ranges = sortRanges(ranges)
	if !a.contentIndexed(ctx, prev) {
		return false, DeltaStats{}, nil
	}
	old := prev.Content
	if len(prev.ContentLists) > 0 {
		var err error
		if old, err = snapshot.LoadContent(ctx, a.repo, prev); err != nil {
			return false, DeltaStats{}, nil
		}
	}
	var sum uint64
	for _, c := range old {
		sum += c.Size
	}
	if sum != prev.Size {
		return false, DeltaStats{}, nil
	}
	c := a.repo.Chunker(repository.ProfileSmall)
	if len(rd.buf) < c.BufferSize() {
		rd.buf = make([]byte, c.BufferSize())
	}
	maxPiece := int64(c.Params().Max)
	rd.chunks = rd.chunks[:0]
	var off, read, reused int64
	ri := 0
	for _, ch := range old {
		end := off + int64(ch.Size)
		for ri < len(ranges) && ranges[ri].Off+ranges[ri].Len <= off {
			ri++
		}
		if ri < len(ranges) && ranges[ri].Off < end {
			// The chunk meets a changed range: read its bytes again, in
			// pieces no larger than a chunk (a hole chunk can be long).
			for o := off; o < end; {
				n := min(end-o, maxPiece)
				b := rd.buf[:n]
				if k, err := f.ReadAt(b, o); err != nil {
					if err == io.EOF {
						return false, DeltaStats{}, fmt.Errorf("%w: read %d bytes at %d", errShrank, k, o)
					}
					return false, DeltaStats{}, fmt.Errorf("read: %w", err)
				}
				if err := rd.addChunk(ctx, b); err != nil {
					return false, DeltaStats{}, err
				}
				o += n
				read += n
				a.st.bytesRead.Add(n)
			}
		} else {
			rd.chunks = append(rd.chunks, ch)
			reused += int64(ch.Size)
		}
		off = end
	}
	if size > off {
		got, err := rd.chunkRegion(ctx, c, io.NewSectionReader(f, off, size-off), size-off)
		read += got
		if err != nil {
			return false, DeltaStats{}, err
		}
	}
	return true, DeltaStats{Files: 1, BytesRead: read, BytesReused: reused}, nil
}

// readFileDelta is readFile for a file that deltaChunks can build: one
// read, whose result is kept even when the file changed meanwhile
// (flagged FlagChanged, as readFile's last attempt does). It returns
// false when the delta does not apply and the file must be read whole.
func (a *Archiver) readFileDelta(ctx context.Context, rd *fileReader, fd int, p string, n, prev *tree.Node, st *unix.Stat_t) (bool, error) {
	ok, err := a.deltaChunks(ctx, rd, fd, p, prev, st.Size)
	if errors.Is(err, errShrank) {
		// Shrunk while read: read it whole, as any changing file.
		return false, nil
	}
	if !ok || err != nil {
		return ok, err
	}
	if err := a.setContent(ctx, n, rd.chunks, st.Size); err != nil {
		return true, err
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return true, fmt.Errorf("fstat: %w", err)
	}
	if after.Size != st.Size || after.Mtim != st.Mtim || after.Ctim != st.Ctim {
		n.Flags |= tree.FlagChanged
		a.st.filesTorn.Add(1)
		a.log.Info("file changed while its changed blocks were read; kept what was read", "path", p)
	}
	return true, nil
}

// sortRanges sorts ranges and merges the ones that touch.
func sortRanges(rs []ByteRange) []ByteRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Off < rs[j].Off })
	out := rs[:0]
	for _, r := range rs {
		if k := len(out); k > 0 && r.Off <= out[k-1].Off+out[k-1].Len {
			out[k-1].Len = max(out[k-1].Len, r.Off+r.Len-out[k-1].Off)
			continue
		}
		out = append(out, r)
	}
	return out
}
