package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rewind-backup/rewind/internal/chunker"
	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// fileJob is a regular file to read.
type fileJob struct {
	dir  *dirState
	slot int
	path string
	prev *tree.Node
	// first is set on the first occurrence of a hard-linked inode, which
	// publishes its content; linkOf on later ones, which copy it.
	first  *linkState
	linkOf *linkState
	// gate is set on a SQLite database with siblings, which it tells
	// whether it was captured; sibOf on a sibling, which waits for it
	// (sqlite.go).
	gate, sibOf *dbGate
}

type devIno struct{ dev, ino uint64 }

// linkState carries the content of a hard-linked inode to its other names.
type linkState struct {
	done chan struct{}
	node *tree.Node
}

// readAttempts is how often a file that changes while it is read is read.
const readAttempts = 2

func (a *Archiver) fileWorker(ctx context.Context) error {
	rd := &fileReader{a: a}
	for job := range a.files {
		if err := a.doFile(ctx, rd, job); err != nil {
			return err
		}
		if err := a.childDone(ctx, job.dir); err != nil {
			return err
		}
	}
	return nil
}

func (a *Archiver) doFile(ctx context.Context, rd *fileReader, job *fileJob) error {
	n := &job.dir.nodes[job.slot]
	rd.captured = false
	if job.gate != nil {
		defer func() { job.gate.close(rd.captured) }()
	}
	if job.linkOf != nil {
		select {
		case <-job.linkOf.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f := job.linkOf.node; f != nil {
			n.Content, n.ContentLists, n.Size, n.Flags, n.Error = f.Content, f.ContentLists, f.Size, f.Flags, f.Error
			n.Xattrs = f.Xattrs
			if f.Flags&tree.FlagUnreadable != 0 {
				// Each name of the inode is a file the snapshot lacks.
				a.fileError(job.path, errors.New(f.Error))
			}
			a.countFile(job.path, job.prev, n)
			a.prog.Done(1, int64(n.Size))
			return nil
		}
	}
	if job.first != nil {
		defer func() {
			job.first.node = n
			close(job.first.done)
		}()
	}
	if job.sibOf != nil {
		if done, err := a.sqliteSiblingDone(ctx, job, n); done || err != nil {
			return err
		}
	}
	err := a.readFile(ctx, rd, job.path, n, job.prev)
	if err != nil {
		rd.captured = false
	}
	if err != nil {
		if ctx.Err() != nil || isRepoError(err) {
			return err
		}
		var gone *vanishedError
		if errors.As(err, &gone) {
			a.st.vanished.Add(1)
			a.log.Info("vanished before it was read", "path", job.path)
			a.st.totalFiles.Add(-1)
			n.Type = removed
			return nil
		}
		n.Flags |= tree.FlagUnreadable
		n.Error = err.Error()
		n.Content, n.ContentLists = nil, nil
		a.fileError(job.path, err)
	}
	a.countFile(job.path, job.prev, n)
	a.prog.Done(1, int64(n.Size))
	return nil
}

func (a *Archiver) countFile(p string, prev, n *tree.Node) {
	isNew := prev == nil || prev.Type != tree.File
	if isNew {
		a.st.filesNew.Add(1)
	} else {
		a.st.filesChanged.Add(1)
	}
	if a.opt.OnFile != nil {
		a.opt.OnFile(p, isNew)
	}
}

type vanishedError struct{ err error }

func (e *vanishedError) Error() string { return e.err.Error() }

// repoError marks an error from storing data, which is fatal for the
// backup, unlike an error reading one source file.
type repoError struct{ err error }

func (e *repoError) Error() string { return e.err.Error() }
func (e *repoError) Unwrap() error { return e.err }

func isRepoError(err error) bool {
	var r *repoError
	return errors.As(err, &r)
}

// fileReader holds one worker's buffers.
type fileReader struct {
	a      *Archiver
	buf    []byte
	chunks []tree.Chunk
	// read counts the bytes read by the current attempt.
	read int64
	// afterRead, when set, is called with read after each piece is read.
	afterRead func(read int64)
	// captured is set when the file read was a SQLite database captured
	// through its backup API.
	captured bool
}

// readHook, when set (by tests only), is called after each piece of a
// file is read, with the file's path, the attempt (from 1) and the bytes
// that attempt has read, so that a test can change the file at a chosen
// point of its read.
var readHook func(p string, attempt int, read int64)

// readFile reads, chunks and hashes one file into n. A file that changed
// while it was read (it grew, shrank, or was rewritten: its size, mtime
// or ctime differ afterwards, or it ended before its size) is read again
// from the start, up to readAttempts times in all. If it still changed on
// the last attempt, what that attempt read is kept and flagged
// FlagChanged; for a file that shrank, that is the bytes that were still
// there, and the size recorded is their length.
//
// The file is read through a raw descriptor: an os.File would cost two
// more syscalls per file (a stat when opened, a fcntl for Fd), which adds
// up over millions of small files.
//
// With Options.BlockDelta, a file whose changed ranges it names is built
// from prev's chunks and those ranges instead (readFileDelta).
func (a *Archiver) readFile(ctx context.Context, rd *fileReader, p string, n, prev *tree.Node) error {
	fd, err := openNoAtime(a.src(p))
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return &vanishedError{err}
		}
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &vanishedError{errors.New("replaced by a non-regular file")}
	}
	for attempt := 1; ; attempt++ {
		fresh := fs.NodeFromStat(n.Name, &st)
		n.Size, n.MTime, n.CTime, n.Inode, n.Mode, n.UID, n.GID, n.Links = fresh.Size, fresh.MTime, fresh.CTime, fresh.Inode, fresh.Mode, fresh.UID, fresh.GID, fresh.Links
		x, err := fs.ReadXattrsFd(fd)
		if err != nil {
			a.fileError(p, fmt.Errorf("xattrs: %w", err))
		}
		n.Xattrs = x
		if err := fs.ReadInodeFlagsInto(n, fd); err != nil {
			a.fileError(p, err)
		}
		if attempt == 1 && a.isSQLite(p, fd, st.Size) {
			err := a.captureSQLite(ctx, rd, p, n, prev, &st)
			if !errors.Is(err, errSQLiteRaw) {
				rd.captured = err == nil
				return err
			}
		}
		if attempt == 1 && a.opt.BlockDelta != nil {
			if ok, err := a.readFileDelta(ctx, rd, fd, p, n, prev, &st); ok || err != nil {
				return err
			}
		}
		rd.read = 0
		if h := readHook; h != nil {
			rd.afterRead = func(read int64) { h(p, attempt, read) }
		}
		total, err := rd.chunkFile(ctx, fdFile(fd), int64(st.Size), st.Blocks*512 < st.Size)
		if attempt > 1 {
			a.st.bytesReread.Add(rd.read)
		}
		shrank := errors.Is(err, errShrank)
		if err != nil && !shrank {
			return err
		}
		var after unix.Stat_t
		if err := unix.Fstat(fd, &after); err != nil {
			return fmt.Errorf("fstat: %w", err)
		}
		if err := a.setContent(ctx, n, rd.chunks, total); err != nil {
			return err
		}
		if !shrank && after.Size == st.Size && after.Mtim == st.Mtim && after.Ctim == st.Ctim {
			return nil
		}
		if attempt == readAttempts {
			// Keep what was read, marked as torn, with the times from before
			// the read so that the next backup reads it again.
			n.Flags |= tree.FlagChanged
			a.st.filesTorn.Add(1)
			a.log.Warn("file changed while it was read, every time it was read; kept what the last read saw", "path", p, "attempts", attempt, "shrank", shrank)
			return nil
		}
		if attempt == 1 {
			a.st.filesReread.Add(1)
		}
		a.log.Info("file changed while it was read; reading it again", "path", p, "shrank", shrank)
		st = after
	}
}

