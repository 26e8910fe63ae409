// Package archiver turns directories into a snapshot.
//
// The pipeline (docs/BACKUP.md):
//
//   - One walker goroutine lists directories depth-first in name order,
//     lstats every entry relative to an open directory fd, and compares
//     each file with the same path in the parent snapshot. A file whose
//     size, mtime, ctime and inode are unchanged keeps the parent's chunk
//     list and xattrs and is never opened.
//   - Files that must be read go to a bounded pool of file workers, which
//     read, cut (content-defined chunking), and hash. Known chunks cost a
//     lookup; new ones are copied to a bounded pool of savers that
//     compress, encrypt and pack them. A file never waits for its chunks to
//     be stored, since a chunk's ID is known before it is saved.
//   - A directory is encoded into tree blobs when its last child is done,
//     by whichever goroutine finished that child; its parent is told in
//     turn. Memory is bounded by the queues, the open directories on the
//     walker's path, and the packs being filled.
package archiver
