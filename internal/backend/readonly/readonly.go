// Package readonly wraps a Backend so that nothing can be written through
// it: Save and Remove fail with a Permanent error wrapping ErrReadOnly,
// while Load, Stat and List pass through. rewind --read-only puts it
// outermost, so that a command that would change the repository stops at
// its first write, before anything is changed.
package readonly

import (
	"context"
	"errors"
	"io"

	"github.com/rewind-backup/rewind/internal/backend"
)

// ErrReadOnly is wrapped in the error of every write.
var ErrReadOnly = errors.New("the repository is open in read-only mode (--read-only): writes are refused")

// Backend refuses writes to the backend it wraps.
type Backend struct {
	inner backend.Backend
}

var _ backend.Backend = (*Backend)(nil)

// New returns be wrapped. The wrapper offers no backend.TempFiler, so
// writers go through Save and meet the refusal.
func New(be backend.Backend) *Backend { return &Backend{inner: be} }

// Location returns the wrapped backend's location.
func (b *Backend) Location() string { return b.inner.Location() }

// Save refuses to store anything.
func (b *Backend) Save(_ context.Context, h backend.Handle, _ backend.RewindReader) error {
	return backend.Permanent(backend.Wrap("save", h.String(), ErrReadOnly))
}

// Remove refuses to delete anything.
func (b *Backend) Remove(_ context.Context, h backend.Handle) error {
	return backend.Permanent(backend.Wrap("remove", h.String(), ErrReadOnly))
}

// Load passes the call on.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	return b.inner.Load(ctx, h, length, offset, fn)
}

// Stat passes the call on.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	return b.inner.Stat(ctx, h)
}

// List passes the call on.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	return b.inner.List(ctx, t, fn)
}

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.inner.Close() }
