package fs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/tree"
)

// POSIX ACLs are stored as these two extended attributes.
const (
	aclAccess  = "system.posix_acl_access"
	aclDefault = "system.posix_acl_default"
)

// ApplyOptions say how ApplyMeta and ApplyMetaFd set a node's metadata.
type ApplyOptions struct {
	// Owner sets the node's owner and group. Giving files away needs
	// CAP_CHOWN, so only a restore run as root sets it.
	Owner bool
	// Names, with Owner, maps owners by name: a node whose User or Group
	// names a user or group known to Names gets that local ID, any other
	// keeps its numeric ID. Nil restores numeric IDs, the default (as
	// restic does), which is right for restoring a whole system.
	Names *IDNames
	// Fresh says the entry was just created by the caller, so it has no
	// attributes worth removing: setting the node's xattrs skips listing
	// the existing ones (one syscall less per restored file).
	Fresh bool
}

// ids returns the owner and group to give n.
func (o *ApplyOptions) ids(n *tree.Node) (uid, gid int) {
	u, g := n.UID, n.GID
	if n.User != "" {
		if id, ok := o.Names.UID(n.User); ok {
			u = id
		}
	}
	if n.Group != "" {
		if id, ok := o.Names.GID(n.Group); ok {
			g = id
		}
	}
	return int(u), int(g)
}

// ApplyMeta sets the metadata of n on the entry name in dirfd without
// following it if it is a symlink: owner (with opt.Owner), extended
// attributes and ACLs, mode (except on symlinks, whose mode Linux cannot
// change), access and modification times, then, on a regular file or
// directory, its inode flags. The package comment explains the order. The
// change time cannot be set.
//
// Extended attributes become exactly n.Xattrs: attributes in the user and
// trusted namespaces and ACLs that the entry has but n does not (say an ACL
// inherited from a default ACL) are removed. Security attributes that n
// does not list, such as an SELinux label the system just assigned, are
// left alone.
//
// Every step is attempted even if one before it failed, so that a failed
// chown does not also lose the times; the errors are joined, each naming
// the operation and name. Attribute operations go through
// /proc/self/fd/<dirfd>/<name>, so /proc must be mounted.
func ApplyMeta(dirfd int, name string, n *tree.Node, opt ApplyOptions) error {
	if err := ValidName(name); err != nil {
		return err
	}
	var errs []error
	fail := func(op string, err error) {
		errs = append(errs, &os.PathError{Op: op, Path: name, Err: err})
	}
	// Inode flags are set last but through a descriptor opened first,
	// while the mode the restorer created the entry with still lets it
	// be opened (one restored with mode 0 could not be, by its owner).
	flagsFd := -1
	if n.HasInodeFlags && (n.Type == tree.Dir || n.Type == tree.File) {
		// When it cannot be opened and n has no flags, there are at most
		// flags to clear that the restore did not set.
		fd, err := openForFlags(dirfd, name, n)
		if err != nil && n.InodeFlags != 0 {
			fail("open for inode flags", err)
		} else if err == nil {
			flagsFd = fd
			defer unix.Close(fd)
		}
	}
	if opt.Owner {
		uid, gid := opt.ids(n)
		if err := unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			fail("lchown", err)
		}
	}
	path := name
	if dirfd != unix.AT_FDCWD {
		path = "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
	}
	setXattrs(xattrFile{path: path, fd: -1}, n.Xattrs, false, fail)
	if n.Type != tree.Symlink {
		if err := chmodAt(dirfd, name, n.Mode); err != nil {
			fail("chmod", err)
		}
	}
	if err := unix.UtimesNanoAt(dirfd, name, timespecs(n), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		fail("utimensat", err)
	}
	if flagsFd >= 0 {
		applyInodeFlags(flagsFd, "ioctl FS_IOC_SETFLAGS", n.InodeFlags, fail)
	}
	return errors.Join(errs...)
}

