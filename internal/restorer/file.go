package restorer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// fileJob is one regular file to write.
type fileJob struct {
	dir  *rdir
	path string // path in the snapshot, for messages
	rel  string
	node *tree.Node
	f    *os.File // already created (first name of a hard-linked inode)
	// absent: in a dry run, nothing would be at the path when the file is
	// written (makeWay removes what is there).
	absent bool
}

func (r *Restorer) worker(ctx context.Context) error {
	var buf []byte
	for job := range r.jobs {
		if !r.full.Load() {
			var err error
			if r.opt.DryRun {
				buf, err = r.restoreFileDry(ctx, job, buf)
			} else {
				buf, err = r.restoreFile(ctx, job, buf)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
					r.full.Store(true)
					err = fmt.Errorf("%w: %w", ErrDiskFull, err)
				}
				r.fail(job.path, err)
			}
		} else if job.f != nil {
			job.f.Close()
		}
		if err := r.childDone(job.dir); err != nil {
			return err
		}
	}
	return nil
}

// createFile creates name in d for writing. With Overwrite, an existing
// regular file is opened as it is, so that only differing chunks are
// rewritten; anything else in the way is removed first.
func (r *Restorer) createFile(d *rdir, name string) (*os.File, error) {
	if r.opt.Overwrite {
		const flags = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
		fd, err := unix.Openat(d.fd, name, flags, 0)
		if err == unix.EPERM && clearFixedFlags(d.fd, name) {
			// An immutable or append-only file an earlier restore left.
			fd, err = unix.Openat(d.fd, name, flags, 0)
		}
		if err == nil {
			var st unix.Stat_t
			// A file with other hard links is replaced, not written into, since
			// its other names may lie outside the target.
			if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1 {
				return os.NewFile(uintptr(fd), name), nil
			}
			unix.Close(fd)
		}
	}
	return fs.CreateFileAt(d.fd, name, r.opt.Overwrite)
}

// clearFixedFlags clears the immutable and append-only flags of the
// regular file name in dirfd, and reports whether opening it again may
// now succeed.
func clearFixedFlags(dirfd int, name string) bool {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	return fs.ClearFixedFlags(fd) == nil
}

// restoreFile writes one file's content and metadata. A chunk that cannot
// be loaded leaves a hole and is reported; the other chunks are written.
func (r *Restorer) restoreFile(ctx context.Context, job *fileJob, buf []byte) ([]byte, error) {
	n := job.node
	f := job.f
	if f == nil {
		var err error
		if f, err = r.createFile(job.dir, n.Name); err != nil {
			return buf, err
		}
	}
	defer f.Close()
	content, err := snapshot.ReadableContent(ctx, r.repo, n)
	if err != nil {
		return buf, fmt.Errorf("chunk list: %w", err)
	}
	var existing int64 = -1
	if r.opt.Overwrite {
		if fi, err := f.Stat(); err == nil {
			existing = fi.Size()
		}
	}
	unchanged := existing == int64(n.Size)
	if existing <= 0 {
		fs.SetEarlyInodeFlags(f, n)
	}
	// Set the size before writing, so that no write extends the file: a
	// filesystem that preallocates past the end of a growing file (XFS)
	// would otherwise keep that space inside the file once it was
	// extended over it, as an unwritten extent after the data. A file
	// that already has the size is not truncated: that would count as
	// modifying a file left alone.
	if existing != int64(n.Size) {
		if err := f.Truncate(int64(n.Size)); err != nil {
			return buf, fmt.Errorf("set size: %w", err)
		}
	}
	var off int64
	var lost []error
	var cmp []byte
	for _, c := range content {
		var diff bool
		if diff, cmp = r.differs(f, existing, off, c, cmp); !diff {
			off += int64(c.Size)
			continue
		}
		unchanged = false
		if c.IsHole() {
			// The old file holds data where the snapshot has a hole.
			if err := punchHole(f, off, int64(c.Size), existing); err != nil {
				return buf, err
			}
			off += int64(c.Size)
			continue
		}
		buf, err = r.repo.LoadBlob(ctx, pack.DataBlob, c.ID, buf)
		if err != nil {
			if ctx.Err() != nil {
				return buf, ctx.Err()
			}
			lost = append(lost, fmt.Errorf("bytes %d-%d: %w", off, off+int64(c.Size), err))
			off += int64(c.Size)
			continue
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return buf, fmt.Errorf("write: %w", err)
		}
		off += int64(c.Size)
	}
	if r.opt.Verify && len(lost) == 0 {
		if err := r.verifyFile(f, content, &cmp); err != nil {
			return buf, err
		}
		r.verified.Add(1)
	}
	if r.opt.Sync && !unchanged && len(lost) == 0 {
		if err := f.Sync(); err != nil {
			return buf, fmt.Errorf("sync: %w", err)
		}
	}
	opts := r.applyOpts()
	// A file just created has no attributes to remove, unless it inherited
	// the target's default ACL (folders below it inherit it too).
	opts.Fresh = existing < 0 && !r.inheritsACL
	if err := r.metaApplied(job.path, fs.ApplyMetaFd(f, n, opts)); err != nil {
		lost = append(lost, err)
	}
	switch {
	case len(lost) > 0:
		// Counted with the errors, not as restored.
	case unchanged && existing >= 0:
		r.skipped.Add(1)
	default:
		r.files.Add(1)
		r.bytes.Add(int64(n.Size))
	}
	if r.opt.Progress != nil {
		r.opt.Progress(1, int64(n.Size))
	}
	if len(lost) > 0 {
		return buf, errors.Join(lost...)
	}
	return buf, nil
}

