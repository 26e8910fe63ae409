package local

import (
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

// Load calls fn with a reader over length bytes of h from offset (length 0:
// to the end). The reader uses pread on a cached descriptor, so concurrent
// Loads of one file share it.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	if err := b.check(ctx, "load", h); err != nil {
		return err
	}
	if offset < 0 || length < 0 {
		return backend.Permanent(backend.Wrap("load", h.String(), fmt.Errorf("invalid range: offset %d, length %d", offset, length)))
	}
	cf, size, err := b.open(b.filename(h))
	if err != nil {
		return wrapErr("load", h.String(), err)
	}
	defer b.files.release(cf)

	// Compared without computing offset+length, which may overflow.
	if offset > size || int64(length) > size-offset {
		return backend.Permanent(backend.Wrap("load", h.String(), fmt.Errorf("%d bytes at offset %d: past the end of the file (%d bytes): %w", length, offset, size, io.ErrUnexpectedEOF)))
	}
	n := int64(length)
	if length == 0 {
		n = size - offset
	}
	return fn(io.NewSectionReader(cf.f, offset, n))
}

// open returns a descriptor of the file at path and its size. The caller
// must release the descriptor.
func (b *Backend) open(path string) (*cachedFile, int64, error) {
	for attempt := 0; ; attempt++ {
		cf, err := b.files.acquire(path)
		if err != nil {
			return nil, 0, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(cf.fd, &st); err != nil {
			b.files.drop(cf)
			b.files.release(cf)
			return nil, 0, &fs.PathError{Op: "fstat", Path: path, Err: err}
		}
		if st.Nlink == 0 && attempt == 0 {
			// Removed or replaced since it was cached: open it anew.
			b.files.drop(cf)
			b.files.release(cf)
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			b.files.drop(cf)
			b.files.release(cf)
			return nil, 0, backend.Permanent(fmt.Errorf("%s: not a regular file", path))
		}
		return cf, st.Size, nil
	}
}

// Stat returns the size of h.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := b.check(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	fi, err := os.Stat(b.filename(h))
	if err != nil {
		return backend.FileInfo{}, wrapErr("stat", h.String(), err)
	}
	if !fi.Mode().IsRegular() {
		return backend.FileInfo{}, backend.Permanent(backend.Wrap("stat", h.String(), errors.New("not a regular file")))
	}
	return backend.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// Remove deletes h and syncs its folder, so that a removal reported done
// survives a crash, and removals become durable in the order they were
// made. The file's cached descriptor, if any, is dropped; Loads already
// running finish reading the removed file.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := b.check(ctx, "remove", h); err != nil {
		return err
	}
	name := b.filename(h)
	b.files.evict(name)
	// unlink, unlike os.Remove, never removes a folder.
	if err := syscall.Unlink(name); err != nil {
		if errors.Is(err, syscall.EISDIR) {
			return backend.Permanent(backend.Wrap("remove", h.String(), errors.New("not a regular file")))
		}
		return wrapErr("remove", h.String(), &fs.PathError{Op: "unlink", Path: name, Err: err})
	}
	if err := syncDir(filepath.Dir(name)); err != nil {
		// The file is gone but may come back after a crash: a forgotten
		// snapshot would reappear, or a prune would find its steps
		// undone out of order. Report it, so that the caller does not
		// count on it; a retry finds the file gone.
		return wrapErr("remove", h.String(), fmt.Errorf("sync folder: %w", err))
	}
	return nil
}
