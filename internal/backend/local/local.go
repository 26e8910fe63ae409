// Package local stores a repository in a folder of the local filesystem.
//
// # Layout
//
// Under the repository root:
//
//	config                  the config file
//	keys/<name>             key files
//	data/<xx>/<name>        pack files, xx being the first two hex digits of name
//	index/<name>            index files
//	snapshots/<name>        snapshot files
//	locks/<name>            lock files
//
// Create makes every folder, including the 256 data/<xx> folders, with mode
// 0700, or the group modes of Access when the repository folder exists
// already with group permissions.
//
// # Access by more than one user
//
// The repository folder's mode tells who may use the repository (see
// Access): private (0700), or shared with its group, read-only (02750) or
// read-write (02770). Every writer makes folders and files by it, whatever
// its umask, so that root's backup and the postgres user's archive_command
// can share one repository. A process running as root in a repository
// folder owned by another user gives what it makes to that user.
//
// # Writes
//
// Save writes to a temporary file ".tmp-*" in the destination folder, syncs
// it, renames it into place without replacing an existing file
// (renameat2 RENAME_NOREPLACE, falling back to link+unlink where the
// filesystem lacks it) and syncs the folder. A crash leaves at most a
// temporary file behind, which List never reports. Stored files get mode
// 0400 (0440 in a repository shared with its group): they are immutable,
// and a read-only mode keeps tools and people from editing them in place
// (the owner can still delete them, which needs write permission on the
// folder only).
//
// # Reads
//
// Load reads ranges with pread through a small LRU of open read-only file
// descriptors, since restore reads many small ranges from the same packs.
// A cached descriptor is checked with fstat before use: if the file was
// removed or replaced (link count 0), by this process or another one, the
// descriptor is dropped and the file opened afresh.
//
// # Removals
//
// Remove unlinks the file and syncs its folder before it returns, so that a
// removal reported done is not undone by a crash (a forgotten snapshot
// coming back), and removals become durable in the order they were made.
//
// # Errors
//
// A missing file (ENOENT) yields backend.ErrNotExist. Missing permission, a
// read-only filesystem, a full disk ("disk full", ENOSPC) and an exceeded
// quota are marked backend.Permanent; a Save that fails removes its
// temporary file.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"github.com/rewind-backup/rewind/internal/backend"
)

// ErrNoRepository means the folder given to Open holds no repository (it has
// no config file, or does not exist).
var ErrNoRepository = errors.New("no repository found")

// errClosed is returned by every method called after Close.
var errClosed = backend.Permanent(errors.New("backend is closed"))

const (
	// fileMode is the mode of every stored file in a private repository.
	fileMode = 0o400
	// tempPrefix starts the name of every temporary file.
	tempPrefix = ".tmp-"
	// maxOpenFiles bounds the cache of open read-only file descriptors.
	maxOpenFiles = 64
)

// Backend is a repository in a local folder. It is safe for concurrent use.
type Backend struct {
	dir    string
	files  *fileCache
	closed atomic.Bool
	// access and owner are read from the repository folder (access.go).
	access Access
	owner  owner
}

var _ backend.Backend = (*Backend)(nil)

// Create makes the folders of a new repository in dir, creating dir itself
// if needed. It fails if dir already holds a config file. The config file
// itself is written later, with Save.
func Create(ctx context.Context, dir string) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	be := newBackend(dir, maxOpenFiles)
	cfg := be.filename(backend.Handle{Type: backend.ConfigFile})
	if _, err := os.Lstat(cfg); err == nil {
		return nil, backend.Permanent(fmt.Errorf("create repository %s: config already exists: %w", dir, backend.ErrExists))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, wrapErr("create repository", dir, err)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, wrapErr("create repository", dir, err)
	}
	if err := be.readAccess(); err != nil {
		return nil, wrapErr("create repository", dir, err)
	}
	var dirs []string
	for _, t := range backend.AllTypes {
		if t != backend.ConfigFile {
			dirs = append(dirs, filepath.Join(dir, t.String()))
		}
	}
	data := filepath.Join(dir, backend.PackFile.String())
	for i := range 256 {
		dirs = append(dirs, filepath.Join(data, fmt.Sprintf("%02x", i)))
	}
	for _, d := range dirs {
		if err := be.mkdirAll(d); err != nil {
			return nil, wrapErr("create repository", dir, err)
		}
	}
	// Make the new folders durable: each is an entry in its parent.
	for _, d := range []string{filepath.Dir(dir), dir, data} {
		if err := syncDir(d); err != nil {
			return nil, wrapErr("create repository", dir, err)
		}
	}
	return be, nil
}

