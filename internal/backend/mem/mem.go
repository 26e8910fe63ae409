// Package mem is a backend that keeps files in memory, for unit tests. It
// keeps the same contract as the real providers (see package backend) and
// passes the same conformance suite.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
)

// Backend holds files in a map. It is safe for concurrent use.
type Backend struct {
	mu    sync.RWMutex
	files map[backend.Handle][]byte // mu; stored slices are never changed
}

var _ backend.Backend = (*Backend)(nil)

// New returns an empty in-memory backend.
func New() *Backend {
	return &Backend{files: make(map[backend.Handle][]byte)}
}

// Location returns "mem".
func (b *Backend) Location() string { return "mem" }

// Close does nothing; the files stay readable.
func (b *Backend) Close() error { return nil }

// check returns the error that stops op on h before it starts.
func check(ctx context.Context, op string, h backend.Handle) error {
	if err := ctx.Err(); err != nil {
		return backend.Wrap(op, h.String(), err)
	}
	if err := h.Valid(); err != nil {
		return backend.Permanent(fmt.Errorf("%s: %w", op, err))
	}
	return nil
}

// Save stores a copy of what rd yields under h.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := check(ctx, "save", h); err != nil {
		return err
	}
	data, err := readContent(rd)
	if err != nil {
		return backend.Wrap("save", h.String(), err)
	}
	// The reader may have been slow: honour a cancellation that came
	// meanwhile, as a real provider would.
	if err := ctx.Err(); err != nil {
		return backend.Wrap("save", h.String(), err)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.files[h]; ok {
		if bytes.Equal(old, data) {
			return nil
		}
		return backend.Wrap("save", h.String(), fmt.Errorf("%w with different content", backend.ErrExists))
	}
	b.files[h] = data
	return nil
}

// readContent returns a copy of what rd yields, which must be exactly
// rd.Length() bytes.
func readContent(rd backend.RewindReader) ([]byte, error) {
	size := rd.Length()
	if size < 0 {
		return nil, backend.Permanent(fmt.Errorf("reader has negative length %d", size))
	}
	data := make([]byte, size)
	n, err := io.ReadFull(rd, data)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, backend.Permanent(fmt.Errorf("reader yielded %d bytes, its length is %d", n, size))
	}
	if err != nil {
		return nil, fmt.Errorf("read content: %w", err)
	}
	var extra [1]byte
	switch _, err := io.ReadFull(rd, extra[:]); err {
	case io.EOF:
		return data, nil
	case nil:
		return nil, backend.Permanent(fmt.Errorf("reader yielded more bytes than its length %d", size))
	default:
		return nil, fmt.Errorf("read content: %w", err)
	}
}

// Load calls fn with a reader over the requested range of h.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	if err := check(ctx, "load", h); err != nil {
		return err
	}
	if offset < 0 || length < 0 {
		return backend.Permanent(backend.Wrap("load", h.String(), fmt.Errorf("invalid range: offset %d, length %d", offset, length)))
	}
	b.mu.RLock()
	data, ok := b.files[h]
	b.mu.RUnlock()
	if !ok {
		return backend.Wrap("load", h.String(), backend.ErrNotExist)
	}

	size := int64(len(data))
	// Compared without computing offset+length, which may overflow.
	if offset > size || int64(length) > size-offset {
		return backend.Permanent(backend.Wrap("load", h.String(), fmt.Errorf("%d bytes at offset %d: past the end of the file (%d bytes): %w", length, offset, size, io.ErrUnexpectedEOF)))
	}
	n := int64(length)
	if length == 0 {
		n = size - offset
	}
	return fn(bytes.NewReader(data[offset : offset+n]))
}

// Stat returns the size of h.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := check(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	b.mu.RLock()
	data, ok := b.files[h]
	b.mu.RUnlock()
	if !ok {
		return backend.FileInfo{}, backend.Wrap("stat", h.String(), backend.ErrNotExist)
	}
	return backend.FileInfo{Name: h.Name, Size: int64(len(data))}, nil
}

// Remove deletes h.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := check(ctx, "remove", h); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.files[h]; !ok {
		return backend.Wrap("remove", h.String(), backend.ErrNotExist)
	}
	delete(b.files, h)
	return nil
}

// List calls fn for every file of type t. It works on a copy of the list
// taken at the start, so fn may call the backend.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := ctx.Err(); err != nil {
		return backend.Wrap("list", t.String(), err)
	}
	if t < backend.ConfigFile || t > backend.RunbookFile {
		return backend.Permanent(fmt.Errorf("list: invalid file type %d", t))
	}
	var infos []backend.FileInfo
	b.mu.RLock()
	for h, data := range b.files {
		if h.Type == t {
			infos = append(infos, backend.FileInfo{Name: h.Name, Size: int64(len(data))})
		}
	}
	b.mu.RUnlock()

	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return backend.Wrap("list", t.String(), err)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}
