package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// MethodBackupAPI names a copy taken with SQLite's online backup API.
const MethodBackupAPI = "backup-api"

// DefaultTimeout bounds the retries of a busy source when
// Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// CheckLevel is the check Capture runs on a copy before it returns it.
type CheckLevel int

// Check levels: PRAGMA quick_check (the default), PRAGMA integrity_check,
// or none.
const (
	CheckQuick CheckLevel = iota
	CheckFull
	CheckNone
)

// Options tune Capture.
type Options struct {
	// Timeout bounds how long Capture retries while a writer holds the
	// source locked; zero means DefaultTimeout.
	Timeout time.Duration
	// Check is the check run on the copy.
	Check CheckLevel
}

// Copy is a consistent copy of a database in a private temporary file.
type Copy struct {
	// Path is the temporary file; Close removes it.
	Path     string
	Size     int64
	Pages    int64
	PageSize int
	Mode     Mode
	// Method is MethodBackupAPI.
	Method string
	// Took is how long the capture (copy and check) took.
	Took time.Duration
	// At is when the read transaction that made the copy began: the copy
	// shows the database as it was then.
	At time.Time
}

// Close removes the temporary file.
func (c *Copy) Close() error {
	if c == nil || c.Path == "" {
		return nil
	}
	err := os.Remove(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	c.Path = ""
	return err
}

// Sidecar suffixes: SQLite's companion files of a database.
var sidecarSuffixes = []string{"-wal", "-shm", "-journal"}

// SidecarOf returns the database a companion file (-wal, -shm, -journal)
// belongs to, by its name, and whether name is one.
func SidecarOf(name string) (string, bool) {
	for _, s := range sidecarSuffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return strings.TrimSuffix(name, s), true
		}
	}
	return "", false
}

// Capture takes a consistent copy of the live database at src into a new
// file in tmpDir (mode 0600), through SQLite's online backup API, and
// checks the copy. The source is opened read-only; nothing is written to
// it. A source locked by a writer is retried until opt.Timeout. Errors
// are *CaptureError values naming src.
func Capture(ctx context.Context, src string, tmpDir string, opt Options) (*Copy, error) {
	start := time.Now()
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, captureErr(src, ErrNotFound, err, "")
	}
	if _, err := readSourceHeader(abs); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(tmpDir, "rewind-sqlite-*.db")
	if err != nil {
		return nil, fmt.Errorf("sqlite: temporary copy of %s: %w", abs, err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	c := &Copy{Path: tmpPath, Method: MethodBackupAPI}
	ok := false
	defer func() {
		if !ok {
			c.Close()
			os.Remove(tmpPath + "-journal")
		}
	}()
	at, err := backupTo(ctx, abs, tmpPath, opt)
	if err != nil {
		return nil, err
	}
	c.At = at
	if err := checkCopy(ctx, abs, tmpPath, opt.Check); err != nil {
		return nil, err
	}
	if err := c.describe(abs); err != nil {
		return nil, err
	}
	c.Took = time.Since(start)
	ok = true
	return c, nil
}

// Probe reads the header of the database at path, as Capture does first:
// an error is a *CaptureError saying why it cannot be captured (not a
// database, a -wal alone, missing, unreadable). It does not open the
// database with SQLite, so a damaged database passes.
func Probe(path string) (Header, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Header{}, captureErr(path, ErrNotFound, err, "")
	}
	return readSourceHeader(abs)
}

// readSourceHeader opens src and classifies it before SQLite sees it.
func readSourceHeader(abs string) (Header, error) {
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if db, ok := SidecarOf(abs); ok {
				return Header{}, sidecarErr(abs, db, exists(db))
			}
			return Header{}, captureErr(abs, ErrNotFound, err, "")
		}
		return Header{}, osErr(abs, err)
	}
	if !fi.Mode().IsRegular() {
		return Header{}, captureErr(abs, ErrNotDatabase, nil, "not a regular file")
	}
	f, err := os.Open(abs)
	if err != nil {
		return Header{}, osErr(abs, err)
	}
	defer f.Close()
	b := make([]byte, HeaderLen)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Header{}, osErr(abs, err)
	}
	h, perr := ParseHeader(b[:n])
	if perr != nil {
		if db, ok := SidecarOf(abs); ok {
			return Header{}, sidecarErr(abs, db, exists(db))
		}
		if n == 0 {
			return Header{}, captureErr(abs, ErrNotDatabase, nil, "empty file")
		}
		return Header{}, captureErr(abs, ErrNotDatabase, nil, perr.Error())
	}
	if n < HeaderLen {
		return Header{}, captureErr(abs, ErrCorrupt, nil, fmt.Sprintf("truncated: %d bytes, shorter than a header", n))
	}
	return h, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func osErr(abs string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return captureErr(abs, ErrPermission, err, "this user cannot open it")
	case errors.Is(err, fs.ErrNotExist):
		return captureErr(abs, ErrNotFound, err, "")
	}
	return fmt.Errorf("sqlite: %s: %w", abs, err)
}

// fileURI is the SQLite URI of an absolute path, with the characters the
// URI parser reads specially escaped.
func fileURI(abs string, params string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + r.Replace(abs) + "?" + params
}

