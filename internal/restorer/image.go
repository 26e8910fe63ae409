package restorer

// Restore of a device or image snapshot onto a block device or a new
// image file (docs/IMAGES.md).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/diskimage"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// ErrNotImage says a snapshot holds no device or image backup.
var ErrNotImage = errors.New("not a device or image snapshot")

// ImageTarget is where RestoreImage writes.
type ImageTarget struct {
	// Path is a block device (Device true) or an image file that must not
	// exist yet.
	Path   string
	Device bool
	// Verify re-reads what was written and compares it with the
	// snapshot.
	Verify bool
}

// ImageResult counts what RestoreImage did.
type ImageResult struct {
	Size         int64 `json:"size"`
	BytesWritten int64 `json:"bytes_written"`
	// BytesZeroed are the holes zeroed on a device (a new image file
	// leaves them as holes, unwritten).
	BytesZeroed int64 `json:"bytes_zeroed"`
	// ZeroMethod says how a device's holes were zeroed: "blkzeroout" or
	// "write"; empty for an image file.
	ZeroMethod string `json:"zero_method,omitempty"`
	Verified   bool   `json:"verified"`
}

// RestoreImage writes the device or image held by sn to t.
func RestoreImage(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, t ImageTarget) (*ImageResult, error) {
	if sn.Image == nil || len(sn.Paths) != 1 {
		return nil, fmt.Errorf("snapshot %s: %w (it was made by backup of paths; restore it with --target)", sn.ID.Short(), ErrNotImage)
	}
	n, err := snapshot.Lookup(ctx, r, sn, sn.Paths[0])
	if err != nil {
		return nil, err
	}
	chunks, err := snapshot.LoadContent(ctx, r, n)
	if err != nil {
		return nil, err
	}
	size := int64(n.Size)
	res := &ImageResult{Size: size}
	var f *os.File
	if t.Device {
		if f, err = openDevice(t.Path, size); err != nil {
			return nil, err
		}
	} else {
		f, err = os.OpenFile(t.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%s exists: restore an image into a new file (remove it, or give another name)", t.Path)
		}
		if err != nil {
			return nil, err
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, err
		}
	}
	defer f.Close()
	if err := writeImage(ctx, r, f, chunks, t.Device, res); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", t.Path, err)
	}
	if t.Verify {
		// Drop the cached pages so that the verification reads the disk.
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		if err := verifyImage(ctx, r, f, chunks); err != nil {
			return nil, fmt.Errorf("verify %s: %w", t.Path, err)
		}
		res.Verified = true
	}
	return res, f.Close()
}

// openDevice opens the block device p for writing, exclusively, after
// checking that it is not in use and holds size bytes.
func openDevice(p string, size int64) (*os.File, error) {
	dev, err := diskimage.IsDevice(p)
	if err != nil {
		return nil, err
	}
	if !dev {
		return nil, fmt.Errorf("%s is not a block device (to write an image file, use --image)", p)
	}
	why, err := diskimage.InUse(p)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return nil, fmt.Errorf("refusing to overwrite %s: %s; unmount it (and stop what holds it) first", p, why)
	}
	// O_EXCL on a block device fails if the kernel holds it (mounted).
	f, err := os.OpenFile(p, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s exclusively: %w", p, err)
	}
	have, err := diskimage.Size(f)
	if err == nil && have < size {
		err = fmt.Errorf("%s holds %d bytes, smaller than the %d-byte image; give a device at least as large", p, have, size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

type imageJob struct {
	off int64
	c   tree.Chunk
}

// writeImage writes the data chunks with a few loaders in parallel, and
// zeroes the holes of a device.
func writeImage(ctx context.Context, r *repository.Repository, f *os.File, chunks []tree.Chunk, device bool, res *ImageResult) error {
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan imageJob)
	var mu sync.Mutex
	for range 4 {
		g.Go(func() error {
			var buf []byte
			for j := range jobs {
				b, err := r.LoadBlob(gctx, pack.DataBlob, j.c.ID, buf)
				if err != nil {
					return err
				}
				buf = b
				if uint64(len(b)) != j.c.Size {
					return fmt.Errorf("blob %s holds %d bytes, the list says %d", j.c.ID.Short(), len(b), j.c.Size)
				}
				if _, err := f.WriteAt(b, j.off); err != nil {
					return err
				}
				mu.Lock()
				res.BytesWritten += int64(len(b))
				mu.Unlock()
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		var off int64
		for _, c := range chunks {
			if c.IsHole() {
				if device {
					method, err := zeroRange(f, off, int64(c.Size))
					if err != nil {
						return err
					}
					mu.Lock()
					res.BytesZeroed += int64(c.Size)
					res.ZeroMethod = method
					mu.Unlock()
				}
			} else {
				select {
				case jobs <- imageJob{off: off, c: c}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			off += int64(c.Size)
		}
		return nil
	})
	return g.Wait()
}

// zeroRange zeroes n bytes at off of the device f: with BLKZEROOUT,
// which lets the device do it without data crossing the bus, else by
// writing zeros.
func zeroRange(f *os.File, off, n int64) (string, error) {
	rng := [2]uint64{uint64(off), uint64(n)}
	if off%512 == 0 && n%512 == 0 {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&rng)))
		if e == 0 {
			return "blkzeroout", nil
		}
	}
	zero := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := f.WriteAt(zero[:k], off); err != nil {
			return "", err
		}
		off += k
		n -= k
	}
	return "write", nil
}

// verifyImage reads f back and compares each data chunk's hash with its
// ID and each hole with zeros.
func verifyImage(ctx context.Context, r *repository.Repository, f *os.File, chunks []tree.Chunk) error {
	var off int64
	buf := make([]byte, 1<<20)
	zero := make([]byte, 1<<20)
	for _, c := range chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.IsHole() {
			for p, end := off, off+int64(c.Size); p < end; {
				k := min(end-p, int64(len(buf)))
				if _, err := f.ReadAt(buf[:k], p); err != nil {
					return err
				}
				if !bytes.Equal(buf[:k], zero[:k]) {
					return fmt.Errorf("the hole at %d reads back non-zero", p)
				}
				p += k
			}
		} else {
			if int(c.Size) > len(buf) {
				buf = make([]byte, c.Size)
			}
			b := buf[:c.Size]
			if _, err := f.ReadAt(b, off); err != nil {
				return err
			}
			if r.Key().BlobID(b) != c.ID {
				return fmt.Errorf("the block at %d reads back different from what was written", off)
			}
		}
		off += int64(c.Size)
	}
	return nil
}
