package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/rewind-backup/rewind/internal/backend"
)

// contentType is the type of every stored object: opaque bytes.
const contentType = "application/octet-stream"

// abortTimeout bounds the cleanup of a failed multipart upload, which runs
// even when the Save's context is done.
const abortTimeout = 30 * time.Second

// maxParts is the most parts S3 accepts in one multipart upload.
const maxParts = 10_000

// errVanished means the object a Save found in its way was removed before
// it could be compared: the Save is tried again.
var errVanished = errors.New("stored object vanished")

// Save stores rd under h; see the package documentation for how it keeps
// from overwriting. If h exists, Save returns nil when the stored content
// equals rd's and an error wrapping backend.ErrExists otherwise.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := b.check(ctx, "save", h); err != nil {
		return err
	}
	if b.view != nil {
		return backend.Wrap("save", h.String(), errViewReadOnly)
	}
	size := rd.Length()
	if size < 0 {
		return backend.Permanent(backend.Wrap("save", h.String(), fmt.Errorf("reader has negative length %d", size)))
	}
	key := b.key(h)
	for try := 0; ; try++ {
		if try > 0 {
			if err := rd.Rewind(); err != nil {
				return backend.Wrap("save", h.String(), fmt.Errorf("rewind: %w", err))
			}
		}
		err := b.saveOnce(ctx, h, key, rd, size)
		if !errors.Is(err, errVanished) || try >= 3 {
			return err
		}
	}
}

// saveOnce makes one attempt at storing rd under key.
func (b *Backend) saveOnce(ctx context.Context, h backend.Handle, key string, rd backend.RewindReader, size int64) error {
	conditional := !b.unconditional.Load()
	if !conditional {
		// The fallback: look first, then write without a condition.
		_, err := b.Stat(ctx, h)
		if err == nil {
			return b.compareExisting(ctx, h, key, rd)
		}
		if !backend.IsNotExist(err) {
			return backend.Wrap("save", h.String(), err)
		}
	}
	err := b.put(ctx, h.Type, key, rd, size, conditional)
	switch {
	case err == nil:
		return nil
	case conditional && isStatus(err, http.StatusPreconditionFailed):
		if err := rd.Rewind(); err != nil {
			return backend.Wrap("save", h.String(), fmt.Errorf("rewind: %w", err))
		}
		return b.compareExisting(ctx, h, key, rd)
	case conditional && isStatus(err, http.StatusNotImplemented):
		b.log.Warn("the S3 server does not support conditional writes (If-None-Match); falling back to a check before each write, which two clients writing one name at once can race",
			"endpoint", b.cfg.Endpoint, "err", err)
		b.unconditional.Store(true)
		if err := rd.Rewind(); err != nil {
			return backend.Wrap("save", h.String(), fmt.Errorf("rewind: %w", err))
		}
		return b.saveOnce(ctx, h, key, rd, size)
	}
	if _, ok := s3Error(err); ok {
		return b.wrapErr("save", h.String(), err)
	}
	return backend.Wrap("save", h.String(), err)
}

// put uploads rd, a file of type t, as key, in one PUT or in parts, with
// "If-None-Match: *" when conditional and with a retention when the
// repository locks files of type t. Errors are the server's answers as
// minio-go returns them, or the reader's.
func (b *Backend) put(ctx context.Context, t backend.FileType, key string, rd backend.RewindReader, size int64, conditional bool) error {
	create := minio.PutObjectOptions{ContentType: contentType}
	b.setRetention(&create, t)
	locked := create.Mode != ""
	opts := create
	if size > b.cfg.MultipartThreshold {
		// The retention goes with the start of the upload, the
		// condition with its completion.
		opts = minio.PutObjectOptions{ContentType: contentType}
	}
	if conditional {
		opts.SetMatchETagExcept("*")
	}
	if size > b.cfg.MultipartThreshold {
		return b.putMultipart(ctx, key, rd, size, create, opts, locked)
	}
	var sum string
	if locked && size > 0 {
		var err error
		if sum, err = contentMD5(rd, size); err != nil {
			return err
		}
		if err := rd.Rewind(); err != nil {
			return fmt.Errorf("rewind: %w", err)
		}
	}
	sr := newStrictReader(rd, size)
	if size == 0 {
		// An empty body may never be read: check the reader now.
		if _, err := sr.Read(nil); err != io.EOF {
			return err
		}
	}
	_, err := b.core.PutObject(ctx, b.cfg.Bucket, key, sr, size, sum, "", opts)
	if sr.err != nil {
		return sr.err
	}
	return err
}

