package snapshot

import "time"

// SQLiteCapture records one SQLite database a snapshot holds as a
// consistent copy (`rewind sqlite backup`, and `backup`/`watch` when they
// recognise a database by its header): the file stored at Path is the
// copy SQLite's online backup API wrote, never the live file's bytes, and
// the database's -wal, -shm and -journal are not stored beside it.
type SQLiteCapture struct {
	// Path is the database's absolute path, also its path in the snapshot.
	Path string `json:"path"`
	// Mode is the journal mode the header records: "wal" or "rollback".
	Mode     string `json:"mode"`
	PageSize int    `json:"page_size"`
	Pages    int64  `json:"pages"`
	// Method is how the copy was taken: "backup-api".
	Method     string    `json:"method"`
	CapturedAt time.Time `json:"captured_at"`
	// Source is set by backup and watch: the database and its -wal as they
	// were before the copy (sqlite_source.go).
	Source *SQLiteSource `json:"source,omitempty"`
}
