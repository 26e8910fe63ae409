package fs

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/tree"
)

const (
	// listBufSize is the stack buffer for the first listxattr call: most
	// files have no attributes or a handful of short names, and then that
	// one call is all ReadXattrs costs.
	listBufSize = 1024
	// valueBufSize is the stack buffer values are read into before being
	// copied out at their exact size.
	valueBufSize = 1024
	// maxSizeRetries bounds the ERANGE loop when attributes keep growing
	// between the call that asks their size and the one that reads them.
	maxSizeRetries = 8
)

// ReadXattrs returns the extended attributes of path, sorted by name,
// without following a symlink at path. All namespaces the caller may read
// are returned: user, trusted (listed only to CAP_SYS_ADMIN), security,
// and the POSIX ACLs system.posix_acl_access and system.posix_acl_default.
//
// A filesystem without extended attributes gives nil, nil. So does a file
// without any, at the cost of a single llistxattr call.
func ReadXattrs(path string) ([]tree.Xattr, error) {
	xs, err := readXattrs(xattrFile{path: path, fd: -1})
	if err != nil {
		return nil, fmt.Errorf("read xattrs %q: %w", path, err)
	}
	return xs, nil
}

// ReadXattrsFd is ReadXattrs for an open file. fd must be a real open file
// descriptor: one opened with O_PATH gives EBADF.
func ReadXattrsFd(fd int) ([]tree.Xattr, error) {
	xs, err := readXattrs(xattrFile{fd: fd})
	if err != nil {
		return nil, fmt.Errorf("read xattrs of fd %d: %w", fd, err)
	}
	return xs, nil
}

// xattrFile names the file whose attributes are read or written: by path,
// without following a symlink there, or by descriptor when fd >= 0.
//
// It is a struct rather than a set of closures so that the calls through
// it are static and escape analysis keeps the buffers on the stack.
type xattrFile struct {
	path string
	fd   int
}

// op names the system call family in errors: "l" or "f".
func (x xattrFile) op(name string) string {
	if x.fd >= 0 {
		return "f" + name
	}
	return "l" + name
}

func (x xattrFile) list(buf []byte) (int, error) {
	if x.fd >= 0 {
		return unix.Flistxattr(x.fd, buf)
	}
	return unix.Llistxattr(x.path, buf)
}

func (x xattrFile) get(attr string, buf []byte) (int, error) {
	if x.fd >= 0 {
		return unix.Fgetxattr(x.fd, attr, buf)
	}
	return unix.Lgetxattr(x.path, attr, buf)
}

func (x xattrFile) set(attr string, value []byte) error {
	if x.fd >= 0 {
		return unix.Fsetxattr(x.fd, attr, value, 0)
	}
	return unix.Lsetxattr(x.path, attr, value, 0)
}

func (x xattrFile) remove(attr string) error {
	if x.fd >= 0 {
		return unix.Fremovexattr(x.fd, attr)
	}
	return unix.Lremovexattr(x.path, attr)
}

// readXattrs lists and reads the attributes of x.
func readXattrs(x xattrFile) ([]tree.Xattr, error) {
	var listBuf [listBufSize]byte
	names, err := listXattrNames(x, listBuf[:])
	if isNotSupported(err) {
		return nil, nil
	}
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var valueBuf [valueBufSize]byte
	buf := valueBuf[:]
	var xs []tree.Xattr
	for len(names) > 0 {
		var name string
		name, names = nextName(names)
		if name == "" {
			continue
		}
		var value []byte
		value, buf, err = getXattr(x, name, buf)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", name, err)
		}
		xs = append(xs, tree.Xattr{Name: name, Value: value})
	}
	slices.SortFunc(xs, func(a, b tree.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return slices.DeleteFunc(xs, func(a tree.Xattr) bool { return aclAlias(a.Name, xs) }), nil
}

// xfsACLAliases are the names under which XFS also lists a POSIX ACL to
// CAP_SYS_ADMIN: its on-disk form, in its own byte order. Removing one
// removes the ACL.
var xfsACLAliases = map[string]string{
	"trusted.SGI_ACL_FILE":    aclAccess,
	"trusted.SGI_ACL_DEFAULT": aclDefault,
}

// aclAlias reports whether name is XFS's second name for an ACL that xs
// holds under its POSIX name. Backup leaves it out and restore skips it:
// set on another filesystem it would be a stray attribute, and the POSIX
// name restores the ACL everywhere.
func aclAlias(name string, xs []tree.Xattr) bool {
	acl, ok := xfsACLAliases[name]
	return ok && slices.ContainsFunc(xs, func(x tree.Xattr) bool { return x.Name == acl })
}

// listXattrNames lists the names of x's attributes into buf and returns
// the NUL-separated names. When buf is too small it asks for the size,
// allocates a bit more (the list may grow in between) and tries again.
func listXattrNames(x xattrFile, buf []byte) ([]byte, error) {
	for range maxSizeRetries {
		n, err := x.list(buf)
		if err == nil {
			return buf[:n], nil
		}
		if err != unix.ERANGE {
			return nil, err
		}
		n, err = x.list(nil)
		if err != nil {
			return nil, err
		}
		buf = make([]byte, n+n/4+64)
	}
	return nil, fmt.Errorf("list xattrs: %w (list kept growing)", unix.ERANGE)
}

// getXattr reads the value of attribute name of x using buf, which it
// grows on ERANGE, and returns a copy of the value along with the buffer
// for the next call.
func getXattr(x xattrFile, name string, buf []byte) ([]byte, []byte, error) {
	for range maxSizeRetries {
		n, err := x.get(name, buf)
		if err == nil {
			return bytes.Clone(buf[:n]), buf, nil
		}
		if err != unix.ERANGE {
			return nil, buf, err
		}
		n, err = x.get(name, nil)
		if err != nil {
			return nil, buf, err
		}
		buf = make([]byte, n+n/4+64)
	}
	return nil, buf, fmt.Errorf("%w (value kept growing)", unix.ERANGE)
}

// nextName splits the first name off a NUL-separated listxattr result.
func nextName(list []byte) (name string, rest []byte) {
	i := bytes.IndexByte(list, 0)
	if i < 0 {
		return string(list), nil
	}
	return string(list[:i]), list[i+1:]
}

// isNotSupported reports whether err says the filesystem has no extended
// attributes (ENOTSUP and EOPNOTSUPP are the same errno on Linux).
func isNotSupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP)
}
