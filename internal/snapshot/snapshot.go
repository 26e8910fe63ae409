// Package snapshot stores and finds snapshots, and walks the trees they
// point to.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sync/errgroup"
)

// Snapshot records one backup. Tree names the root directory's tree blobs;
// the root holds the absolute paths that were backed up.
type Snapshot struct {
	Time           time.Time `json:"time"`
	Parent         *id.ID    `json:"parent,omitempty"`
	Tree           []id.ID   `json:"tree"`
	Paths          []string  `json:"paths"`
	Hostname       string    `json:"hostname"`
	Username       string    `json:"username,omitempty"`
	UID            uint32    `json:"uid"`
	GID            uint32    `json:"gid"`
	Tags           []string  `json:"tags,omitempty"`
	Excludes       []string  `json:"excludes,omitempty"`
	ProgramVersion string    `json:"program_version"`
	Summary        *Summary  `json:"summary,omitempty"`
	// Original is set on a snapshot written by `rewind repair snapshots`:
	// the damaged snapshot it was repaired from, which is kept.
	Original *id.ID `json:"original,omitempty"`
	// CopiedFrom is set on a snapshot written by `rewind copy`: the
	// snapshot of the source repository it is a copy of.
	CopiedFrom *id.ID `json:"copied_from,omitempty"`
	// Rewrite is set on a snapshot written by `rewind rewrite`: what was
	// removed from which snapshot. It is not Original, which `repair
	// snapshots` uses to find its own repairs.
	Rewrite *Rewrite `json:"rewrite,omitempty"`
	// TaggedFrom is set on a snapshot written by `rewind tag`: the
	// snapshot it replaced, which differed only in its tags (and in this
	// field).
	TaggedFrom *id.ID `json:"tagged_from,omitempty"`
	// Inventory names the inventory file (inventory/ folder) that
	// records the machine at this backup; several snapshots share one
	// while the machine does not change (internal/inventory).
	Inventory *id.ID `json:"inventory,omitempty"`
	// Postgres is set on a PostgreSQL base backup (`rewind pg backup`):
	// where its WAL starts and stops, and the cluster it is of.
	Postgres *PGInfo `json:"postgres,omitempty"`
	// SQLite lists the SQLite databases the snapshot holds as consistent
	// copies (docs/SQLITE.md), one per database path.
	SQLite []SQLiteCapture `json:"sqlite,omitempty"`
	// MySQL is set on a MariaDB/MySQL backup (`rewind mysql backup`):
	// how it was taken and its consistent point (binlog position, GTID).
	MySQL *MySQLInfo `json:"mysql,omitempty"`
	// Image is set on a snapshot of a block device or disk image file.
	Image *ImageInfo `json:"image,omitempty"`

	// ID is the snapshot's file name; it is not stored inside the file.
	ID id.ID `json:"-"`
}

// Rewrite records what `rewind rewrite` did to make a snapshot.
type Rewrite struct {
	// From is the snapshot rewritten; it may have been removed since.
	From id.ID `json:"from"`
	// Time is when the rewrite ran.
	Time time.Time `json:"time"`
	// Excludes are the patterns whose matches were removed.
	Excludes []string `json:"excludes"`
}

// Summary is what a backup did. Its JSON form is part of the documented
// --json output (docs/JSON.md).
type Summary struct {
	BackupStart    time.Time `json:"backup_start"`
	BackupEnd      time.Time `json:"backup_end"`
	FilesNew       int64     `json:"files_new"`
	FilesChanged   int64     `json:"files_changed"`
	FilesUnchanged int64     `json:"files_unchanged"`
	DirsNew        int64     `json:"dirs_new"`
	DirsChanged    int64     `json:"dirs_changed"`
	DirsUnchanged  int64     `json:"dirs_unchanged"`
	// TotalFiles and TotalBytes cover every file in the snapshot.
	TotalFiles int64 `json:"total_files_processed"`
	TotalBytes int64 `json:"total_bytes_processed"`
	// BytesRead is the file content actually read from disk.
	BytesRead int64 `json:"bytes_read"`
	// FilesReread counts files that changed while they were read and were
	// read again; BytesReread is what those extra reads read (it is part
	// of BytesRead). FilesTorn counts the files still changing on their
	// last read, kept as read and flagged changed-during-backup.
	FilesReread int64 `json:"files_reread"`
	BytesReread int64 `json:"bytes_reread"`
	FilesTorn   int64 `json:"files_changed_during_backup"`
	// DataAdded is the plain size of new blobs; DataStored what they take
	// in packs after compression and encryption.
	DataBlobs  int64 `json:"data_blobs"`
	TreeBlobs  int64 `json:"tree_blobs"`
	DataAdded  int64 `json:"data_added"`
	DataStored int64 `json:"data_added_packed"`
	// SQLiteCaptured counts the SQLite databases this backup captured
	// through SQLite's backup API (not those kept from the parent).
	SQLiteCaptured int64 `json:"sqlite_captured,omitempty"`
	// Errors lists files that could not be read or were skipped.
	Errors []FileError `json:"errors,omitempty"`
}

// FileError names a path that was not backed up whole.
type FileError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
	// Kind is KindFile, KindDir or KindOther; empty in snapshots made
	// before it was recorded.
	Kind string `json:"kind,omitempty"`
}

// Kinds of FileError: a regular file, a directory (its listing, or its
// own metadata), or anything else (symlink, device, FIFO, or an entry
// whose type could not be read).
const (
	KindFile  = "file"
	KindDir   = "directory"
	KindOther = "other"
)