// backupTo copies src into dst with the backup API in one step, inside
// one read transaction on src, retrying while src is busy.
func backupTo(ctx context.Context, abs, dst string, opt Options) (time.Time, error) {
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	// busy_timeout makes each attempt wait a little inside SQLite, where
	// the lock is noticed as soon as it is released.
	db, err := sql.Open("sqlite", fileURI(abs, "mode=ro&_pragma=busy_timeout(100)"))
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: %s: %w", abs, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return time.Time{}, sqliteErr(abs, err, timeout)
	}
	defer conn.Close()
	var at time.Time
	err = conn.Raw(func(dc any) error {
		bc, ok := dc.(interface {
			NewBackup(string) (*msqlite.Backup, error)
		})
		if !ok {
			return fmt.Errorf("sqlite: driver connection %T has no backup API", dc)
		}
		wait := 10 * time.Millisecond
		for {
			at = time.Now()
			err := copyOnce(bc, dst)
			if err == nil {
				return nil
			}
			if !isBusy(err) {
				return sqliteErr(abs, err, timeout)
			}
			if time.Now().Add(wait).After(deadline) {
				return captureErr(abs, ErrLocked, err, "still locked after "+timeout.String())
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			if wait < 500*time.Millisecond {
				wait *= 2
			}
		}
	})
	return at, err
}

func copyOnce(bc interface {
	NewBackup(string) (*msqlite.Backup, error)
}, dst string) error {
	// The copy is read back at once and removed after: it need not
	// survive a crash, so SQLite neither syncs it nor journals it.
	b, err := bc.NewBackup(fileURI(dst, "mode=rwc&_pragma=synchronous(off)&_pragma=journal_mode(off)"))
	if err != nil {
		return err
	}
	_, err = b.Step(-1)
	ferr := b.Finish()
	if err != nil {
		return err
	}
	return ferr
}

func sqliteCode(err error) int {
	var se *msqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return -1
}

func isBusy(err error) bool {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// sqliteErr classifies what SQLite said about the source.
func sqliteErr(abs string, err error, timeout time.Duration) error {
	code := sqliteCode(err)
	switch code {
	case sqlite3.SQLITE_READONLY_ROLLBACK:
		return captureErr(abs, ErrHotJournal, err, "its -journal must be rolled back before it can be read")
	case sqlite3.SQLITE_READONLY_CANTINIT, sqlite3.SQLITE_READONLY_CANTLOCK, sqlite3.SQLITE_READONLY_DIRECTORY:
		return captureErr(abs, ErrPermission, err, "a WAL database: SQLite must open or create its -shm to read it, and cannot here")
	}
	switch code & 0xff {
	case sqlite3.SQLITE_NOTADB:
		return captureErr(abs, ErrCorrupt, err, "SQLite: file is not a database; encrypted, or damaged past its header")
	case sqlite3.SQLITE_CORRUPT:
		return captureErr(abs, ErrCorrupt, err, "SQLite could not read its pages")
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return captureErr(abs, ErrLocked, err, "still locked after "+timeout.String())
	case sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_AUTH:
		return captureErr(abs, ErrPermission, err, "")
	}
	return fmt.Errorf("sqlite: %s: %w", abs, err)
}

// checkCopy runs the check on the copy, opened immutable: nothing beside
// it is created and nothing in it changes.
func checkCopy(ctx context.Context, abs, copyPath string, level CheckLevel) error {
	pragma := "quick_check"
	switch level {
	case CheckNone:
		return nil
	case CheckFull:
		pragma = "integrity_check"
	}
	db, err := sql.Open("sqlite", fileURI(copyPath, "mode=ro&immutable=1"))
	if err != nil {
		return fmt.Errorf("sqlite: check of the copy of %s: %w", abs, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return captureErr(abs, ErrCorrupt, err, pragma+" of the copy failed")
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return captureErr(abs, ErrCorrupt, err, "")
		}
		if s != "ok" && len(msgs) < 3 {
			msgs = append(msgs, s)
		}
	}
	if err := rows.Err(); err != nil {
		return captureErr(abs, ErrCorrupt, err, pragma+": "+err.Error())
	}
	if len(msgs) > 0 {
		return captureErr(abs, ErrCorrupt, nil, pragma+": "+firstLines(strings.Join(msgs, "\n"), 3))
	}
	return nil
}

// describe fills the copy's size, page size, pages and mode from its
// header.
func (c *Copy) describe(abs string) error {
	f, err := os.Open(c.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	b := make([]byte, HeaderLen)
	if _, err := io.ReadFull(f, b); err != nil {
		return captureErr(abs, ErrCorrupt, err, "the copy has no header")
	}
	h, err := ParseHeader(b)
	if err != nil {
		return captureErr(abs, ErrCorrupt, err, "the copy's header: "+err.Error())
	}
	c.Size = fi.Size()
	c.PageSize = h.PageSize
	c.Mode = h.Mode
	c.Pages = c.Size / int64(h.PageSize)
	return nil
}

// firstLines keeps the first n lines of a check's report, joined with
// "; ", and says how many more there were.
func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) <= n {
		return strings.Join(lines, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(lines[:n], "; "), len(lines)-n)
}
