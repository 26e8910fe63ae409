// Package watch is continuous capture: it follows changes below a set of
// paths and turns them into snapshots seconds after they happen, each
// costing what changed rather than the size of the tree (`rewind watch`,
// docs/CONTINUOUS.md).
//
// # Sources
//
// A Source reports changes as events on paths. The fanotify source puts
// one FAN_MARK_FILESYSTEM mark on each filesystem that holds a watched
// path, with FAN_REPORT_DFID_NAME (Linux 5.9, root): events name the
// directory by file handle and the entry by name, so there is no watch per
// directory and nothing to set up when directories appear. Handles are
// turned into paths with open_by_handle_at and a cache, and events outside
// the watched paths (and the watcher's own writes) are dropped. Where
// fanotify is unavailable the inotify source watches every directory
// below each path, adding watches to directories as they appear, before
// listing them.
//
// A directory that appears is reported as new and walked whole by the next
// capture, so files created in it before it could be watched are not
// missed. When a kernel queue overflows, the paths whose events went
// through that queue are walked whole (one queue per filesystem for
// fanotify, per watched path for inotify) and a warning is logged. Changes
// that no event reports (writes through a shared mmap, a filesystem
// mounted on top later, a watch limit) are caught by a periodic full scan,
// hourly by default.
//
// # Coalescing and scheduling
//
// Pending keeps one entry per changed path, however many events it had,
// and none below a directory that will be walked whole. The Watcher starts
// a capture at most once per Interval; before it, it waits up to Settle
// for the files being written to go Quiet (no write for Quiet, or closed).
// Files that never do are captured as they are and flagged in flux
// (tree.FlagInFlux). Events keep being read while a capture runs; what
// they report goes into the next one.
//
// # Captures
//
// RepoCommitter turns a batch into a partial snapshot (see
// archiver.Changes): only the directories on the way to the changed paths
// are visited, everything else is the parent's. It locks the repository
// for each capture and keeps the index current between them; see its
// documentation for why partial snapshots are safe next to prune.
package watch
