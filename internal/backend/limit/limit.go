// Package limit wraps a Backend to bound what it does at once: the number
// of operations in flight, and the bandwidth of uploads (what Save reads)
// and downloads (what Load's callers read), each in KiB/s through a token
// bucket shared by all operations.
//
// An operation holds its slot for the whole call, including the reading
// of a Load's data by fn. List gives its slot back while its callback
// runs, so that a callback may call the backend (a Remove per file listed)
// without deadlocking a limit of one.
package limit

import (
	"context"
	"io"

	"github.com/rewind-backup/rewind/internal/backend"
)

// Config says what to limit. Zero fields limit nothing.
type Config struct {
	// Connections is the most operations in flight at once.
	Connections int
	// UploadKiB is the upload rate in KiB/s (1 KiB = 1024 bytes).
	UploadKiB int
	// DownloadKiB is the download rate in KiB/s.
	DownloadKiB int
}

// Backend applies the limits of a Config to the backend it wraps.
type Backend struct {
	inner    backend.Backend
	slots    chan struct{} // nil: no limit on operations
	up, down *tokenBucket  // nil: no limit
}

var _ backend.Backend = (*Backend)(nil)

// New returns be wrapped with the limits of cfg. The wrapper offers no
// backend.TempFiler: every upload goes through Save and its limit.
func New(be backend.Backend, cfg Config) *Backend {
	b := &Backend{inner: be}
	if cfg.Connections > 0 {
		b.slots = make(chan struct{}, cfg.Connections)
	}
	if cfg.UploadKiB > 0 {
		b.up = newTokenBucket(int64(cfg.UploadKiB) << 10)
	}
	if cfg.DownloadKiB > 0 {
		b.down = newTokenBucket(int64(cfg.DownloadKiB) << 10)
	}
	return b
}

// acquire takes a slot for an operation, waiting for one or for ctx.
func (b *Backend) acquire(ctx context.Context) error {
	if b.slots == nil {
		return ctx.Err()
	}
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives back a slot taken by acquire.
func (b *Backend) release() {
	if b.slots != nil {
		<-b.slots
	}
}

// Location returns the wrapped backend's location.
func (b *Backend) Location() string { return b.inner.Location() }

// Save passes the call on in a slot, reading rd at the upload rate.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := b.acquire(ctx); err != nil {
		return backend.Wrap("save", h.String(), err)
	}
	defer b.release()
	if b.up != nil {
		rd = &rewindReader{RewindReader: rd, r: reader{ctx: ctx, rd: rd, bucket: b.up}}
	}
	return b.inner.Save(ctx, h, rd)
}

// Load passes the call on in a slot, giving fn a reader at the download
// rate.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	if err := b.acquire(ctx); err != nil {
		return backend.Wrap("load", h.String(), err)
	}
	defer b.release()
	if b.down == nil {
		return b.inner.Load(ctx, h, length, offset, fn)
	}
	return b.inner.Load(ctx, h, length, offset, func(rd io.Reader) error {
		return fn(&reader{ctx: ctx, rd: rd, bucket: b.down})
	})
}

// Stat passes the call on in a slot.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := b.acquire(ctx); err != nil {
		return backend.FileInfo{}, backend.Wrap("stat", h.String(), err)
	}
	defer b.release()
	return b.inner.Stat(ctx, h)
}

// Remove passes the call on in a slot.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := b.acquire(ctx); err != nil {
		return backend.Wrap("remove", h.String(), err)
	}
	defer b.release()
	return b.inner.Remove(ctx, h)
}

// List passes the call on in a slot that it gives back while fn runs.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := b.acquire(ctx); err != nil {
		return backend.Wrap("list", t.String(), err)
	}
	held := true
	defer func() {
		if held {
			b.release()
		}
	}()
	return b.inner.List(ctx, t, func(fi backend.FileInfo) error {
		b.release()
		held = false
		if err := fn(fi); err != nil {
			return err
		}
		if err := b.acquire(ctx); err != nil {
			return backend.Wrap("list", t.String(), err)
		}
		held = true
		return nil
	})
}

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.inner.Close() }

// reader reads from rd no faster than bucket allows. It lives only as long
// as the call that made it, whose context it keeps to stop waiting when
// the call is cancelled.
type reader struct {
	ctx    context.Context
	rd     io.Reader
	bucket *tokenBucket
}

func (r *reader) Read(p []byte) (int, error) {
	if len(p) > chunkSize {
		p = p[:chunkSize]
	}
	n, err := r.rd.Read(p)
	if perr := r.bucket.pay(r.ctx, n); perr != nil && err == nil {
		err = perr
	}
	return n, err
}

// rewindReader is a throttled RewindReader.
type rewindReader struct {
	backend.RewindReader
	r reader
}

func (r *rewindReader) Read(p []byte) (int, error) { return r.r.Read(p) }
