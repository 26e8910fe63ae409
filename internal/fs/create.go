package fs

import (
	"errors"
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/tree"
)

// ErrUnsupportedType is returned, wrapped, when asked to create a node of a
// type the function does not make.
var ErrUnsupportedType = errors.New("unsupported node type")

// createMode is the mode files, devices and FIFOs are created with. Until
// ApplyMeta sets the captured owner and mode, only the restoring user can
// reach what is being restored.
const createMode = 0o600

// OpenDir opens the directory at path, the root a restore writes under.
// Unlike OpenDirAt it takes a path and follows symlinks in it: the target
// is the user's choice, not the snapshot's.
func OpenDir(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// OpenDirAt opens the directory name in dirfd for reading and as a base
// for the *At functions. It fails if name is a symlink, even one to a
// directory. The caller closes the descriptor with unix.Close.
func OpenDirAt(dirfd int, name string) (int, error) {
	if err := ValidName(name); err != nil {
		return -1, err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return fd, nil
}

// Mkdirat creates the directory name in dirfd with mode (less the umask;
// restorers usually pass 0o700 and set the captured mode with ApplyMeta
// once the contents are in). A directory that already exists is not an
// error; anything else at name, a symlink to a directory included, fails
// with an error matching fs.ErrExist and creates nothing.
func Mkdirat(dirfd int, name string, mode uint32) error {
	if err := ValidName(name); err != nil {
		return err
	}
	err := unix.Mkdirat(dirfd, name, mode)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nil
		}
	}
	if err != nil {
		return &os.PathError{Op: "mkdirat", Path: name, Err: err}
	}
	return nil
}

// CreateFileAt creates the regular file name in dirfd, open for writing,
// with mode 0600 until ApplyMeta sets the captured one. It uses
// O_CREAT|O_EXCL|O_NOFOLLOW, so it never opens what is already there.
//
// With overwrite, whatever non-directory is at name (a file, a symlink, a
// device) is unlinked and the file created anew. Writing into an existing
// file instead would also change its other hard links, which may lie
// outside the target. A directory at name is never removed.
func CreateFileAt(dirfd int, name string, overwrite bool) (*os.File, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	const flags = unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_WRONLY | unix.O_CLOEXEC
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat(dirfd, name, flags, createMode)
		if err == nil {
			return os.NewFile(uintptr(fd), name), nil
		}
		// Retry a few times: something may recreate name between the
		// unlink and the open.
		if err != unix.EEXIST || !overwrite || attempt == 3 {
			return nil, &os.PathError{Op: "create", Path: name, Err: err}
		}
		// unlinkat never follows a symlink, and with no flags refuses
		// directories (EISDIR).
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
			return nil, &os.PathError{Op: "replace", Path: name, Err: err}
		}
	}
}

// SymlinkAt creates the symlink name in dirfd pointing to target. The
// target is stored as is and never resolved: it may point anywhere, which
// is why no other function here follows symlinks.
func SymlinkAt(target string, dirfd int, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := unix.Symlinkat(target, dirfd, name); err != nil {
		return &os.PathError{Op: "symlinkat", Path: name, Err: err}
	}
	return nil
}

// MknodAt creates the block device, character device or FIFO described by
// n as name in dirfd, with mode 0600 until ApplyMeta sets the captured one.
// Devices need CAP_MKNOD.
func MknodAt(dirfd int, name string, n *tree.Node) error {
	if err := ValidName(name); err != nil {
		return err
	}
	var typ uint32
	switch n.Type {
	case tree.BlockDev:
		typ = unix.S_IFBLK
	case tree.CharDev:
		typ = unix.S_IFCHR
	case tree.FIFO:
		typ = unix.S_IFIFO
	default:
		return fmt.Errorf("mknodat %q: %w %s", name, ErrUnsupportedType, n.Type)
	}
	// mknodat takes the device number as a 32-bit int in the kernel's
	// encoding, which is what st_rdev holds for any number Linux can make.
	if n.Rdev > math.MaxUint32 {
		return fmt.Errorf("mknodat %q: device number %#x out of range", name, n.Rdev)
	}
	if err := unix.Mknodat(dirfd, name, typ|createMode, int(n.Rdev)); err != nil {
		return &os.PathError{Op: "mknodat", Path: name, Err: err}
	}
	return nil
}

// LinkAt creates newname in newdirfd as a hard link to oldname in
// olddirfd. If oldname is a symlink the link is to the symlink itself.
func LinkAt(olddirfd int, oldname string, newdirfd int, newname string) error {
	if err := ValidName(oldname); err != nil {
		return err
	}
	if err := ValidName(newname); err != nil {
		return err
	}
	if err := unix.Linkat(olddirfd, oldname, newdirfd, newname, 0); err != nil {
		return &os.LinkError{Op: "linkat", Old: oldname, New: newname, Err: err}
	}
	return nil
}
