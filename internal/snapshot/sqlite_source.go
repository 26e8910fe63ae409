package snapshot

// SQLiteSource is what backup or watch saw of a database just before it
// captured it: the database file and its -wal. The next backup keeps the
// stored copy, unread, while both still look the same (docs/SQLITE.md,
// "Inside backup and watch"); `rewind sqlite backup` does not record it.
type SQLiteSource struct {
	DB SQLiteFileStat `json:"database"`
	// WAL is nil when the database had no -wal.
	WAL *SQLiteFileStat `json:"wal,omitempty"`
}

// SQLiteFileStat is a file's size and times, as lstat gives them.
type SQLiteFileStat struct {
	Size  int64 `json:"size"`
	MTime int64 `json:"mtime_ns"`
	CTime int64 `json:"ctime_ns"`
}