// putMultipart uploads rd as key in parts. The parts go up several at a
// time when rd can be read at any offset, one after the other otherwise.
// create (with the retention, if any) starts the upload; opts (with its
// condition) applies to the completion, which makes the object visible; a
// failed upload is aborted. When locked, each part carries its MD5.
func (b *Backend) putMultipart(ctx context.Context, key string, rd backend.RewindReader, size int64, create, opts minio.PutObjectOptions, locked bool) (err error) {
	partSize := b.cfg.PartSize
	if size > partSize*maxParts {
		partSize = (size + maxParts - 1) / maxParts
	}
	n := int((size + partSize - 1) / partSize)

	uploadID, err := b.core.NewMultipartUpload(ctx, b.cfg.Bucket, key, create)
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if aerr := b.core.AbortMultipartUpload(actx, b.cfg.Bucket, key, uploadID); aerr != nil {
			b.log.Warn("abort multipart upload", "key", key, "err", aerr)
		}
	}()

	parts := make([]minio.CompletePart, n)
	upload := func(ctx context.Context, i int, sr *strictReader, r io.Reader, length int64, sum string) error {
		p, err := b.core.PutObjectPart(ctx, b.cfg.Bucket, key, uploadID, i+1, r, length, minio.PutObjectPartOptions{Md5Base64: sum})
		if sr.err != nil {
			return sr.err
		}
		if err != nil {
			return err
		}
		parts[i] = minio.CompletePart{PartNumber: i + 1, ETag: p.ETag}
		return nil
	}
	if ra, ok := rd.(io.ReaderAt); ok {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(b.cfg.PartUploads)
		for i := range n {
			off := int64(i) * partSize
			length := min(partSize, size-off)
			g.Go(func() error {
				var sum string
				if locked {
					var err error
					if sum, err = contentMD5(io.NewSectionReader(ra, off, length), length); err != nil {
						return err
					}
				}
				sr := newStrictReader(io.NewSectionReader(ra, off, length), length)
				return upload(gctx, i, sr, sr, length, sum)
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		var one [1]byte
		if k, _ := ra.ReadAt(one[:], size); k > 0 {
			return backend.Permanent(fmt.Errorf("reader yielded more bytes than its length %d", size))
		}
	} else {
		sr := newStrictReader(rd, size)
		for i := range n {
			length := min(partSize, size-int64(i)*partSize)
			part, sum := io.Reader(io.LimitReader(sr, length)), ""
			if locked {
				// The MD5 goes in the part's headers: read the part
				// first.
				buf := make([]byte, length)
				if _, err := io.ReadFull(part, buf); err != nil {
					if sr.err != nil {
						return sr.err
					}
					return fmt.Errorf("read content: %w", err)
				}
				d := md5.Sum(buf)
				part, sum = bytes.NewReader(buf), base64.StdEncoding.EncodeToString(d[:])
			}
			if err := upload(ctx, i, sr, part, length, sum); err != nil {
				return err
			}
		}
	}
	_, err = b.core.CompleteMultipartUpload(ctx, b.cfg.Bucket, key, uploadID, parts, opts)
	return err
}

// compareExisting compares the object stored under key with rd: nil when
// they are equal, ErrExists when not, errVanished when the object is gone.
func (b *Backend) compareExisting(ctx context.Context, h backend.Handle, key string, rd backend.RewindReader) error {
	body, info, _, err := b.core.GetObject(ctx, b.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		err = b.wrapErr("save: read the stored", h.String(), err)
		if backend.IsNotExist(err) {
			return errVanished
		}
		return err
	}
	defer body.Close()
	differs := backend.Permanent(backend.Wrap("save", h.String(), fmt.Errorf("%w with different content", backend.ErrExists)))
	if info.Size >= 0 && info.Size != rd.Length() {
		return differs
	}
	same, err := sameContent(newStrictReader(rd, rd.Length()), body)
	if err != nil {
		return backend.Wrap("save", h.String(), fmt.Errorf("compare with the stored object: %w", err))
	}
	if !same {
		return differs
	}
	return nil
}

// sameContent reports whether a and stored yield the same bytes. An error
// of a's is returned; stored ending early means a difference.
func sameContent(a io.Reader, stored io.Reader) (bool, error) {
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, err := io.ReadFull(a, bufA)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return false, err
		}
		m, serr := io.ReadFull(stored, bufB[:n])
		if m < n || !bytes.Equal(bufA[:n], bufB[:n]) {
			if serr != nil && serr != io.EOF && serr != io.ErrUnexpectedEOF {
				return false, serr
			}
			return false, nil
		}
		if err != nil { // a is done: stored must be too
			var one [1]byte
			k, serr := io.ReadFull(stored, one[:])
			if serr != nil && serr != io.EOF {
				return false, serr
			}
			return k == 0, nil
		}
	}
}

// strictReader yields exactly length bytes of rd and fails when rd yields
// fewer or more. It checks that rd ends before returning its last bytes,
// so that a request it feeds fails before the server has the whole body.
type strictReader struct {
	rd        io.Reader
	length    int64
	remaining int64
	checked   bool  // the end of rd was checked
	err       error // the first error returned, if any
}

func newStrictReader(rd io.Reader, length int64) *strictReader {
	return &strictReader{rd: rd, length: length, remaining: length}
}

func (r *strictReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remaining == 0 {
		if !r.checked {
			if err := r.checkEnd(); err != nil {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.rd.Read(p)
	r.remaining -= int64(n)
	switch {
	case err == io.EOF && r.remaining > 0:
		r.err = backend.Permanent(fmt.Errorf("reader yielded %d bytes, its length is %d", r.length-r.remaining, r.length))
		return 0, r.err
	case err != nil && err != io.EOF:
		r.err = fmt.Errorf("read content: %w", err)
		return 0, r.err
	}
	if r.remaining == 0 {
		if err := r.checkEnd(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// checkEnd makes sure rd has nothing after the length.
func (r *strictReader) checkEnd() error {
	r.checked = true
	var one [1]byte
	for range 100 {
		n, err := r.rd.Read(one[:])
		switch {
		case n > 0:
			r.err = backend.Permanent(fmt.Errorf("reader yielded more bytes than its length %d", r.length))
			return r.err
		case err == io.EOF:
			return nil
		case err != nil:
			r.err = fmt.Errorf("read content: %w", err)
			return r.err
		}
	}
	r.err = fmt.Errorf("read content: no end after %d bytes", r.length)
	return r.err
}
