// Package backend defines the storage interface that every repository
// provider implements, and the small helpers shared by providers.
//
// A backend stores named, immutable files of a few kinds (FileType). It knows
// nothing about encryption, packs or snapshots: everything it holds is opaque
// bytes. Providers live in their own packages below this one (local, mem,
// s3); wrappers (retry, limit, readonly, counting, fault) wrap any Backend
// and are themselves a Backend.
//
// # Contract
//
// Every provider must keep these promises, checked by the conformance suite
// in package backend/test:
//
//   - Save is atomic: after it returns nil the whole file is durable and
//     visible under its name; after an error or a crash, readers see either no
//     file or the complete file, never a prefix.
//   - Save never overwrites: saving a name that exists returns an error
//     matching ErrExists unless the content is identical to what is stored.
//   - Read-after-write: a file is visible to Load, Stat and List as soon as
//     Save returns.
//   - Load with length 0 reads to the end of the file. A range that reaches
//     past the end of the file is an error; errors.Is(err, io.ErrUnexpectedEOF).
//   - A missing file yields an error for which errors.Is(err, ErrNotExist)
//     holds, from Load, Stat and Remove.
//   - Errors that retrying cannot fix (not found, permission, bad request)
//     are marked with Permanent so that a retry wrapper gives up at once.
//   - An error about one file names the operation and the file once, as an
//     *OpError ("save snapshots/1a2b…: …"; made with Wrap). Wrappers and
//     callers do not name them again: they call Wrap, which leaves an
//     error that already names them as it is, or add only what they were
//     doing ("delete a condemned pack: remove data/…: …").
//   - All methods are safe for concurrent use.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// FileType names one of the kinds of file a repository stores. Each kind
// lives in its own namespace (folder or key prefix).
type FileType uint8

// The kinds of file. The numbering is internal; the on-disk names are given
// by String and fixed by docs/FORMAT.md.
const (
	ConfigFile FileType = iota + 1
	KeyFile
	PackFile
	IndexFile
	SnapshotFile
	LockFile
	// GCFile holds a prune mark: packs condemned by the first phase of
	// prune and deleted by a later one (docs/FORMAT.md, "Prune").
	GCFile
	// HoldFile puts one snapshot under legal hold (rewind protect).
	HoldFile
	// PolicyFile holds the repository policy signed by the admin key
	// (minimum retention).
	PolicyFile
	// DamageFile marks a snapshot that references lost data, written by
	// rewind repair snapshots.
	DamageFile
	// LabelFile records a labelled point in time (rewind mark).
	LabelFile
	// EventFile records one run of a plan's job (rewind agent, plan run):
	// its result, counts and error, so the record survives the host.
	EventFile
	// InventoryFile holds the inventory of a machine (disks, filesystems,
	// boot, network, packages) recorded with a file backup.
	InventoryFile
	// WALFile is a PostgreSQL WAL index file: the WAL segments, timeline
	// history and backup label files of one cluster stored by
	// rewind pg wal-push, and the blobs holding their bytes.
	WALFile
	// BinlogFile is a MariaDB/MySQL binary log index file: the pieces of
	// one server's binlog files stored by rewind mysql binlog receive, the
	// blobs holding their bytes, and where each transaction ends.
	BinlogFile
	// RunbookFile holds a recovery runbook of a host (rewind runbook):
	// the steps to rebuild it, generated from its inventory, kept in the
	// repository so that it survives the host.
	RunbookFile

	lastFileType = RunbookFile
)

// AllTypes lists every FileType, for tools that walk a whole repository.
var AllTypes = []FileType{ConfigFile, KeyFile, PackFile, IndexFile, SnapshotFile, LockFile, GCFile, HoldFile, PolicyFile, DamageFile, LabelFile, EventFile, InventoryFile, WALFile, BinlogFile, RunbookFile}

// String returns the folder name of the file type ("data" for packs).
func (t FileType) String() string {
	switch t {
	case ConfigFile:
		return "config"
	case KeyFile:
		return "keys"
	case PackFile:
		return "data"
	case IndexFile:
		return "index"
	case SnapshotFile:
		return "snapshots"
	case LockFile:
		return "locks"
	case GCFile:
		return "gc"
	case HoldFile:
		return "holds"
	case PolicyFile:
		return "policy"
	case DamageFile:
		return "damaged"
	case LabelFile:
		return "labels"
	case EventFile:
		return "events"
	case InventoryFile:
		return "inventory"
	case WALFile:
		return "wal"
	case BinlogFile:
		return "binlog"
	case RunbookFile:
		return "runbooks"
	}
	return fmt.Sprintf("filetype(%d)", uint8(t))
}