// differs reports whether the file f, which had the size existing (-1:
// created empty) before the restore, must be written at chunk c at off:
// a data chunk it does not hold, or data where c is a hole. cmp is a
// buffer it reuses. A restore writes what differs, and a dry run calls a
// file that differs nowhere unchanged.
func (r *Restorer) differs(f *os.File, existing, off int64, c tree.Chunk, cmp []byte) (bool, []byte) {
	if c.IsHole() {
		return existing > off && !isHole(f, off, min(off+int64(c.Size), existing)), cmp
	}
	if existing < off+int64(c.Size) {
		return true, cmp
	}
	cmp, err := readAt(f, cmp, off, int(c.Size))
	return err != nil || r.repo.Key().BlobID(cmp) != c.ID, cmp
}

func readAt(f *os.File, buf []byte, off int64, n int) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := f.ReadAt(buf, off)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return buf, err
}

// isHole reports whether [off, end) of f is a hole already, so that a
// file restored before keeps its holes without being written to.
func isHole(f *os.File, off, end int64) bool {
	data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	return errors.Is(err, unix.ENXIO) || (err == nil && data >= end)
}

// verifyFile verifies f, which a new file was created write-only as: it
// is then opened again for reading through /proc/self/fd, which leads to
// the inode just written whatever has happened to its name since.
func (r *Restorer) verifyFile(f *os.File, content []tree.Chunk, buf *[]byte) error {
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if fl&unix.O_ACCMODE == unix.O_WRONLY {
		rf, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("verify: reopen for reading: %w", err)
		}
		defer rf.Close()
		f = rf
	}
	return r.verify(f, content, buf)
}

// punchHole makes [off, off+size) read as zeros in a file that had data
// there, keeping it sparse where the filesystem allows.
func punchHole(f *os.File, off, size, existing int64) error {
	end := min(off+size, existing)
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, end-off)
	if err == nil {
		return nil
	}
	zero := make([]byte, 1<<16)
	for p := off; p < end; p += int64(len(zero)) {
		w := zero[:min(int64(len(zero)), end-p)]
		if _, err := f.WriteAt(w, p); err != nil {
			return fmt.Errorf("clear hole: %w", err)
		}
	}
	return nil
}

// verify re-reads a written file and checks every chunk's hash and every
// hole's zeros.
func (r *Restorer) verify(f *os.File, content []tree.Chunk, buf *[]byte) error {
	var off int64
	var err error
	for _, c := range content {
		*buf, err = readAt(f, *buf, off, int(min(c.Size, 1<<24)))
		if err != nil {
			return fmt.Errorf("verify: read at %d: %w", off, err)
		}
		if c.IsHole() {
			for p := int64(0); p < int64(c.Size); p += int64(len(*buf)) {
				*buf, err = readAt(f, *buf, off+p, int(min(int64(c.Size)-p, 1<<24)))
				if err != nil {
					return fmt.Errorf("verify: read at %d: %w", off+p, err)
				}
				for _, b := range *buf {
					if b != 0 {
						return fmt.Errorf("verify: hole at %d holds data", off+p)
					}
				}
			}
		} else if r.repo.Key().BlobID(*buf) != c.ID {
			return fmt.Errorf("verify: bytes %d-%d differ from the snapshot", off, off+int64(c.Size))
		}
		off += int64(c.Size)
	}
	return nil
}
