package fs

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/tree"
)

// inodeFlag is one flag of FS_IOC_GETFLAGS that rewind keeps, with the
// letter chattr(1) shows for it.
type inodeFlag struct {
	bit    uint32
	letter byte
	name   string
}

// inodeFlags are the flags rewind captures and restores, in the order
// they are set when they must be set one at a time: immutable and append
// only last, since they forbid changing the file.
var inodeFlags = []inodeFlag{
	{0x1, 's', "secure deletion"},
	{0x2, 'u', "undelete"},
	{0x4, 'c', "compress"},
	{0x8, 'S', "sync"},
	{0x40, 'd', "no dump"},
	{0x80, 'A', "no atime"},
	{0x400, 'm', "no compression"},
	{0x4000, 'j', "data journalling"},
	{0x8000, 't', "no tail merging"},
	{0x10000, 'D', "directory sync"},
	{0x20000, 'T', "top of directory hierarchy"},
	{0x800000, 'C', "no copy on write"},
	{0x20000000, 'P', "project inheritance"},
	{0x20, 'a', "append only"},
	{0x10, 'i', "immutable"},
}

// KeptInodeFlags is the mask of the inode flags rewind keeps (see
// docs/FORMAT.md, tag 23). Others (extents, inline data, encryption,
// verity, casefold, DAX) are the filesystem's own or cannot be set on a
// file that already has content.
var KeptInodeFlags = func() uint32 {
	var m uint32
	for _, f := range inodeFlags {
		m |= f.bit
	}
	return m
}()

// InodeFlagNames names the kept flags in bits, as "i (immutable)".
func InodeFlagNames(bits uint32) []string {
	var out []string
	for _, f := range inodeFlags {
		if bits&f.bit != 0 {
			out = append(out, fmt.Sprintf("%c (%s)", f.letter, f.name))
		}
	}
	return out
}

// InodeFlagLetters shows the kept flags in bits as chattr's letters, in
// the order of inodeFlags, or "-" for none.
func InodeFlagLetters(bits uint32) string {
	var b strings.Builder
	for _, f := range inodeFlags {
		if bits&f.bit != 0 {
			b.WriteByte(f.letter)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// noInodeFlags reports whether err says the file or its filesystem has no
// inode flags, or not these: ENOTTY (no such ioctl), EOPNOTSUPP, EINVAL.
func noInodeFlags(err error) bool {
	return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EINVAL)
}

// ReadInodeFlags returns the kept inode flags of the open file or
// directory fd (not an O_PATH descriptor); ok is false, with no error, on
// a filesystem without inode flags.
func ReadInodeFlags(fd int) (flags uint32, ok bool, err error) {
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if noInodeFlags(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("inode flags: %w", err)
	}
	return v & KeptInodeFlags, true, nil
}

// ReadInodeFlagsInto sets n's inode flags from the open file or directory
// fd, leaving HasInodeFlags false where the filesystem has none.
func ReadInodeFlagsInto(n *tree.Node, fd int) error {
	f, ok, err := ReadInodeFlags(fd)
	n.InodeFlags, n.HasInodeFlags = f, ok
	return err
}

// ReadDirInodeFlags opens the directory p without following a symlink or
// touching its access time, and reads its inode flags into n.
func ReadDirInodeFlags(n *tree.Node, p string) error {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOATIME
	fd, err := unix.Open(p, flags, 0)
	if err == unix.EPERM {
		// O_NOATIME needs ownership or CAP_FOWNER.
		fd, err = unix.Open(p, flags&^unix.O_NOATIME, 0)
	}
	if err != nil {
		return &os.PathError{Op: "open for inode flags", Path: p, Err: err}
	}
	defer unix.Close(fd)
	return ReadInodeFlagsInto(n, fd)
}

func setFlags(fd int, v uint32) error {
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(int32(v)))
}

// applyInodeFlags makes the kept flags of fd want, leaving the others as
// they are. Flags the filesystem refuses, with an error or by dropping
// them silently, are reported to fail as a NotKeptError; any other failure
// (EPERM: immutable and append only need CAP_LINUX_IMMUTABLE) as itself.
func applyInodeFlags(fd int, op string, want uint32, fail func(op string, err error)) {
	cur, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if noInodeFlags(err) {
		if want != 0 {
			fail(op, &NotKeptError{What: flagWhat(want), Why: unix.ENOTSUP})
		}
		return
	}
	if err != nil {
		fail(op, fmt.Errorf("get inode flags: %w", err))
		return
	}
	target := cur&^KeptInodeFlags | want
	if target == cur {
		return
	}
	err = setFlags(fd, target)
	if noInodeFlags(err) {
		// Some flag is refused: find which by setting them one at a
		// time over the flags the file must keep.
		err = nil
		got := cur &^ KeptInodeFlags
		if e := setFlags(fd, got); e != nil && !noInodeFlags(e) {
			err = e
		}
		for _, f := range inodeFlags {
			if want&f.bit == 0 || err != nil {
				continue
			}
			switch e := setFlags(fd, got|f.bit); {
			case e == nil:
				got |= f.bit
			case !noInodeFlags(e):
				err = e
			}
		}
	}
	if err != nil {
		fail(op, fmt.Errorf("set inode flags %s: %w", InodeFlagLetters(want), err))
		return
	}
	now, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		fail(op, fmt.Errorf("get inode flags: %w", err))
		return
	}
	if missing := want &^ now; missing != 0 {
		fail(op, &NotKeptError{What: flagWhat(missing), Why: unix.ENOTSUP})
	}
	if extra := now & KeptInodeFlags &^ want; extra != 0 {
		fail(op, fmt.Errorf("inode flags %s could not be cleared", InodeFlagLetters(extra)))
	}
}