// Handle names one stored file. The config file has the empty Name.
type Handle struct {
	Type FileType
	Name string
}

func (h Handle) String() string {
	if h.Type == ConfigFile {
		return "config"
	}
	return h.Type.String() + "/" + h.Name
}

// Valid reports whether the handle can name a file: every type but config
// needs a non-empty name made of lowercase hex digits only.
func (h Handle) Valid() error {
	if h.Type == ConfigFile {
		if h.Name != "" {
			return fmt.Errorf("config handle with name %q", h.Name)
		}
		return nil
	}
	if h.Type < ConfigFile || h.Type > lastFileType {
		return fmt.Errorf("invalid file type %d", h.Type)
	}
	if len(h.Name) < 2 || len(h.Name) > 128 {
		return fmt.Errorf("invalid name %q for %s", h.Name, h.Type)
	}
	for _, c := range []byte(h.Name) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("invalid name %q for %s: not lowercase hex", h.Name, h.Type)
		}
	}
	return nil
}

// FileInfo describes one stored file.
type FileInfo struct {
	Name string
	Size int64
}

// RewindReader is the content handed to Save. A retrying wrapper may read it
// more than once, calling Rewind before each new attempt.
type RewindReader interface {
	io.Reader
	// Length is the total number of bytes the reader yields.
	Length() int64
	// Rewind starts the reader again from its first byte.
	Rewind() error
}

// Backend is the storage interface. See the package documentation for the
// contract that every implementation keeps.
type Backend interface {
	// Location returns a human-readable address of the repository, with no
	// secrets in it.
	Location() string

	// Save stores rd under h atomically. It fails with ErrExists when a
	// different file of that name is already stored.
	Save(ctx context.Context, h Handle, rd RewindReader) error

	// Load calls fn with a reader over length bytes of h starting at offset
	// (length 0: to the end). fn must not keep the reader after it returns.
	// If fn returns an error that is not Permanent, a retry wrapper may call
	// it again with a fresh reader.
	Load(ctx context.Context, h Handle, length int, offset int64, fn func(rd io.Reader) error) error

	// Stat returns the size of h.
	Stat(ctx context.Context, h Handle) (FileInfo, error)

	// Remove deletes h. Removing a missing file returns ErrNotExist.
	Remove(ctx context.Context, h Handle) error

	// List calls fn for every file of type t, in no particular order. An
	// error from fn stops the listing and is returned.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error

	// Close releases the backend's resources.
	Close() error
}

// Sentinel errors that every provider maps its own errors to.
var (
	// ErrNotExist means the file is not stored.
	ErrNotExist = errors.New("file does not exist")
	// ErrExists means Save found a different file under the same name.
	ErrExists = errors.New("file already exists")
	// ErrLocked means Remove was refused because the storage keeps the
	// file immutable until a later date (S3 Object Lock retention, see
	// docs/OBJECT-LOCK.md). Removing it again before that date fails the
	// same way, so providers mark it Permanent.
	ErrLocked = errors.New("file is under retention (object lock)")
)

// permanentError marks an error that retrying will not fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix. It returns nil for
// nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	var p *permanentError
	if errors.As(err, &p) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent, or is one of the sentinel errors that never change on retry.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p) || errors.Is(err, ErrNotExist) || errors.Is(err, ErrExists) || errors.Is(err, context.Canceled)
}

// IsNotExist reports whether err means a file is not stored.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// TempFiler is implemented by backends that can take over a finished local
// file instead of copying it (the local backend, whose temporary files lie
// on the repository's filesystem). Writers use it when the backend offers
// it, and Save otherwise; wrappers do not offer it, so retries and fault
// injection always see Save.
type TempFiler interface {
	// TempFile creates an empty temporary file for a future file of type t.
	TempFile(t FileType) (*os.File, error)
	// SaveTemp stores f, a file from TempFile holding the complete content,
	// under h with Save's guarantees, and closes it. On error f is closed
	// and removed.
	SaveTemp(ctx context.Context, h Handle, f *os.File) error
}
