package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
)

// ErrCorrupt: the bytes read back do not hash to the stored content ID.
var ErrCorrupt = errors.New("WAL file read back does not match its content hash")

// Read returns the stored file e's bytes, checked against its content
// hash. r is open with its index loaded.
func Read(ctx context.Context, r *repository.Repository, e *Entry) ([]byte, error) {
	data := make([]byte, 0, e.Size)
	var buf []byte
	for _, b := range e.Blobs {
		var err error
		buf, err = r.LoadBlob(ctx, pack.DataBlob, b, buf[:0])
		if err != nil {
			return nil, fmt.Errorf("%s: blob %s: %w", e.Name, b.Short(), err)
		}
		data = append(data, buf...)
	}
	if int64(len(data)) != e.Size || r.Key().BlobID(data) != e.ID {
		return nil, fmt.Errorf("%s: %w (%d bytes read, %d stored)", e.Name, ErrCorrupt, len(data), e.Size)
	}
	return data, nil
}

// WriteFile writes data to dest as restore_command must: the whole file
// or nothing. It writes a temporary file beside dest, syncs it and renames
// it over dest.
func WriteFile(dest string, data []byte) error {
	dir, base := filepath.Split(dest)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, ".rewind-"+base+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return err
	}
	ok = true
	return nil
}