// errShrank: a file ended before the size it had when its read began.
var errShrank = errors.New("file shrank while it was read")

func openNoAtime(p string) (int, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NOATIME | unix.O_CLOEXEC | unix.O_NONBLOCK
	for {
		fd, err := unix.Open(p, flags, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EPERM && flags&unix.O_NOATIME != 0:
			// O_NOATIME needs ownership or CAP_FOWNER.
			flags &^= unix.O_NOATIME
			continue
		}
		return fd, err
	}
}

// fdFile reads a raw descriptor with pread.
type fdFile int

// ReadAt implements io.ReaderAt.
func (f fdFile) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		k, err := unix.Pread(int(f), b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "read", Path: "", Err: err}
		}
		if k == 0 {
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}

// setContent stores the chunk list in n, moving a long one to content-list
// blobs.
func (a *Archiver) setContent(ctx context.Context, n *tree.Node, chunks []tree.Chunk, total int64) error {
	n.Size = uint64(total)
	n.ContentLists = nil
	if len(chunks) <= tree.MaxInlineChunks {
		n.Content = append([]tree.Chunk(nil), chunks...)
		return nil
	}
	n.Content = nil
	for start := 0; start < len(chunks); start += tree.MaxInlineChunks {
		end := min(start+tree.MaxInlineChunks, len(chunks))
		i, err := a.store.saveBlob(ctx, pack.TreeBlob, tree.EncodeContentList(chunks[start:end]))
		if err != nil {
			return &repoError{err}
		}
		n.ContentLists = append(n.ContentLists, i)
	}
	return nil
}

