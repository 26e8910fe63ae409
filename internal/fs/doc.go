// Package fs is the operating-system layer under the archiver and the
// restorer. It turns what lstat, listxattr and lseek report into tree.Node
// values at backup time, and applies those nodes to the filesystem at
// restore time. It is Linux-only and built on golang.org/x/sys/unix.
//
// # Capture
//
// NodeFromStat fills a node from a stat result, ReadXattrs and ReadXattrsFd
// read extended attributes (POSIX ACLs and security labels included), and
// DataRegions lists where a file holds data so holes are recorded without
// being read. IDNames maps numeric owners to names by reading /etc/passwd
// and /etc/group once, without cgo or NSS.
//
// # Apply
//
// A snapshot is untrusted input: a name in it may be "..", contain a slash,
// or be the name of a symlink restored a moment earlier that points outside
// the target. Restore therefore never uses paths. Every function here works
// on an open directory file descriptor and a single name checked by
// ValidName, and none follows a symlink in the last component: files are
// created with O_EXCL|O_NOFOLLOW, directories are opened with
// O_DIRECTORY|O_NOFOLLOW, metadata is set with the *at and l* system calls.
// As long as the restorer only descends through descriptors returned by
// OpenDirAt, nothing is written outside the directory it started from.
//
// ApplyMeta and ApplyMetaFd set metadata in this order:
//
//  1. owner (when asked), first, because chown clears setuid, setgid and
//     file capabilities;
//  2. extended attributes and ACLs, while the mode the restorer created the
//     file with still lets its owner write them (user.* attributes need
//     write permission, even for the owner);
//  3. the mode, which also makes the ACL's mask and the permission bits
//     exactly what was captured;
//  4. access and modification times, since every step above may touch
//     them;
//  5. inode flags (chattr's immutable, append only, ...) of regular files
//     and directories, last, since immutable and append only forbid every
//     step above. Setting them changes only the ctime.
//
// The change time (ctime) cannot be set on Linux: it becomes the time of
// the restore. Directory metadata must be applied after the directory's
// contents have been restored, or creating them changes its times (and a
// read-only mode would stop them being created).
//
// Setting metadata on a node that is not a regular file or directory (a
// symlink, a device, a FIFO) without following or opening it needs the
// /proc/self/fd magic links, so restore requires /proc to be mounted.
package fs
