package local

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rewind-backup/rewind/internal/backend"
)

var _ backend.TempFiler = (*Backend)(nil)

// TempFile creates a temporary file in the folder of type t, so that
// SaveTemp can rename it into place without copying. Readers and List
// ignore it by its prefix; a crash leaves it behind as garbage for prune.
func (b *Backend) TempFile(t backend.FileType) (*os.File, error) {
	dir := filepath.Join(b.dir, t.String())
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return nil, wrapErr("create temporary file in", dir, err)
	}
	return f, nil
}

// SaveTemp makes f read-only and durable and renames it to h without
// replacing an existing file. If h exists with the same content, f is
// dropped; with other content, the error matches backend.ErrExists.
func (b *Backend) SaveTemp(ctx context.Context, h backend.Handle, f *os.File) (err error) {
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := b.check(ctx, "save", h); err != nil {
		return err
	}
	if err := b.chownNew(f, ""); err != nil {
		return wrapErr("save", h.String(), err)
	}
	if err := f.Chmod(b.access.FileMode()); err != nil {
		return wrapErr("save", h.String(), err)
	}
	if err := f.Sync(); err != nil {
		return wrapErr("save", h.String(), err)
	}
	fi, err := f.Stat()
	if err != nil {
		return wrapErr("save", h.String(), err)
	}
	name := b.filename(h)
	err = renameNoReplace(tmp, name)
	if errors.Is(err, fs.ErrNotExist) {
		if err = b.mkdirDurable(filepath.Dir(name)); err == nil {
			err = renameNoReplace(tmp, name)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		cerr := b.compareExisting(ctx, h, name, backend.NewFileReader(f, fi.Size()))
		_ = f.Close()
		_ = os.Remove(tmp)
		return cerr
	}
	if err != nil {
		return wrapErr("save", h.String(), err)
	}
	if err := f.Close(); err != nil {
		return wrapErr("save", h.String(), err)
	}
	if err := syncDir(filepath.Dir(name)); err != nil {
		return wrapErr("save", h.String(), errors.Join(errors.New("sync folder"), err))
	}
	return nil
}