// ErrorKind is the FileError kind of an entry of type t.
func ErrorKind(t tree.Type) string {
	switch t {
	case tree.File:
		return KindFile
	case tree.Dir:
		return KindDir
	}
	return KindOther
}

// Errors returned when a snapshot reference does not resolve.
var (
	ErrNotFound  = errors.New("no matching snapshot")
	ErrAmbiguous = errors.New("snapshot ID prefix is ambiguous")
	// ErrPathNotFound: a snapshot does not hold the path asked for.
	ErrPathNotFound = errors.New("no such path")
)

// Save stores sn and sets its ID.
func Save(ctx context.Context, r *repository.Repository, sn *Snapshot) error {
	i, err := r.SaveJSON(ctx, backend.SnapshotFile, sn)
	if err != nil {
		return err
	}
	sn.ID = i
	return nil
}

// Load reads one snapshot.
func Load(ctx context.Context, r *repository.Repository, i id.ID) (*Snapshot, error) {
	var sn Snapshot
	if err := r.LoadJSON(ctx, backend.SnapshotFile, i, &sn); err != nil {
		return nil, err
	}
	if len(sn.Tree) == 0 {
		return nil, &repository.CorruptError{Op: "decode", Object: "snapshots/" + i.String(), Err: errors.New("snapshot has no tree")}
	}
	sn.ID = i
	return &sn, nil
}

// List loads every snapshot, oldest first. A snapshot that fails to load
// is reported through onError and skipped, so one damaged file does not
// hide the others; with a nil onError the first error is returned.
func List(ctx context.Context, r *repository.Repository, onError func(id.ID, error)) ([]*Snapshot, error) {
	ids, err := r.List(ctx, backend.SnapshotFile)
	if err != nil {
		return nil, err
	}
	out := make([]*Snapshot, len(ids))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 4)
	for n, i := range ids {
		g.Go(func() error {
			sn, err := Load(gctx, r, i)
			if err != nil {
				if onError == nil {
					return err
				}
				mu.Lock()
				onError(i, err)
				mu.Unlock()
				return nil
			}
			out[n] = sn
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out = slices.DeleteFunc(out, func(s *Snapshot) bool { return s == nil })
	SortByTime(out)
	return out, nil
}

// AsOf is the moment the snapshot shows its paths as they were: when its
// capture ended (Summary.BackupEnd). A capture takes time, and every byte
// it holds was read at or before its end, so a snapshot answers "as it was
// at T" only for T at or after AsOf; a snapshot whose capture was still
// running at T may hold writes made after T. Snapshots without a summary
// fall back to Time.
func (sn *Snapshot) AsOf() time.Time {
	if sn.Summary != nil && !sn.Summary.BackupEnd.IsZero() && sn.Summary.BackupEnd.After(sn.Time) {
		return sn.Summary.BackupEnd
	}
	return sn.Time
}

// SortByAsOf orders snapshots by AsOf, oldest first, by ID on equal times.
func SortByAsOf(sns []*Snapshot) {
	slices.SortFunc(sns, func(a, b *Snapshot) int {
		if c := a.AsOf().Compare(b.AsOf()); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
}

// SortByTime orders snapshots oldest first, by ID on equal times.
func SortByTime(sns []*Snapshot) {
	slices.SortFunc(sns, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
}

// Filter selects snapshots by host, tags and paths. Empty fields match all.
type Filter struct {
	Hosts []string
	// Tags: a snapshot matches if it has every tag of any one entry; an
	// entry may list several tags separated by commas.
	Tags  []string
	Paths []string
}

// Match reports whether sn passes the filter.
func (f Filter) Match(sn *Snapshot) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, sn.Hostname) {
		return false
	}
	if len(f.Tags) > 0 {
		ok := false
		for _, group := range f.Tags {
			all := true
			for _, t := range strings.Split(group, ",") {
				if t != "" && !slices.Contains(sn.Tags, t) {
					all = false
					break
				}
			}
			if all {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, p := range f.Paths {
		if !slices.Contains(sn.Paths, p) {
			return false
		}
	}
	return true
}

// Find resolves a reference: "latest" (the newest snapshot passing f), a
// full ID, or a unique ID prefix.
func Find(ctx context.Context, r *repository.Repository, ref string, f Filter) (*Snapshot, error) {
	if ref == "latest" {
		sns, err := List(ctx, r, func(id.ID, error) {})
		if err != nil {
			return nil, err
		}
		for i := len(sns) - 1; i >= 0; i-- {
			if f.Match(sns[i]) {
				return sns[i], nil
			}
		}
		return nil, fmt.Errorf("%w: the repository has no snapshot to call latest", ErrNotFound)
	}
	if len(ref) < 1 || len(ref) > 2*id.Size {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	ids, err := r.List(ctx, backend.SnapshotFile)
	if err != nil {
		return nil, err
	}
	var match []id.ID
	for _, i := range ids {
		if strings.HasPrefix(i.String(), strings.ToLower(ref)) {
			match = append(match, i)
		}
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("%w: %q", ErrNotFound, ref)
	case 1:
		return Load(ctx, r, match[0])
	}
	return nil, fmt.Errorf("%w: %q matches %d snapshots; give more digits", ErrAmbiguous, ref, len(match)) // plural: ambiguous means 2 or more
}

// SplitRef splits "SNAPSHOT:PATH" into its parts. PATH is "" when absent.
func SplitRef(s string) (ref, path string) {
	ref, path, _ = strings.Cut(s, ":")
	return ref, path
}
