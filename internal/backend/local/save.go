package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/backend"
)

// Save stores rd under h atomically; see the package documentation for how.
// If h exists, Save returns nil when the stored content equals rd's and an
// error wrapping backend.ErrExists otherwise.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := b.check(ctx, "save", h); err != nil {
		return err
	}
	name := b.filename(h)
	if _, err := os.Lstat(name); err == nil {
		err := b.compareExisting(ctx, h, name, rd)
		if !errors.Is(err, errVanished) {
			return err
		}
		// Removed meanwhile: store it afresh.
		if err := rd.Rewind(); err != nil {
			return backend.Wrap("save", h.String(), fmt.Errorf("rewind: %w", err))
		}
	}

	tmp, err := b.writeTemp(ctx, h, filepath.Dir(name), rd)
	if err != nil {
		return err
	}
	err = renameNoReplace(tmp, name)
	if err != nil {
		_ = os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			// A concurrent Save of the same name won the race.
			return b.compareExisting(ctx, h, name, rd)
		}
		return wrapErr("save", h.String(), err)
	}
	if err := syncDir(filepath.Dir(name)); err != nil {
		// The file is in place but may not survive a crash. Report it, so
		// that the caller does not count on it; a retry finds the file
		// and compares it.
		return wrapErr("save", h.String(), fmt.Errorf("sync folder: %w", err))
	}
	return nil
}

// writeTemp copies rd into a new temporary file in dir, made read-only and
// synced, and returns its path. On error no temporary file is left.
func (b *Backend) writeTemp(ctx context.Context, h backend.Handle, dir string, rd backend.RewindReader) (path string, err error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		// A folder removed by hand, or a repository made by an older tool:
		// make it and try once more.
		if err = b.mkdirDurable(dir); err == nil {
			f, err = os.CreateTemp(dir, tempPrefix+"*")
		}
	}
	if err != nil {
		return "", wrapErr("save", h.String(), err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()

	n, rerr, werr := copyContext(ctx, f, rd, rd.Length())
	if rerr != nil {
		// The caller's reader failed, or ctx is done: not the backend's
		// error to classify.
		return "", backend.Wrap("save", h.String(), rerr)
	}
	if werr != nil {
		return "", wrapErr("save", h.String(), werr)
	}
	if n != rd.Length() {
		return "", backend.Permanent(backend.Wrap("save", h.String(), fmt.Errorf("reader yielded %d bytes, its length is %d", n, rd.Length())))
	}
	if err := b.chownNew(f, ""); err != nil {
		return "", wrapErr("save", h.String(), err)
	}
	if err := f.Chmod(b.access.FileMode()); err != nil {
		return "", wrapErr("save", h.String(), err)
	}
	if err := f.Sync(); err != nil {
		return "", wrapErr("save", h.String(), err)
	}
	if err := f.Close(); err != nil {
		return "", wrapErr("save", h.String(), err)
	}
	return f.Name(), nil
}

// errVanished means the file that compareExisting was to compare with was
// removed meanwhile. It is not permanent: a retry stores the file.
var errVanished = errors.New("file removed while saving it")

// compareExisting returns nil if the file at name holds exactly what rd
// yields, and an error wrapping backend.ErrExists if it holds something
// else, or errVanished if there is no file at name any more.
func (b *Backend) compareExisting(ctx context.Context, h backend.Handle, name string, rd backend.RewindReader) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return backend.Wrap("save", h.String(), errVanished)
	}
	if err != nil {
		return wrapErr("save", h.String(), err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return wrapErr("save", h.String(), err)
	}
	exists := backend.Wrap("save", h.String(), fmt.Errorf("%w with different content", backend.ErrExists))
	if fi.Size() != rd.Length() {
		return exists
	}
	if err := rd.Rewind(); err != nil {
		return backend.Wrap("save", h.String(), fmt.Errorf("rewind: %w", err))
	}

	const chunk = 64 << 10
	stored := make([]byte, chunk)
	given := make([]byte, chunk)
	for remaining := fi.Size(); remaining > 0; {
		if err := ctx.Err(); err != nil {
			return backend.Wrap("save", h.String(), err)
		}
		n := int(min(remaining, chunk))
		if _, err := io.ReadFull(f, stored[:n]); err != nil {
			return wrapErr("save", h.String(), fmt.Errorf("read stored file: %w", err))
		}
		if _, err := io.ReadFull(rd, given[:n]); err != nil {
			return backend.Permanent(backend.Wrap("save", h.String(), fmt.Errorf("read content: %w", err)))
		}
		if !bytes.Equal(stored[:n], given[:n]) {
			return exists
		}
		remaining -= int64(n)
	}
	return nil
}

// renameNoReplace renames oldpath to newpath unless newpath exists, in
// which case the error matches fs.ErrExist. It uses renameat2 with
// RENAME_NOREPLACE, and link+unlink on filesystems without it.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSYS) && !errors.Is(err, syscall.ENOTSUP) {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	return os.Remove(oldpath)
}

// copyContext copies rd to w until EOF, checking ctx between chunks. size
// is the expected length, used to size the buffer. It returns the bytes
// copied and either the error of reading (or ctx's) or that of writing.
func copyContext(ctx context.Context, w io.Writer, rd io.Reader, size int64) (n int64, rerr, werr error) {
	// One byte more than expected, so that a small file takes one read
	// for its content and one for EOF.
	buf := make([]byte, min(max(size+1, 512), 1<<20))
	for {
		if err := ctx.Err(); err != nil {
			return n, err, nil
		}
		m, err := rd.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, nil, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, fmt.Errorf("read content: %w", err), nil
		}
	}
}
