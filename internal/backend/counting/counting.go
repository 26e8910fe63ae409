// Package counting wraps a Backend to count what goes through it: the
// operations by type and the bytes moved each way. The counters are safe
// for concurrent use and read with Snapshot, for the "backend" object of
// the --json summaries (docs/JSON.md).
//
// One operation is one call of the wrapped backend, which may be more
// than one request on the wire: an S3 Remove is a HEAD and a DELETE, a
// multipart Save one request per part plus two, and a List one request per
// 1,000 keys. Placed right above the provider (below the retry wrapper),
// every retried attempt counts.
//
// Bytes up are the bytes the wrapped backend read from Save's readers
// (what it sent, including attempts that failed part way); bytes down are
// the bytes Load's callers read from the readers they were given.
package counting

import (
	"context"
	"io"
	"os"
	"sync/atomic"

	"github.com/rewind-backup/rewind/internal/backend"
)

// Requests counts operations by type.
type Requests struct {
	Save   int64 `json:"save"`
	Load   int64 `json:"load"`
	Stat   int64 `json:"stat"`
	Remove int64 `json:"remove"`
	List   int64 `json:"list"`
}

// Total returns the number of operations of every type.
func (r Requests) Total() int64 { return r.Save + r.Load + r.Stat + r.Remove + r.List }

// Stats is a snapshot of the counters.
type Stats struct {
	Requests  Requests `json:"requests"`
	BytesUp   int64    `json:"bytes_up"`
	BytesDown int64    `json:"bytes_down"`
}

// Counter is a counting backend.
type Counter interface {
	backend.Backend
	// Snapshot returns the counters as they are now.
	Snapshot() Stats
}

// Backend counts the calls to the backend it wraps.
type Backend struct {
	inner                          backend.Backend
	save, load, stat, remove, list atomic.Int64
	up, down                       atomic.Int64
}

// tempFiler is a Backend over a provider that adopts temporary files
// (local): it offers backend.TempFiler too, so that wrapping a local
// repository for counting does not make backups copy every pack.
type tempFiler struct {
	*Backend
	tf backend.TempFiler
}

// New returns be wrapped with zeroed counters. The result implements
// backend.TempFiler exactly when be does.
func New(be backend.Backend) Counter {
	b := &Backend{inner: be}
	if tf, ok := be.(backend.TempFiler); ok {
		return &tempFiler{Backend: b, tf: tf}
	}
	return b
}

// Snapshot returns the counters as they are now. Each is read atomically;
// operations running meanwhile may be counted in some and not in others.
func (b *Backend) Snapshot() Stats {
	return Stats{
		Requests: Requests{
			Save:   b.save.Load(),
			Load:   b.load.Load(),
			Stat:   b.stat.Load(),
			Remove: b.remove.Load(),
			List:   b.list.Load(),
		},
		BytesUp:   b.up.Load(),
		BytesDown: b.down.Load(),
	}
}

// Location returns the wrapped backend's location.
func (b *Backend) Location() string { return b.inner.Location() }

// Save counts one save and the bytes the wrapped backend reads from rd.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	b.save.Add(1)
	return b.inner.Save(ctx, h, countReader(rd, &b.up))
}

// Load counts one load and the bytes fn reads.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	b.load.Add(1)
	return b.inner.Load(ctx, h, length, offset, func(rd io.Reader) error {
		return fn(&reader{rd: rd, n: &b.down})
	})
}

// Stat counts one stat.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	b.stat.Add(1)
	return b.inner.Stat(ctx, h)
}

// Remove counts one remove.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	b.remove.Add(1)
	return b.inner.Remove(ctx, h)
}

// List counts one list, however many files it yields.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	b.list.Add(1)
	return b.inner.List(ctx, t, fn)
}

// Close closes the wrapped backend. The counters stay readable.
func (b *Backend) Close() error { return b.inner.Close() }

// TempFile passes the call on; creating a temporary file is no request.
func (t *tempFiler) TempFile(ft backend.FileType) (*os.File, error) { return t.tf.TempFile(ft) }

// SaveTemp counts one save of the file's size.
func (t *tempFiler) SaveTemp(ctx context.Context, h backend.Handle, f *os.File) error {
	t.save.Add(1)
	if fi, err := f.Stat(); err == nil {
		t.up.Add(fi.Size())
	}
	return t.tf.SaveTemp(ctx, h, f)
}

// reader counts the bytes read through it into n.
type reader struct {
	rd io.Reader
	n  *atomic.Int64
}

func (r *reader) Read(p []byte) (int, error) {
	k, err := r.rd.Read(p)
	r.n.Add(int64(k))
	return k, err
}

// rewindReader counts the bytes read from a RewindReader.
type rewindReader struct {
	backend.RewindReader
	n *atomic.Int64
}

func (r *rewindReader) Read(p []byte) (int, error) {
	k, err := r.RewindReader.Read(p)
	r.n.Add(int64(k))
	return k, err
}

// readerAt is a rewindReader over a reader that can also be read at any
// offset, which providers use to send parts in parallel.
type readerAt struct {
	rewindReader
	ra io.ReaderAt
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	k, err := r.ra.ReadAt(p, off)
	r.n.Add(int64(k))
	return k, err
}

// countReader wraps rd to count into n, keeping io.ReaderAt if rd has it.
func countReader(rd backend.RewindReader, n *atomic.Int64) backend.RewindReader {
	c := rewindReader{RewindReader: rd, n: n}
	if ra, ok := rd.(io.ReaderAt); ok {
		return &readerAt{rewindReader: c, ra: ra}
	}
	return &c
}