// Open opens the repository in dir. If dir has no config file the error
// wraps ErrNoRepository.
func Open(ctx context.Context, dir string) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	be := newBackend(dir, maxOpenFiles)
	fi, err := os.Stat(be.filename(backend.Handle{Type: backend.ConfigFile}))
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return nil, backend.Permanent(fmt.Errorf("open repository %s: %w", dir, ErrNoRepository))
	case err != nil:
		return nil, wrapErr("open repository", dir, err)
	case !fi.Mode().IsRegular():
		return nil, backend.Permanent(fmt.Errorf("open repository %s: config is not a regular file", dir))
	}
	if err := be.readAccess(); err != nil {
		return nil, wrapErr("open repository", dir, err)
	}
	return be, nil
}

// newBackend returns a backend for dir that keeps at most maxOpen read-only
// descriptors open (0: none).
func newBackend(dir string, maxOpen int) *Backend {
	return &Backend{dir: dir, files: newFileCache(maxOpen), owner: owner{-1, -1}}
}

// Location returns the path of the repository folder.
func (b *Backend) Location() string { return b.dir }

// Close closes the cached file descriptors. Every later call fails.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.files.closeAll()
	return nil
}

// filename returns the path of the file named by h, which must be valid.
func (b *Backend) filename(h backend.Handle) string {
	switch h.Type {
	case backend.ConfigFile:
		return filepath.Join(b.dir, "config")
	case backend.PackFile:
		return filepath.Join(b.dir, h.Type.String(), h.Name[:2], h.Name)
	}
	return filepath.Join(b.dir, h.Type.String(), h.Name)
}

// check returns the error that stops op on h before any I/O: a closed
// backend, a cancelled context or an invalid handle.
func (b *Backend) check(ctx context.Context, op string, h backend.Handle) error {
	if b.closed.Load() {
		return backend.Wrap(op, h.String(), errClosed)
	}
	if err := ctx.Err(); err != nil {
		return backend.Wrap(op, h.String(), err)
	}
	if err := h.Valid(); err != nil {
		return backend.Permanent(fmt.Errorf("%s: %w", op, err))
	}
	return nil
}

// wrapErr adds op and name to err from the filesystem and maps it to the
// backend's error kinds: a missing file to ErrNotExist, and errors that
// retrying cannot fix (missing permission, read-only filesystem, full disk
// or quota) to Permanent ones.
func wrapErr(op, name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return backend.Wrap(op, name, backend.ErrNotExist)
	case errors.Is(err, syscall.ENOSPC):
		return backend.Permanent(backend.Wrap(op, name, fmt.Errorf("disk full: %w", err)))
	case errors.Is(err, syscall.EDQUOT):
		return backend.Permanent(backend.Wrap(op, name, fmt.Errorf("disk quota exceeded: %w", err)))
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return backend.Permanent(backend.Wrap(op, name, err))
	}
	return backend.Wrap(op, name, err)
}

// mkdirDurable makes folder dir (and missing parents) and syncs its parent,
// so that files later stored in it, and synced there, are not lost with
// the folder's own entry in a crash. It never makes the repository folder
// itself: if that is gone (a backup disk unmounted under a running
// backup, a folder moved away), files must not land in an empty mount
// point on another filesystem.
func (b *Backend) mkdirDurable(dir string) error {
	if _, err := os.Lstat(b.dir); errors.Is(err, fs.ErrNotExist) {
		return backend.Permanent(fmt.Errorf("the repository folder %s no longer exists (an unmounted disk? moved away?); it is not made again", b.dir))
	}
	if err := b.mkdirAll(dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir makes the entries of folder dir durable. Filesystems that cannot
// sync a folder are not an error.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		err = nil
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
