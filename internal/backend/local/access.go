package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Access is who may use a repository besides its owner. It is read from
// the mode bits of the repository's config file and folder, so that every
// process using the repository, whoever runs it, writes what it adds the
// same way:
//
//	config -r--------                     private (the default): folders 0700, files 0400
//	config -r--r-----, folder drwxr-s---  group may read: folders 02750, files 0440
//	config -r--r-----, folder drwxrws---  group may read and write: folders 02770, files 0440
//
// (as restic, the config file's group read bit says the repository is
// shared; the folder's group write bit says how far).
// Stored files are never writable (they are immutable); writing in a
// repository means making and removing files, which needs write access to
// the folders only. The set-group-ID bit on the folders makes new files and
// folders take the repository's group, not the writer's primary group.
type Access struct {
	GroupRead, GroupWrite bool
}

// String names the access as init and chmod print it.
func (a Access) String() string {
	switch {
	case a.GroupWrite:
		return "group read-write"
	case a.GroupRead:
		return "group read-only"
	}
	return "private"
}

// DirMode is the mode of the repository's folders under a.
func (a Access) DirMode() fs.FileMode {
	switch {
	case a.GroupWrite:
		return 0o770 | fs.ModeSetgid
	case a.GroupRead:
		return 0o750 | fs.ModeSetgid
	}
	return 0o700
}

// FileMode is the mode of the repository's files under a.
func (a Access) FileMode() fs.FileMode {
	if a.GroupRead || a.GroupWrite {
		return 0o440
	}
	return 0o400
}

// accessOf reads the access from the modes of the config file and the
// repository folder.
func accessOf(config, dir fs.FileMode) Access {
	shared := config&0o040 != 0
	return Access{GroupRead: shared, GroupWrite: shared && dir&0o030 == 0o030}
}

// owner is whom a process running as root gives what it writes in a
// repository folder owned by someone else: root writing a backup into the
// postgres user's repository must leave files that user can read and
// remove. uid -1: no chown.
type owner struct{ uid, gid int }

// readAccess sets b's modes and owner from the repository folder.
func (b *Backend) readAccess() error {
	fi, err := os.Stat(b.dir)
	if err != nil {
		return err
	}
	var config fs.FileMode
	if ci, err := os.Stat(filepath.Join(b.dir, "config")); err == nil {
		config = ci.Mode()
	}
	b.access = accessOf(config, fi.Mode())
	b.owner = owner{-1, -1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && st.Uid != 0 {
		b.owner = owner{int(st.Uid), int(st.Gid)}
	}
	return nil
}

// Access returns the repository's access, read when it was opened.
func (b *Backend) Access() Access { return b.access }

// chownNew gives a file or folder the backend made to the repository's
// owner (see owner); f may be nil, then path is used.
func (b *Backend) chownNew(f *os.File, path string) error {
	if b.owner.uid < 0 {
		return nil
	}
	if f != nil {
		return f.Chown(b.owner.uid, b.owner.gid)
	}
	return os.Lchown(path, b.owner.uid, b.owner.gid)
}

// mkdirAll makes dir and its missing parents with the repository's folder
// mode (the umask does not apply: group access must survive a 022 or 077
// umask) and owner.
func (b *Backend) mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := b.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	if err := b.chownNew(nil, dir); err != nil {
		return err
	}
	return os.Chmod(dir, b.access.DirMode())
}

// SetAccess changes an existing local repository at dir to access a: it
// gives every folder and file group gid (-1: keep the group of the
// repository folder) and the modes a asks for. Temporary files and locks
// are changed too. It is what `rewind chmod` runs; doing the same by hand
// (chgrp -R, chmod -R, chmod g+s on folders) is as good.
func SetAccess(dir string, a Access, gid int) error {
	dir = filepath.Clean(dir)
	if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", dir, ErrNoRepository)
		}
		return err
	}
	if gid < 0 {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			gid = int(st.Gid)
		}
	}
	// Folders last on the way back up would be tidier, but the root goes
	// first on purpose: it is what writers read the access from, so a
	// run cut short leaves a repository whose new files are right and
	// whose old ones a second run fixes.
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if gid >= 0 {
			if err := os.Lchown(path, -1, gid); err != nil {
				return err
			}
		}
		mode := a.FileMode()
		if d.IsDir() {
			mode = a.DirMode()
		}
		return os.Chmod(path, mode)
	})
}
