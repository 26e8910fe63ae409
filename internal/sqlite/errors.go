package sqlite

import (
	"errors"
	"fmt"
)

// Kinds of capture failure; test for them with errors.Is on the error
// Capture returns, which is a *CaptureError naming the file.
var (
	// ErrNotFound: the path does not exist.
	ErrNotFound = errors.New("no such file")
	// ErrNotDatabase: the file has no SQLite 3 header. An encrypted
	// database (SQLCipher and the like) looks the same: random bytes.
	ErrNotDatabase = errors.New("file is not a database")
	// ErrCorrupt: the header is SQLite's but SQLite cannot read the
	// database, or the copy failed its check.
	ErrCorrupt = errors.New("database disk image is malformed")
	// ErrSidecar: the path is a database's -wal, -shm or -journal, which
	// is not a database on its own.
	ErrSidecar = errors.New("not a database but a database's companion file")
	// ErrPermission: the file (or, for a WAL database, its -shm) cannot
	// be opened by this user.
	ErrPermission = errors.New("permission denied")
	// ErrLocked: a writer held the database locked past Options.Timeout.
	ErrLocked = errors.New("database is locked")
	// ErrHotJournal: a rollback-journal database whose last write was
	// interrupted (its -journal is hot): reading it needs the rollback,
	// which is a write, and Capture never writes.
	ErrHotJournal = errors.New("an interrupted write left a hot journal")
)

// CaptureError is why one database could not be captured: Kind is one of
// the Err values above, Detail what SQLite or the system said, Hint what
// to do about it.
type CaptureError struct {
	Path   string
	Kind   error
	Detail string
	Hint   string
	Err    error
}

func (e *CaptureError) Error() string { return e.Path + ": " + e.Reason() }

// Reason is the error without the path: what is wrong and what to do.
func (e *CaptureError) Reason() string {
	s := e.Kind.Error()
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Unwrap returns the kind and the underlying error, so that errors.Is
// matches both.
func (e *CaptureError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func captureErr(path string, kind error, err error, detail string) *CaptureError {
	e := &CaptureError{Path: path, Kind: kind, Err: err, Detail: detail}
	switch kind {
	case ErrNotFound:
		e.Hint = "check the path"
	case ErrNotDatabase:
		e.Hint = "it is not a SQLite 3 database, or it is encrypted (SQLCipher); back it up as a plain file with rewind backup"
	case ErrCorrupt:
		e.Hint = "SQLite cannot read it whole; repair it (sqlite3 DB .recover) or restore an earlier version; the live file was not changed"
	case ErrPermission:
		e.Hint = "run as a user who can read it (and, for a WAL database, write its -shm and its directory)"
	case ErrLocked:
		e.Hint = "a writer kept it locked; retry later or raise the timeout"
	case ErrHotJournal:
		e.Hint = "open it once with sqlite3 or start its application, which rolls the write back, then back it up again (rewind never writes to a database)"
	}
	if e.Detail == "" && err != nil && kind != ErrNotFound {
		e.Detail = err.Error()
	}
	return e
}

func sidecarErr(path, db string, dbExists bool) *CaptureError {
	e := &CaptureError{Path: path, Kind: ErrSidecar}
	if dbExists {
		e.Detail = "it belongs to " + db
		e.Hint = fmt.Sprintf("back up %s instead; its capture includes what this file holds", db)
	} else {
		e.Detail = "its database " + db + " does not exist"
		e.Hint = "without its database it holds no database; find or restore " + db + " and back that up (rewind backup stores this file as a plain file)"
	}
	return e
}
