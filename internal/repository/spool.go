package repository

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/zeebo/blake3"
)

// spool is a pack being written to a temporary file, so that a backup's
// memory does not grow with the pack size, and hashed as it is written to
// give the pack its name. When the backend can adopt temporary files
// (local), the spool is created by it and renamed into place when done,
// so the pack is written once; otherwise it is an unlinked file in TMPDIR
// that Save copies.
type spool struct {
	f *os.File
	// adopt is the backend that made f and will take it over; nil for an
	// unlinked TMPDIR file.
	adopt backend.TempFiler
	bw    *bufio.Writer
	hash  *blake3.Hasher
	pw    *pack.Writer
	t     pack.BlobType
}

func newSpool(be backend.Backend, t pack.BlobType) (*spool, error) {
	s := &spool{hash: blake3.New(), t: t}
	if tf, ok := be.(backend.TempFiler); ok {
		f, err := tf.TempFile(backend.PackFile)
		if err != nil {
			return nil, fmt.Errorf("create pack file: %w", err)
		}
		s.f, s.adopt = f, tf
	} else {
		f, err := os.CreateTemp("", "rewind-pack-")
		if err != nil {
			return nil, fmt.Errorf("create pack spool file (set TMPDIR to a writable folder): %w", err)
		}
		// Unlinked at once: the file disappears with the process, whatever
		// happens to it.
		os.Remove(f.Name())
		s.f = f
	}
	s.bw = bufio.NewWriterSize(io.MultiWriter(s.f, s.hash), 256<<10)
	s.pw = pack.NewWriter(s.bw)
	return s, nil
}

// finish writes the header, flushes, and returns the pack's ID, blobs and
// size.
func (s *spool) finish(key pack.Sealer) (id.ID, []pack.Blob, int64, error) {
	blobs, size, err := s.pw.Finish(key)
	if err != nil {
		return id.ID{}, nil, 0, err
	}
	if err := s.bw.Flush(); err != nil {
		return id.ID{}, nil, 0, fmt.Errorf("write pack spool: %w", err)
	}
	var pid id.ID
	copy(pid[:], s.hash.Sum(nil))
	return pid, blobs, size, nil
}

// store hands the finished pack to the backend under h.
func (s *spool) store(ctx context.Context, be backend.Backend, h backend.Handle, size int64) error {
	if s.adopt != nil {
		err := s.adopt.SaveTemp(ctx, h, s.f)
		s.f = nil // closed by SaveTemp
		return err
	}
	return be.Save(ctx, h, backend.NewFileReader(s.f, size))
}

// close drops the spool file; a stored one is already gone.
func (s *spool) close() {
	if s.f == nil {
		return
	}
	s.f.Close()
	if s.adopt != nil {
		os.Remove(s.f.Name())
	}
}
