package archiver

import (
	"context"
	"log/slog"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Options control one backup.
type Options struct {
	Hostname string
	Tags     []string
	// Excludes are patterns (see Matcher); ExcludeCaches skips directories
	// holding a valid CACHEDIR.TAG.
	Excludes      []string
	ExcludeCaches bool
	// ExcludeIfPresent are NAME or NAME:HEADER specs: a directory holding
	// a file NAME (that starts with HEADER, when given) keeps only that
	// file, as ExcludeCaches does with CACHEDIR.TAG.
	ExcludeIfPresent []string
	// ExcludeLargerThan, when positive, leaves out regular files larger
	// than this many bytes, backup targets included; TooLarge lists them.
	ExcludeLargerThan int64
	// ExcludeNodump leaves out files and directories flagged nodump
	// (chattr +d), as dump(8) and borg do; each is named in Skipped.
	ExcludeNodump bool
	// OneFileSystem keeps the walk on the device of each given path: a
	// directory on another device (a mount point, a btrfs subvolume) is
	// kept without its content and listed by NotCrossed.
	// CrossSubvolumes, with it, goes into btrfs subvolumes of the same
	// mount, still not into other mounts.
	OneFileSystem   bool
	CrossSubvolumes bool
	// ReadFrom maps real folders to the folders their content is read
	// from (a btrfs or LVM snapshot mounted elsewhere): everything at or
	// below Real is read below Source, and recorded under Real
	// (readfrom.go).
	ReadFrom []ReadFrom
	// SystemRoot, when set, is the root directory of a system that is not
	// running (another machine's disk mounted here): every path, the
	// backup targets included, is that system's own ("/etc"), read below
	// SystemRoot (SystemRoot/etc), so that the snapshot and a restore
	// show the system's paths (sysroot.go). It implies OneFileSystem and
	// CrossSubvolumes: only CrossDevices are entered besides the
	// targets' own filesystems. It cannot be combined with ReadFrom.
	SystemRoot string
	// CrossDevices are device numbers (st_dev) that OneFileSystem
	// crosses into anyway: the filesystems of a SystemRoot that belong to
	// its disks, and not the virtual ones mounted among them.
	CrossDevices []uint64
	// Parent is the snapshot to compare with; nil reads every file.
	Parent *snapshot.Snapshot
	// Changes, with a Parent, makes the backup partial: only what it
	// names is looked at again, everything else is the parent's
	// (partial.go).
	Changes *Changes
	// InFlux names files that were still being written when capture
	// began; those that are read get tree.FlagInFlux.
	InFlux []string
	// SkipUnchanged: when every backup target comes out as it is in the
	// parent (same node, same listing), save nothing and return
	// ErrUnchanged.
	SkipUnchanged bool
	// FileWorkers, Savers and Walkers (directory walkers besides the
	// first) size the pools; zero picks defaults.
	FileWorkers int
	Savers      int
	Walkers     int
	// BlockDelta, with a Parent, names the changed byte ranges of files
	// so that only those are read (delta.go).
	BlockDelta BlockDelta
	// LargeFile is the size from which a file is cut with the repository's
	// small-chunk profile (files rewritten in place, disk images).
	LargeFile int64
	Logger    *slog.Logger
	// Progress, when set, is told about each item as it is done.
	Progress Progress
	// ProgramVersion is recorded in the snapshot.
	ProgramVersion string
	// DryRun walks, compares with the parent and reads what changed as a
	// backup does, but stores nothing: new blobs (not in the index) are
	// counted once each instead of saved, and Snapshot and SnapshotStream
	// return the snapshot they would have saved, unsaved (zero ID). Its
	// summary's DataBlobs, TreeBlobs and DataAdded are what the backup
	// would add; DataStored is 0, since nothing is compressed. OnFile
	// tells which files would be new or changed.
	DryRun bool
	// OnFile, when set, is called for each regular file that is read, with
	// its path and whether the parent snapshot lacked it (new) or had it
	// with other metadata (changed). It is called from many goroutines.
	OnFile func(path string, isNew bool)
	// BeforeCommit, when set, is called after every pack and index file
	// of the backup is stored and right before the snapshot file is (with
	// DryRun, at the same point, though nothing is stored): an
	// error from it leaves the snapshot unsaved (the uploaded data stays
	// and is reused by the next backup) and is returned by Snapshot. The
	// CLI checks its repository lock there.
	BeforeCommit func(ctx context.Context) error
	// BeforeSave, when set, is called after BeforeCommit and right before
	// the snapshot file is stored (never in a dry run), and may fill in
	// fields of sn: the CLI records the machine's inventory there. An
	// error from it leaves the snapshot unsaved, as BeforeCommit's does.
	BeforeSave func(ctx context.Context, sn *snapshot.Snapshot) error
	// AfterWalk, when set, is called by Snapshot once every walked file
	// is read, and names files to add to the snapshot that exist only
	// now: a database backup's label and WAL (graft.go). An error from it
	// leaves the snapshot unsaved. It cannot be combined with DryRun.
	AfterWalk func(ctx context.Context) ([]LateFile, error)
	// SQLite, when set, recognises the SQLite databases among the files
	// read and captures each one consistently: the copy is stored in its
	// place and its -wal, -shm and -journal are left out (sqlite.go). The
	// sqlite package makes it (sqlite.Hook); nil stores every file's
	// bytes as they are.
	SQLite *SQLiteHook
	// SQLiteTempDir is the private folder the copies are made in; ""
	// makes one for each snapshot and removes it after.
	SQLiteTempDir string
}

// Progress receives events during a backup. Methods are called from many
// goroutines and must be cheap.
type Progress interface {
	// Scanned counts an entry found by the walker (bytes for files).
	Scanned(files, bytes int64)
	// Done counts an entry finished (bytes of files, whether read or
	// not).
	Done(files, bytes int64)
	// Error reports a path that was not backed up whole, with its
	// snapshot.FileError kind.
	Error(path, kind string, err error)
}

// DefaultLargeFile is the size from which files use the small-chunk profile.
const DefaultLargeFile = 64 << 20

type nopProgress struct{}

func (nopProgress) Scanned(int64, int64)        {}
func (nopProgress) Done(int64, int64)           {}
func (nopProgress) Error(string, string, error) {}