func flagWhat(bits uint32) []string {
	names := InodeFlagNames(bits)
	for i, n := range names {
		names[i] = "inode flag " + n
	}
	return names
}

// openForFlags opens name in dirfd, a regular file or directory as n
// says, for FS_IOC_GETFLAGS and SETFLAGS: read-only, without following a
// symlink, blocking or becoming a controlling terminal, and checked to be
// of n's type.
func openForFlags(dirfd int, name string, n *tree.Node) (int, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	if n.Type == tree.Dir {
		flags |= unix.O_DIRECTORY
	}
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if (n.Type == tree.File) != (st.Mode&unix.S_IFMT == unix.S_IFREG) {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: not a %s", os.ErrInvalid, n.Type)
	}
	return fd, nil
}

// fixedFlags forbid changing a file or a folder's entries: immutable and
// append only.
const fixedFlags = 0x10 | 0x20

// ClearFixedFlags clears the immutable and append-only flags of the open
// file or directory fd, if it has them, so that a restore can write over
// what an earlier restore left (it sets them again afterwards). It does
// nothing on a filesystem without inode flags.
func ClearFixedFlags(fd int) error {
	cur, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if noInodeFlags(err) || (err == nil && cur&fixedFlags == 0) {
		return nil
	}
	if err == nil {
		err = setFlags(fd, cur&^fixedFlags)
	}
	if err != nil {
		return fmt.Errorf("clear immutable and append-only flags: %w", err)
	}
	return nil
}

// earlyFlags take effect only on an empty file: btrfs silently ignores no
// copy on write set on a file that has data.
const earlyFlags = 0x800000

// SetEarlyInodeFlags sets those of n's inode flags that must be set while
// the file f is still empty, before its content is written. Failures are
// left for ApplyMetaFd, which sets all the flags and reports those the
// filesystem refuses.
func SetEarlyInodeFlags(f *os.File, n *tree.Node) {
	want := n.InodeFlags & earlyFlags
	if !n.HasInodeFlags || want == 0 {
		return
	}
	_ = withFd(f, func(fd int) error {
		cur, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err == nil && cur&want != want {
			err = setFlags(fd, cur|want)
		}
		return err
	})
}
