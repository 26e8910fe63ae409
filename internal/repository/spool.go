package repository

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/zeebo/blake3"
)

// spool is a pack being written to an unlinked temporary file, so that a
// backup's memory does not grow with the pack size, and is hashed as it
// is written to give the pack its name.
type spool struct {
	f    *os.File
	bw   *bufio.Writer
	hash *blake3.Hasher
	pw   *pack.Writer
	t    pack.BlobType
}

func newSpool(t pack.BlobType) (*spool, error) {
	f, err := os.CreateTemp("", "rewind-pack-")
	if err != nil {
		return nil, fmt.Errorf("create pack spool file (set TMPDIR to a writable folder): %w", err)
	}
	// Unlinked at once: the file disappears with the process, whatever
	// happens to it.
	os.Remove(f.Name())
	s := &spool{f: f, hash: blake3.New(), t: t}
	s.bw = bufio.NewWriterSize(io.MultiWriter(f, s.hash), 256<<10)
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

func (s *spool) close() { s.f.Close() }
