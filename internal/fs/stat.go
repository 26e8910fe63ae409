package fs

import (
	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/tree"
)

// NodeFromStat returns the node for the directory entry name whose lstat
// result is st. It fills everything stat knows: type, permission bits with
// setuid, setgid and sticky, owner, times, inode, device, link count and,
// for devices, the device number.
//
// Size is set for regular files only: a directory's st_size depends on the
// filesystem and a symlink's is the length of its target. A socket gets
// tree.Socket (the archiver records its name and skips it); an st_mode with
// no known type gives type 0, which tree.Type prints as "unknown".
//
// User, Group, LinkTarget and Xattrs are left empty: see IDNames,
// ReadXattrs and os.Readlink.
func NodeFromStat(name string, st *unix.Stat_t) tree.Node {
	n := tree.Node{
		Name:     name,
		Type:     TypeOf(st.Mode),
		Mode:     st.Mode & 0o7777,
		UID:      st.Uid,
		GID:      st.Gid,
		MTime:    st.Mtim.Nano(),
		CTime:    st.Ctim.Nano(),
		ATime:    st.Atim.Nano(),
		Inode:    st.Ino,
		DeviceID: st.Dev,
		Links:    uint64(st.Nlink),
	}
	switch n.Type {
	case tree.File:
		n.Size = uint64(st.Size)
	case tree.BlockDev, tree.CharDev:
		n.Rdev = st.Rdev
	}
	return n
}

// typeBits pairs each node type with its S_IFMT bits.
var typeBits = [...]struct {
	t    tree.Type
	bits uint32
}{
	{tree.File, unix.S_IFREG}, {tree.Dir, unix.S_IFDIR}, {tree.Symlink, unix.S_IFLNK},
	{tree.BlockDev, unix.S_IFBLK}, {tree.CharDev, unix.S_IFCHR}, {tree.FIFO, unix.S_IFIFO},
	{tree.Socket, unix.S_IFSOCK},
}

// TypeOf maps the S_IFMT bits of an st_mode to a node type, 0 if unknown.
func TypeOf(mode uint32) tree.Type {
	for _, e := range typeBits {
		if mode&unix.S_IFMT == e.bits {
			return e.t
		}
	}
	return 0
}

// ModeBits are the S_IFMT bits of node type t (a regular file's for an
// unknown type).
func ModeBits(t tree.Type) uint32 {
	for _, e := range typeBits {
		if e.t == t {
			return e.bits
		}
	}
	return unix.S_IFREG
}
