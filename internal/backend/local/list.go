package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
)

// List calls fn for every file of type t. Temporary files, and files whose
// names are no valid handle or that sit in the wrong data/<xx> folder, are
// skipped: Load could not reach them. Listing the config type yields the
// config file, with an empty name, if it exists.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if b.closed.Load() {
		return backend.Wrap("list", t.String(), errClosed)
	}
	if err := ctx.Err(); err != nil {
		return backend.Wrap("list", t.String(), err)
	}
	switch t {
	case backend.ConfigFile:
		fi, err := os.Stat(b.filename(backend.Handle{Type: t}))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return wrapErr("list", t.String(), err)
		}
		return fn(backend.FileInfo{Name: "", Size: fi.Size()})
	case backend.PackFile:
		return b.listPacks(ctx, fn)
	}
	if err := (backend.Handle{Type: t, Name: "00"}).Valid(); err != nil {
		return backend.Permanent(fmt.Errorf("list: invalid file type %d", t))
	}
	return b.listDir(ctx, t, filepath.Join(b.dir, t.String()), "", fn)
}

// listPacks lists every data/<xx> folder.
func (b *Backend) listPacks(ctx context.Context, fn func(backend.FileInfo) error) error {
	data := filepath.Join(b.dir, backend.PackFile.String())
	entries, err := os.ReadDir(data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return wrapErr("list", "data", err)
	}
	for _, e := range entries {
		prefix := e.Name()
		if !e.IsDir() || len(prefix) != 2 || (backend.Handle{Type: backend.PackFile, Name: prefix}).Valid() != nil {
			continue
		}
		if err := b.listDir(ctx, backend.PackFile, filepath.Join(data, prefix), prefix, fn); err != nil {
			return err
		}
	}
	return nil
}

// listDir calls fn for every file of type t in dir whose name starts with
// prefix. It reads the folder in batches, so that a large one is not held
// in memory.
func (b *Backend) listDir(ctx context.Context, t backend.FileType, dir, prefix string, fn func(backend.FileInfo) error) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return wrapErr("list", t.String(), err)
	}
	defer func() { _ = f.Close() }()

	for {
		entries, err := f.ReadDir(1024)
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return backend.Wrap("list", t.String(), err)
			}
			name := e.Name()
			if strings.HasPrefix(name, tempPrefix) {
				b.removeStaleTemp(dir, e)
				continue
			}
			if !strings.HasPrefix(name, prefix) ||
				!e.Type().IsRegular() || (backend.Handle{Type: t, Name: name}).Valid() != nil {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the folder was read
			}
			if err != nil {
				return wrapErr("list", t.String(), err)
			}
			if err := fn(backend.FileInfo{Name: name, Size: fi.Size()}); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return wrapErr("list", t.String(), err)
		}
	}
}

// staleTempAge is how long a temporary file must have been left unchanged
// before a listing removes it. A live writer touches its file far more
// often; a file this old was left by a writer that was killed.
const staleTempAge = 24 * time.Hour

// removeStaleTemp removes a temporary file of dir left by a killed writer,
// so that interrupted backups do not keep their partial packs on disk
// forever. Errors are ignored: the file is only garbage.
func (b *Backend) removeStaleTemp(dir string, e fs.DirEntry) {
	fi, err := e.Info()
	if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < staleTempAge {
		return
	}
	_ = os.Remove(filepath.Join(dir, e.Name()))
}
