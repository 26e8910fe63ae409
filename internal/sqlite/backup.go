package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Tag is the tag of every snapshot `rewind sqlite backup` stores.
const Tag = "sqlite"

// BackupOptions tune Backup.
type BackupOptions struct {
	// Archiver's options apply to the snapshot (host, tags, parent,
	// hooks); Backup adds the tag sqlite.
	Archiver archiver.Options
	// Capture tunes each capture.
	Capture Options
	// TempDir is where the copies are made, one at a time; "" is a new
	// private folder in the system's temporary folder, removed after.
	TempDir string
}

// BackupResult is what Backup did.
type BackupResult struct {
	Snapshot *snapshot.Snapshot
	Archiver *archiver.Archiver
	// Failed are the databases not stored, each with why (a
	// *CaptureError for what SQLite or the file refused).
	Failed []Failure
}

// Failure is a database Backup could not capture.
type Failure struct {
	Path string
	Err  error
}

// Backup captures each database at paths (Capture) and stores the copies
// in one snapshot, each at its database's absolute path with the
// database's metadata, recording them in the snapshot's SQLite field.
// A database that cannot be captured is left out and named in Failed and
// in the summary's errors; when none can be, no snapshot is stored and
// the error wraps archiver.ErrNoFileCopied and each capture's error.
func Backup(ctx context.Context, r *repository.Repository, paths []string, opt BackupOptions) (*BackupResult, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no database given")
	}
	tmp := opt.TempDir
	if tmp == "" {
		d, err := os.MkdirTemp("", "rewind-sqlite-")
		if err != nil {
			return nil, fmt.Errorf("a folder for the copies: %w", err)
		}
		defer os.RemoveAll(d)
		tmp = d
	}
	res := &BackupResult{}
	var mu sync.Mutex
	var captures []snapshot.SQLiteCapture
	var files []archiver.FileCopy
	seen := map[string]bool{}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		// A link is followed: the database is stored where it is.
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		files = append(files, archiver.FileCopy{Path: abs, Open: func(ctx context.Context) (io.ReadCloser, error) {
			c, err := Capture(ctx, abs, tmp, opt.Capture)
			if err != nil {
				mu.Lock()
				res.Failed = append(res.Failed, Failure{Path: abs, Err: err})
				mu.Unlock()
				// The summary names the path already.
				var ce *CaptureError
				if errors.As(err, &ce) {
					return nil, reasonError{ce}
				}
				return nil, err
			}
			f, err := os.Open(c.Path)
			if err != nil {
				c.Close()
				return nil, err
			}
			if opt.Archiver.Logger != nil {
				opt.Archiver.Logger.Info("sqlite database captured", "path", abs, "mode", c.Mode, "bytes", c.Size, "took", c.Took)
			}
			mu.Lock()
			captures = append(captures, c.Record(abs))
			mu.Unlock()
			return &copyReader{File: f, c: c}, nil
		}})
	}
	ao := opt.Archiver
	ao.Tags = appendTag(ao.Tags, Tag)
	before := ao.BeforeSave
	ao.BeforeSave = func(ctx context.Context, sn *snapshot.Snapshot) error {
		slices.SortFunc(captures, func(a, b snapshot.SQLiteCapture) int {
			return strings.Compare(a.Path, b.Path)
		})
		sn.SQLite = captures
		if before != nil {
			return before(ctx, sn)
		}
		return nil
	}
	a, err := archiver.New(r, ao)
	if err != nil {
		return nil, err
	}
	res.Archiver = a
	sn, err := a.SnapshotFiles(ctx, files)
	if err != nil {
		return res, err
	}
	res.Snapshot = sn
	return res, nil
}

// Record is what a snapshot records of the copy of the database at path.
func (c *Copy) Record(path string) snapshot.SQLiteCapture {
	return snapshot.SQLiteCapture{Path: path, Mode: string(c.Mode), PageSize: c.PageSize, Pages: c.Pages,
		Method: c.Method, CapturedAt: c.At.UTC()}
}

// reasonError is a CaptureError that prints without its path.
type reasonError struct{ *CaptureError }

func (e reasonError) Error() string { return e.Reason() }
func (e reasonError) Unwrap() error { return e.CaptureError }

// copyReader reads a copy and removes it when closed.
type copyReader struct {
	*os.File
	c *Copy
}

func (r *copyReader) Close() error {
	err := r.File.Close()
	if cerr := r.c.Close(); err == nil {
		err = cerr
	}
	return err
}

func appendTag(tags []string, t string) []string {
	if slices.Contains(tags, t) {
		return tags
	}
	return append(append([]string(nil), tags...), t)
}