// chunkFile cuts the first size bytes of f into rd.chunks, recording holes
// without reading them. It returns the number of bytes covered: size, or
// with errShrank, the bytes up to where the file ended early.
func (rd *fileReader) chunkFile(ctx context.Context, f fdFile, size int64, sparse bool) (int64, error) {
	a := rd.a
	rd.chunks = rd.chunks[:0]
	if size == 0 {
		return 0, nil
	}
	profile := repository.ProfileDefault
	if size >= a.opt.LargeFile {
		profile = repository.ProfileSmall
	}
	c := a.repo.Chunker(profile)
	regions := []fs.Region{{Off: 0, Len: size}}
	// Large files are asked for holes; small ones only when they take less
	// space than their size.
	if size > 1<<20 || sparse {
		var err error
		if regions, err = fs.DataRegionsFd(int(f), size); err != nil {
			return 0, err
		}
	}
	if rd.afterRead != nil {
		rd.afterRead(0)
	}
	var pos int64
	for _, reg := range regions {
		if reg.Off > pos {
			rd.chunks = append(rd.chunks, tree.Chunk{Size: uint64(reg.Off - pos)})
		}
		got, err := rd.chunkRegion(ctx, c, io.NewSectionReader(f, reg.Off, reg.Len), reg.Len)
		if err != nil {
			if errors.Is(err, errShrank) {
				return reg.Off + got, err
			}
			return 0, err
		}
		pos = reg.Off + reg.Len
	}
	if pos < size {
		rd.chunks = append(rd.chunks, tree.Chunk{Size: uint64(size - pos)})
	}
	return size, nil
}

// chunkRegion chunks the n bytes of r. It returns how many it chunked:
// n, or fewer with errShrank when r ended early.
func (rd *fileReader) chunkRegion(ctx context.Context, c *chunker.Chunker, r io.Reader, n int64) (int64, error) {
	a := rd.a
	if len(rd.buf) < c.BufferSize() {
		rd.buf = make([]byte, c.BufferSize())
	}
	if n <= int64(c.Params().Min) {
		// Small file or region: one chunk, no chunker.
		b := rd.buf[:n]
		k, err := io.ReadFull(r, b)
		a.st.bytesRead.Add(int64(k))
		rd.read += int64(k)
		if rd.afterRead != nil {
			rd.afterRead(rd.read)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if k > 0 {
				if err := rd.addChunk(ctx, b[:k]); err != nil {
					return 0, err
				}
			}
			return int64(k), fmt.Errorf("%w: read %d bytes of %d", errShrank, k, n)
		}
		if err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		return n, rd.addChunk(ctx, b)
	}
	cr := c.NewReader(r, rd.buf)
	var got int64
	for {
		chunk, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		got += int64(len(chunk))
		a.st.bytesRead.Add(int64(len(chunk)))
		rd.read += int64(len(chunk))
		if rd.afterRead != nil {
			rd.afterRead(rd.read)
		}
		if err := rd.addChunk(ctx, chunk); err != nil {
			return 0, err
		}
	}
	if got != n {
		return got, fmt.Errorf("%w: read %d bytes of a %d-byte region", errShrank, got, n)
	}
	return n, nil
}

// addChunk hashes a chunk, appends it to the list, and hands it to the
// savers if the repository does not have it yet.
func (rd *fileReader) addChunk(ctx context.Context, data []byte) error {
	a := rd.a
	var i id.ID
	if isZero(data) {
		if v, ok := a.zeroIDs.Load(len(data)); ok {
			i = v.(id.ID)
		} else {
			i = a.repo.Key().BlobID(data)
			a.zeroIDs.Store(len(data), i)
		}
	} else {
		i = a.repo.Key().BlobID(data)
	}
	rd.chunks = append(rd.chunks, tree.Chunk{ID: i, Size: uint64(len(data))})
	if a.repo.HasBlob(i) {
		return nil
	}
	ok, err := a.store.reserve(i)
	if err != nil {
		return &repoError{err}
	}
	if !ok {
		return nil
	}
	bp, _ := a.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = append((*bp)[:0], data...)
	select {
	case a.saves <- saveJob{id: i, buf: bp}:
		return nil
	case <-ctx.Done():
		return &repoError{ctx.Err()}
	}
}

var zeroPage [4096]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if string(b[:n]) != string(zeroPage[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// readFileInodeFlags reads the inode flags of the unchanged file p, whose
// content is not read. Failing that, n keeps none: the file was readable
// for the parent snapshot, and its next change reads them.
func (a *Archiver) readFileInodeFlags(n *tree.Node, p string) {
	fd, err := openNoAtime(a.src(p))
	if err == nil {
		err = fs.ReadInodeFlagsInto(n, fd)
		unix.Close(fd)
	}
	if err != nil {
		a.log.Debug("inode flags not read", "path", p, "err", err)
	}
}
