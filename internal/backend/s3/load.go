package s3

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/rewind-backup/rewind/internal/backend"
)

// Load calls fn with a reader over the requested range of h, fetched with
// one ranged GET.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	if err := b.check(ctx, "load", h); err != nil {
		return err
	}
	if offset < 0 || length < 0 {
		return backend.Permanent(backend.Wrap("load", h.String(), fmt.Errorf("invalid range: offset %d, length %d", offset, length)))
	}
	pastEnd := func(size string) error {
		return backend.Permanent(backend.Wrap("load", h.String(), fmt.Errorf("%d bytes at offset %d: past the end of the file (%s): %w", length, offset, size, io.ErrUnexpectedEOF)))
	}
	if length > 0 && offset > math.MaxInt64-int64(length) {
		return pastEnd("no file is that large")
	}

	var opts minio.GetObjectOptions
	if b.view != nil {
		v, err := b.view.version(ctx, b, h)
		if err != nil {
			return backend.Wrap("load", h.String(), err)
		}
		opts.VersionID = v.id
	}
	switch {
	case length > 0:
		_ = opts.SetRange(offset, offset+int64(length)-1)
	case offset > 0:
		_ = opts.SetRange(offset, 0)
	}
	body, info, header, err := b.core.GetObject(ctx, b.cfg.Bucket, b.key(h), opts)
	if isStatus(err, http.StatusRequestedRangeNotSatisfiable) {
		// The range starts at or past the end. Reading from the very end
		// to the end is an empty read, not an error.
		fi, serr := b.Stat(ctx, h)
		if serr != nil {
			return serr
		}
		if length == 0 && offset == fi.Size {
			return fn(strings.NewReader(""))
		}
		return pastEnd(fmt.Sprintf("%d bytes", fi.Size))
	}
	if err != nil {
		return b.wrapErr("load", h.String(), err)
	}
	defer body.Close()

	want := info.Size // what the answer carries
	if length > 0 {
		if want >= 0 && want < int64(length) {
			return pastEnd(totalSize(header))
		}
		want = int64(length)
	}
	rd := io.Reader(body)
	if want >= 0 {
		rd = &bodyReader{rd: body, remaining: want}
	}
	return fn(rd)
}

// totalSize returns the object size that a Content-Range header states,
// for error messages.
func totalSize(header http.Header) string {
	cr := header.Get("Content-Range")
	if i := strings.LastIndexByte(cr, '/'); i >= 0 {
		if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
			return fmt.Sprintf("%d bytes", n)
		}
	}
	return "size unknown"
}

// bodyReader yields remaining bytes of an answer's body and turns an early
// end (a connection cut) into io.ErrUnexpectedEOF, which a retry may fix.
type bodyReader struct {
	rd        io.Reader
	remaining int64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.rd.Read(p)
	r.remaining -= int64(n)
	if err == io.EOF && r.remaining > 0 {
		err = fmt.Errorf("answer ended %d bytes early: %w", r.remaining, io.ErrUnexpectedEOF)
	}
	if err == nil && r.remaining == 0 {
		err = io.EOF
	}
	return n, err
}

// Stat returns the size of h, with a HEAD request.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := b.check(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	if b.view != nil {
		v, err := b.view.version(ctx, b, h)
		if err != nil {
			return backend.FileInfo{}, backend.Wrap("stat", h.String(), err)
		}
		return backend.FileInfo{Name: h.Name, Size: v.size}, nil
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, b.key(h), minio.StatObjectOptions{})
	if err != nil {
		return backend.FileInfo{}, b.wrapErr("stat", h.String(), err)
	}
	return backend.FileInfo{Name: h.Name, Size: info.Size}, nil
}

// Remove deletes h. A HEAD first finds out whether it exists, since S3
// deletes a missing key without complaint. In a repository with object
// lock, a pack's version is deleted (removeLocked), and fails with a
// *LockedError while it is retained; other files get a delete marker,
// behind which their locked version stays.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := b.check(ctx, "remove", h); err != nil {
		return err
	}
	if b.view != nil {
		return backend.Wrap("remove", h.String(), errViewReadOnly)
	}
	if b.lock.Enabled() && h.Type == backend.PackFile {
		return b.removeLocked(ctx, h)
	}
	return b.removePlain(ctx, h)
}

// List calls fn for every file of type t, listing the keys under its
// prefix (for packs, every data/<xx>/ at once). Keys that name no file of
// the type (another layout, a stray object) are skipped.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if b.closed.Load() {
		return backend.Wrap("list", t.String(), errClosed)
	}
	if err := ctx.Err(); err != nil {
		return backend.Wrap("list", t.String(), err)
	}
	if t == backend.ConfigFile {
		fi, err := b.Stat(ctx, backend.Handle{Type: t})
		if backend.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		return fn(fi)
	}
	if err := (backend.Handle{Type: t, Name: "00"}).Valid(); err != nil {
		return backend.Permanent(fmt.Errorf("list: invalid file type %d", t))
	}
	if b.view != nil {
		return b.view.list(ctx, b, t, fn)
	}

	prefix := b.join(t.String()) + "/"
	// A context of its own, so that the listing's requests stop when fn
	// fails.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetchOwner := false
	for obj := range b.client.ListObjectsIter(lctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, FetchOwner: &fetchOwner}) {
		if obj.Err != nil {
			return b.wrapErr("list", t.String(), obj.Err)
		}
		name, ok := fileName(t, strings.TrimPrefix(obj.Key, prefix))
		if !ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return backend.Wrap("list", t.String(), err)
		}
		if err := fn(backend.FileInfo{Name: name, Size: obj.Size}); err != nil {
			return err
		}
	}
	// The iterator ends quietly when the context is done.
	if err := ctx.Err(); err != nil {
		return backend.Wrap("list", t.String(), err)
	}
	return nil
}

// fileName returns the file name that rel, a key relative to the folder of
// type t, stands for: "<name>", or "<xx>/<name>" for packs.
func fileName(t backend.FileType, rel string) (string, bool) {
	name := rel
	if t == backend.PackFile {
		dir, n, ok := strings.Cut(rel, "/")
		if !ok || len(dir) != 2 || !strings.HasPrefix(n, dir) {
			return "", false
		}
		name = n
	}
	if (backend.Handle{Type: t, Name: name}).Valid() != nil {
		return "", false
	}
	return name, true
}
