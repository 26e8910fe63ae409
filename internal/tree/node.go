// Package tree defines the directory listing stored in a repository: the
// Node that describes one file, directory or special file with all its
// metadata, and the binary encoding of a stream of nodes (see codec.go and
// docs/FORMAT.md).
package tree

import "github.com/rewind-backup/rewind/internal/id"

// Type is the kind of a node.
type Type uint8

// Node types. The numbers are part of the on-disk format.
const (
	File     Type = 1
	Dir      Type = 2
	Symlink  Type = 3
	BlockDev Type = 4
	CharDev  Type = 5
	FIFO     Type = 6
	Socket   Type = 7
)

func (t Type) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case BlockDev:
		return "blockdev"
	case CharDev:
		return "chardev"
	case FIFO:
		return "fifo"
	case Socket:
		return "socket"
	}
	return "unknown"
}

// Flags record how a node was captured.
const (
	// FlagChanged: the file changed while it was read, and still did on a
	// second attempt. Its content is what was read, and may be torn.
	FlagChanged uint32 = 1 << iota
	// FlagUnreadable: the file's content could not be read; Error says why.
	// Its metadata is recorded, its content is empty.
	FlagUnreadable
	// FlagInFlux: continuous capture gave up waiting for writes to settle.
	FlagInFlux
)

// Xattr is one extended attribute, POSIX ACLs (system.posix_acl_access,
// system.posix_acl_default) and security labels included.
type Xattr struct {
	Name  string
	Value []byte
}

// Chunk is one piece of a file's content: a data blob of Size bytes, or a
// hole of Size bytes when ID is id.Null.
type Chunk struct {
	ID   id.ID
	Size uint64
}

// IsHole reports whether the chunk is a hole (a run of zero bytes not
// stored).
func (c Chunk) IsHole() bool { return c.ID.IsNull() }

// Node describes one directory entry. Names are raw bytes held in a string:
// they need not be valid UTF-8.
type Node struct {
	Name string
	Type Type
	// Mode holds the permission bits with setuid, setgid and sticky
	// (st_mode & 07777).
	Mode  uint32
	UID   uint32
	GID   uint32
	User  string
	Group string
	// Size is the apparent size of a file in bytes.
	Size uint64
	// Times in nanoseconds since the Unix epoch.
	MTime int64
	CTime int64
	ATime int64
	// Inode, DeviceID and Links come from lstat; they drive change
	// detection and hard-link restore.
	Inode    uint64
	DeviceID uint64
	Links    uint64
	// Rdev is the device number of a block or character device.
	Rdev       uint64
	LinkTarget string
	Xattrs     []Xattr
	// Content lists a file's chunks in order. For files with very many
	// chunks it is empty and ContentLists names blobs that hold the list.
	Content      []Chunk
	ContentLists []id.ID
	// Subtree names the tree blobs that, in order, list a directory.
	Subtree []id.ID
	Flags   uint32
	// Error says why a file could not be read (FlagUnreadable).
	Error string
	// InodeFlags are the file's or directory's attributes that chattr(1)
	// sets, as FS_IOC_GETFLAGS reports them (FS_IMMUTABLE_FL 0x10,
	// FS_APPEND_FL 0x20, ...), limited to those a restore may set
	// (fs.KeptInodeFlags). HasInodeFlags says they were read: it is false
	// for other node types, on filesystems without inode flags, and in
	// snapshots written before rewind captured them, and then a restore
	// leaves the flags alone.
	InodeFlags    uint32
	HasInodeFlags bool
}

// SameMeta reports whether two nodes record the same metadata that a
// restore sets: mode, owner, mtime, size, link target, device number and
// xattrs. Content, inode numbers, atime and ctime are not compared, nor
// are inode flags, which only snapshots capture (a change to them changes
// the ctime).
func SameMeta(a, b *Node) bool {
	if a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.MTime != b.MTime || a.Size != b.Size ||
		a.LinkTarget != b.LinkTarget || a.Rdev != b.Rdev || len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	for i := range a.Xattrs {
		if a.Xattrs[i].Name != b.Xattrs[i].Name || string(a.Xattrs[i].Value) != string(b.Xattrs[i].Value) {
			return false
		}
	}
	return true
}