// ApplyMetaFd is ApplyMeta for a file the restorer has open, typically the
// regular file it just wrote with CreateFileAt: it uses fchown, fsetxattr,
// fchmod and futimens on f. Call it after the last write, since writing
// clears setuid, setgid and file capabilities and changes the times.
func ApplyMetaFd(f *os.File, n *tree.Node, opt ApplyOptions) error {
	var errs []error
	fail := func(op string, err error) {
		errs = append(errs, &os.PathError{Op: op, Path: f.Name(), Err: err})
	}
	err := withFd(f, func(fd int) error {
		if opt.Owner {
			uid, gid := opt.ids(n)
			if err := unix.Fchown(fd, uid, gid); err != nil {
				fail("fchown", err)
			}
		}
		setXattrs(xattrFile{fd: fd}, n.Xattrs, opt.Fresh, fail)
		if err := unix.Fchmod(fd, n.Mode); err != nil {
			fail("fchmod", err)
		}
		// utimensat with an empty path and AT_EMPTY_PATH is futimens.
		if err := unix.UtimesNanoAt(fd, "", timespecs(n), unix.AT_EMPTY_PATH); err != nil {
			fail("futimens", err)
		}
		// A file just created has no flags to clear, unless it inherited
		// them from its folder; those are left.
		if n.HasInodeFlags && (n.InodeFlags != 0 || !opt.Fresh) {
			applyInodeFlags(fd, "ioctl FS_IOC_SETFLAGS", n.InodeFlags, fail)
		}
		return nil
	})
	if err != nil {
		fail("apply metadata", err)
	}
	return errors.Join(errs...)
}

func timespecs(n *tree.Node) []unix.Timespec {
	return []unix.Timespec{unix.NsecToTimespec(n.ATime), unix.NsecToTimespec(n.MTime)}
}

// chmodAt sets the mode of name in dirfd, refusing to follow a symlink.
func chmodAt(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP && err != unix.EPERM {
		return err
	}
	// EOPNOTSUPP: either Linux is older than 6.6 and has no fchmodat2, or
	// name is a symlink; chmodViaProc tells which. EPERM: some container
	// seccomp profiles refuse system calls they do not know with it; if
	// it was a real permission error, chmodViaProc gets it too.
	return chmodViaProc(dirfd, name, mode)
}

// chmodViaProc opens name with O_PATH|O_NOFOLLOW, which opens neither a
// device nor a FIFO nor a symlink's target, checks it is not a symlink, and
// changes the mode through the descriptor's /proc/self/fd link, which
// leads to that very inode.
func chmodViaProc(dirfd int, name string, mode uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("is a symlink: %w", unix.EOPNOTSUPP)
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// setXattrs makes x's attributes want: it removes those it may
// remove (see removableXattr) that want lacks, then sets each of want.
// fresh says x was just created and has none to remove, which saves
// listing them. Failures are reported to fail and do not stop the others.
// Attributes the filesystem refuses (see refusal) are reported once, as a
// NotKeptError naming them all; so is a filesystem without attributes.
func setXattrs(x xattrFile, want []tree.Xattr, fresh bool, fail func(op string, err error)) {
	var nk NotKeptError // a value, so that the common case allocates nothing
	defer func() {
		if len(nk.What) > 0 {
			fail(x.op("setxattr"), &NotKeptError{What: nk.What, Why: nk.Why})
		}
	}()
	if !fresh {
		var buf [listBufSize]byte
		names, err := listXattrNames(x, buf[:])
		switch {
		case isNotSupported(err):
			for _, a := range want {
				nk.What = append(nk.What, xattrWhat(a))
			}
			nk.Why = unix.ENOTSUP
			return
		case err != nil:
			fail(x.op("listxattr"), err)
		}
		for len(names) > 0 {
			var attr string
			attr, names = nextName(names)
			if !removableXattr(attr) || slices.ContainsFunc(want, func(x tree.Xattr) bool { return x.Name == attr }) {
				continue
			}
			if err := x.remove(attr); err != nil && err != unix.ENODATA {
				fail(x.op("removexattr "+attr), err)
			}
		}
	}
	for _, a := range want {
		if aclAlias(a.Name, want) {
			continue // in snapshots taken on XFS before it was left out
		}
		err := x.set(a.Name, a.Value)
		if err == nil {
			continue
		}
		if errno, ok := refusal(x, err, len(a.Name)+len(a.Value)); ok {
			if len(nk.What) == 0 {
				nk.Why = errno
			}
			nk.What = append(nk.What, xattrWhat(a))
			continue
		}
		fail(x.op("setxattr "+a.Name), err)
	}
}

// xattrWhat names an attribute in a NotKeptError.
func xattrWhat(a tree.Xattr) string {
	return fmt.Sprintf("xattr %q (%d bytes)", a.Name, len(a.Value))
}

// removableXattr reports whether ApplyMeta removes attr when the node does
// not list it. Security attributes are the system's to assign.
func removableXattr(attr string) bool {
	if _, ok := xfsACLAliases[attr]; ok {
		return false // the ACL itself is removed by its POSIX name
	}
	return strings.HasPrefix(attr, "user.") || strings.HasPrefix(attr, "trusted.") ||
		attr == aclAccess || attr == aclDefault
}
