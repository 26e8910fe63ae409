package restorer

import "log/slog"

// Options control a restore.
type Options struct {
	// Target is the directory to restore into. It is created if missing.
	Target string
	// Include and Exclude are patterns as for backup excludes, matched
	// against paths inside the snapshot. With Include set, only matching
	// entries (and everything below matching directories) are restored.
	Include []string
	Exclude []string
	// Overwrite allows writing into a target that has content. Files that
	// already hold the right bytes are left alone; others are rewritten.
	Overwrite bool
	// Sync makes each file durable (fsync) once written, by the worker
	// that wrote it, so that writeback runs beside the restore instead of
	// after it. A database restore wants it: PostgreSQL fsyncs the whole
	// data directory when it starts from a base backup, and finds the
	// files clean.
	Sync bool
	// Delete, for each directory restored whole (not narrowed by
	// Include), removes what the target holds there that the snapshot
	// does not list, so that the directory ends up as the snapshot has it.
	// Excluded paths, sockets and other filesystems are left alone
	// (makeway.go).
	Delete bool
	// TargetIsEntry says that Target stands for the restored directory
	// itself, in place (rollback): it takes that directory's own
	// metadata, and with Overwrite a non-directory at Target is replaced.
	// A target the restore creates always takes the directory's
	// metadata.
	TargetIsEntry bool
	// Absolute restores the entry at the snapshot path given to Restore
	// at that absolute path below Target, as a whole-snapshot restore
	// places it: the directories above it are created with their own
	// metadata, and hold only it (RestoreParts).
	Absolute bool
	// Skip names snapshot paths that the restore leaves alone, with what
	// is below them, as if excluded: another part of the restore answers
	// them (RestoreParts).
	Skip []string
	// Verify re-reads every written file and checks it against the
	// snapshot.
	Verify bool
	// Owner restores owners and groups (needs root).
	Owner   bool
	Workers int
	Logger  *slog.Logger
	// Progress, when set, is told about every finished file.
	Progress func(files, bytes int64)
	// DryRun goes through the restore's decisions without changing the
	// target: nothing is created, written, removed or given metadata, and
	// Stats count what a restore with the same options would do
	// (dryrun.go). Plan, when set, is told about every decision.
	DryRun bool
	Plan   func(Planned)

	// targetReady: RestoreParts has checked and made the target, which
	// earlier parts write into. targetAbsent: in a dry run, it found no
	// target, so every part starts from nothing.
	targetReady  bool
	targetAbsent bool
}

// Stats is what a restore did.
type Stats struct {
	Files        int64 `json:"files_restored"`
	Dirs         int64 `json:"dirs_restored"`
	Other        int64 `json:"other_restored"`
	Bytes        int64 `json:"bytes_restored"`
	FilesSkipped int64 `json:"files_unchanged"`
	Verified     int64 `json:"files_verified"`
	// Removed counts entries of the target removed to make way for the
	// snapshot's (Overwrite: an entry of another type in the way) or
	// because the snapshot lacks them (Delete).
	Removed int64 `json:"entries_removed"`
	// DurationSeconds is how long the restore took; BytesPerSecond is
	// Bytes over it.
	DurationSeconds float64 `json:"duration_seconds"`
	BytesPerSecond  float64 `json:"bytes_per_second"`
	// DryRun: nothing was changed; the counts are what a restore would do.
	DryRun bool        `json:"dry_run,omitempty"`
	Errors []FileError `json:"errors,omitempty"`
	// NotBackedUp names files of the snapshot that were not restored
	// because the backup could not read their content.
	NotBackedUp []FileError `json:"not_backed_up,omitempty"`
	// Warnings lists entries restored without some metadata that the
	// target filesystem refused to hold (fs.ErrNotKept).
	Warnings []FileError `json:"warnings,omitempty"`
}

// FileError names a path that could not be restored whole.
type FileError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}
