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
	// Verify re-reads every written file and checks it against the
	// snapshot.
	Verify bool
	// Owner restores owners and groups (needs root).
	Owner   bool
	Workers int
	Logger  *slog.Logger
	// Progress, when set, is told about every finished file.
	Progress func(files, bytes int64)
}

// Stats is what a restore did.
type Stats struct {
	Files        int64       `json:"files_restored"`
	Dirs         int64       `json:"dirs_restored"`
	Other        int64       `json:"other_restored"`
	Bytes        int64       `json:"bytes_restored"`
	FilesSkipped int64       `json:"files_unchanged"`
	Verified     int64       `json:"files_verified"`
	Errors       []FileError `json:"errors,omitempty"`
	// Warnings lists entries restored without some metadata that the
	// target filesystem refused to hold (fs.ErrNotKept).
	Warnings []FileError `json:"warnings,omitempty"`
}

// FileError names a path that could not be restored whole.
type FileError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}
