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
	// WALSalts, for a version read in place from a WAL database, are the
	// salts (hex) of the -wal generation it was read with: the next
	// capture reads only the pages that can differ while they are the
	// same (Delta; docs/SQLITE.md, "Reading only the changed pages").
	WALSalts string `json:"wal_salts,omitempty"`
	// Delta, for a version read in place with a parent capture of the
	// same database, says whether it was built from the parent's
	// version and the pages the -wal names, or why it was read whole.
	Delta *SQLiteDelta `json:"delta,omitempty"`
}

// SQLiteDelta records how a capture used its parent's version.
type SQLiteDelta struct {
	// Used is true when only the pages named by the -wal were read;
	// Fallback otherwise says why the version was read whole.
	Used     bool   `json:"used"`
	Fallback string `json:"fallback,omitempty"`
	// ChangedPages counts the pages the -wal named; BytesRead were read
	// (chunks meeting them, and a grown tail), BytesReused taken from
	// the parent's chunks.
	ChangedPages int64 `json:"changed_pages,omitempty"`
	BytesRead    int64 `json:"bytes_read,omitempty"`
	BytesReused  int64 `json:"bytes_reused,omitempty"`
}
