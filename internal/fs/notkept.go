package fs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotKept is wrapped by the errors of ApplyMeta and ApplyMetaFd for
// metadata that the target filesystem refuses to hold on the file although
// it has room: an extended attribute too large for it, more attributes
// than it keeps on one inode, a namespace it does not know, or an inode
// flag it does not support. Everything else about the file was set.
var ErrNotKept = errors.New("the target filesystem cannot keep it")

// fullDiskMargin is the free space below which ENOSPC from setxattr is
// taken for a full filesystem: more than any one attribute (64 KiB at
// most) and the blocks a filesystem may need to store it.
const fullDiskMargin = 1 << 20

// NotKeptError lists the metadata of one file that its filesystem
// refused. It wraps ErrNotKept.
type NotKeptError struct {
	// What names each refused item: "xattr user.x (70000 bytes)".
	What []string
	// Why is the first refusal's error number.
	Why unix.Errno
}

// maxNamed bounds how many refused items the message names.
const maxNamed = 8

func (e *NotKeptError) Error() string {
	names := e.What
	more := ""
	if len(names) > maxNamed {
		more = fmt.Sprintf(" and %d more", len(names)-maxNamed)
		names = names[:maxNamed]
	}
	return fmt.Sprintf("not kept, the target filesystem refuses %s%s (%s: %s)",
		strings.Join(names, ", "), more, errnoName(e.Why), refusalReason(e.Why))
}

func (e *NotKeptError) Unwrap() error { return ErrNotKept }

// refusalReason says in words what a refusal's error number means.
func refusalReason(errno unix.Errno) string {
	switch errno {
	case unix.ENOSPC, unix.E2BIG:
		return "more or larger attributes than this filesystem holds on one file"
	case unix.ERANGE:
		return "name or value longer than this filesystem allows"
	case unix.ENOTSUP:
		return "not supported by this filesystem or its mount options"
	}
	return errno.Error()
}

func errnoName(errno unix.Errno) string {
	if n := unix.ErrnoName(errno); n != "" {
		return n
	}
	return errno.Error()
}

// refusal decides whether err, returned by setting an attribute of size
// bytes (name and value) on x, is the filesystem refusing that attribute
// rather than a failure, and returns its error number if so.
//
// E2BIG, ERANGE and EOPNOTSUPP are refusals. ENOSPC is ambiguous: ext4
// and btrfs return it both when the filesystem is full and when a file's
// attributes outgrow the space they may take on one inode. It is taken for
// a full filesystem (not a refusal) when statfs shows less free space than
// fullDiskMargin plus the attribute; the caller then stops as for any full
// disk. A refusal on a filesystem that is nearly full is thus reported as
// a full disk, and after space is freed, as the refusal it is. EDQUOT is
// always a full disk.
func refusal(x xattrFile, err error, size int) (unix.Errno, bool) {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return 0, false
	}
	switch errno {
	case unix.E2BIG, unix.ERANGE, unix.ENOTSUP:
		return errno, true
	case unix.ENOSPC:
		free, ok := freeBytes(x)
		return errno, ok && free >= fullDiskMargin+uint64(size)
	}
	return 0, false
}

// freeBytes returns the space of x's filesystem available to a writer.
// It leaves out the blocks ext4 reserves for root, though root may use
// them, because they include a reserve ext4 keeps even from root (up to
// 16 MiB): a refusal on a filesystem that is full but for root's share
// is then reported as a full disk, which freeing space sorts out.
func freeBytes(x xattrFile) (uint64, bool) {
	var sfs unix.Statfs_t
	var err error
	if x.fd >= 0 {
		err = unix.Fstatfs(x.fd, &sfs)
	} else {
		// The directory the entry is in: statfs would follow a symlink.
		err = unix.Statfs(filepath.Dir(x.path), &sfs)
	}
	if err != nil {
		return 0, false
	}
	return sfs.Bavail * uint64(sfs.Bsize), true
}

// SplitNotKept separates what ApplyMeta or ApplyMetaFd returned into the
// metadata the filesystem refused (errors wrapping ErrNotKept) and the
// other failures. Either may be nil.
func SplitNotKept(err error) (notKept, other error) {
	if err == nil {
		return nil, nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var nk, rest []error
	for _, e := range errs {
		if errors.Is(e, ErrNotKept) {
			nk = append(nk, e)
		} else {
			rest = append(rest, e)
		}
	}
	return errors.Join(nk...), errors.Join(rest...)
}
