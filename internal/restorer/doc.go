// Package restorer writes a snapshot, or part of one, back to disk with all
// its metadata, and dumps files and directories as a stream.
//
// Safety: every file is created relative to an open directory descriptor,
// one name at a time, with O_NOFOLLOW and validated names, so nothing a
// snapshot holds (names with "..", absolute or relative symlinks, a symlink
// and a directory of the same name) can make the restorer write outside
// the target. Hard links are made last, through os.Root, which refuses any
// path that leaves the target.
//
// Speed: one walker creates directories and small entries in order; a
// bounded pool of workers fills files, each reading, verifying and writing
// its chunks sequentially. A directory's own metadata (mode, times) is set
// when its last child is finished, so its mtime survives.
package restorer
