package sqlite

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// The values of backup's and watch's --sqlite.
const (
	// ModeAuto captures every database found among the files read.
	ModeAuto = "auto"
	// ModeRaw stores databases' bytes as they are, as any file's.
	ModeRaw = "raw"
)

// Hook returns what `rewind backup` and `rewind watch` give the archiver
// (archiver.Options.SQLite) for --sqlite mode: nil with ModeRaw; with
// ModeAuto, each database found among the files read is read in place
// inside a read transaction (ReadInPlace), waiting up to wait for a
// writer's lock (0: opt.Timeout), or where that fails copied with Capture
// (opt), whose backup API retries a locked database up to opt.Timeout; a
// file SQLite cannot read (ErrCorrupt, ErrNotDatabase)
// is stored as plain bytes, and any other failure (ErrLocked past
// opt.Timeout, ErrPermission) leaves the database out, reported as a file
// not backed up.
func Hook(mode string, opt Options, wait time.Duration) *archiver.SQLiteHook {
	if mode == ModeRaw {
		return nil
	}
	return &archiver.SQLiteHook{
		IsDatabase: IsDatabase,
		Capture: func(ctx context.Context, src, tmpDir string) (archiver.SQLiteVersion, error) {
			// In place first: no copy, no check. Anything unexpected
			// there is left to the backup API's copy.
			if wait <= 0 {
				wait = opt.Timeout
			}
			if ip, err := ReadInPlace(ctx, src, wait); err == nil {
				rec := snapshot.SQLiteCapture{Mode: string(ip.Mode), PageSize: ip.PageSize, Pages: ip.Pages, Method: MethodReadTx, WALSalts: ip.SaltsHex()}
				return archiver.SQLiteVersion{Data: ip, Size: ip.Size, Record: rec, Close: func() { ip.Close() }, Delta: ip.ChangedSince}, nil
			}
			c, err := Capture(ctx, src, tmpDir, opt)
			if err != nil {
				return archiver.SQLiteVersion{}, err
			}
			f, err := os.Open(c.Path)
			if err != nil {
				c.Close()
				return archiver.SQLiteVersion{}, err
			}
			rec := snapshot.SQLiteCapture{Mode: string(c.Mode), PageSize: c.PageSize, Pages: c.Pages, Method: c.Method}
			return archiver.SQLiteVersion{Data: f, Size: c.Size, Record: rec, Close: func() { f.Close(); c.Close() }}, nil
		},
		Unreadable: func(err error) bool {
			return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotDatabase)
		},
	}
}

// NoSettle returns, for `rewind watch` in --sqlite mode, the test of a
// file being written that need not be waited for (watch.Options.NoSettle):
// a database, by its header, or a -wal, -shm or -journal, whose capture
// through the backup API is consistent whatever writes are under way.
// Nil with ModeRaw.
func NoSettle(mode string) func(p string) bool {
	if mode == ModeRaw {
		return nil
	}
	return func(p string) bool {
		if _, ok := SidecarOf(p[strings.LastIndexByte(p, '/')+1:]); ok {
			return true
		}
		f, err := os.Open(p)
		if err != nil {
			return false
		}
		defer f.Close()
		h := make([]byte, HeaderLen)
		n, _ := f.ReadAt(h, 0)
		return n == HeaderLen && IsDatabase(h)
	}
}
