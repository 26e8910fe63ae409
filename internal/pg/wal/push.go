package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
)

// DefaultCluster is the cluster name used when none is given.
const DefaultCluster = "main"

// maxFileSize bounds what Push reads into memory: the largest segment
// size PostgreSQL allows.
const maxFileSize = 1 << 30

var (
	// ErrOtherCluster: the file comes from another cluster (system
	// identifier) than the WAL stored under the cluster name.
	ErrOtherCluster = errors.New("WAL from another cluster")
	// ErrConflict: a file of the same name is stored with other content.
	ErrConflict = errors.New("stored already with other content")
	// ErrUnknownCluster: a file without a system identifier (history,
	// backup) for a cluster name with no WAL yet, and no data directory
	// to read the identifier from.
	ErrUnknownCluster = errors.New("cannot tell which cluster the file belongs to")
)

// PushOptions change how Push stores a file.
type PushOptions struct {
	// Cluster is the name the WAL is stored under; DefaultCluster if empty.
	Cluster string
	// PGData is the cluster's data directory, read (global/pg_control)
	// for the system identifier of history and backup files. Empty: the
	// working directory, where PostgreSQL runs archive_command.
	PGData string
	// Host is recorded in the index file.
	Host string
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Hook, if set, is called at named points ("blobs-saved" after the
	// blobs are handed to the packer, "flushed" after packs and index are
	// stored, "indexed" after the WAL index file is stored), for crash
	// tests.
	Hook func(point string)
	// SystemID, if not 0, is the cluster's system identifier for files
	// that carry none (history, backup), instead of reading PGData.
	SystemID uint64
	// NoCompact skips the compaction a push runs when the cluster has
	// CompactAfter single-push index files (for measurements).
	NoCompact bool
}

// PushResult tells what Push did.
type PushResult struct {
	Entry    Entry
	Cluster  string
	SystemID uint64
	// Stored is false when the same content was stored already (nothing
	// was written).
	Stored bool
	// BlobsAdded counts the blobs this push added (others were stored).
	BlobsAdded int
	// IndexFile is the WAL index file written (null when not Stored).
	IndexFile id.ID
	// Compacted is what the compaction after the push did, if one ran;
	// CompactErr why it failed (the push itself succeeded: the next push
	// or prune compacts).
	Compacted  *RewriteResult
	CompactErr error
}

// Push stores the file at path (a WAL segment, .partial, .history or
// .backup file) in r under a cluster name and returns only once it is
// durable: its packs, their index and the WAL index file are stored. r is
// open with its index loaded, under the caller's shared lock.
//
// The same content pushed again stores nothing and succeeds; other content
// under a stored name is ErrConflict; a segment whose system identifier
// is not the one of the WAL already stored under the cluster name is
// ErrOtherCluster. In those cases nothing is written.
func Push(ctx context.Context, r *repository.Repository, path string, opt PushOptions) (*PushResult, error) {
	base := filepath.Base(path)
	if _, err := ParseName(base); err != nil {
		return nil, err
	}
	data, mtime, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return PushData(ctx, r, base, data, mtime, opt)
}

// PushData stores data as the WAL file called base (a segment, .partial,
// .history or .backup name), modified at mtime, as Push stores a file.
//
// A .partial may be shorter than a segment: the receiver stores the
// segment it is filling as a growing partial (docs/FORMAT.md §17.6). A
// partial whose stored namesake is a prefix of data supersedes it and is
// stored; one that is a prefix of the stored namesake stores nothing; any
// other is ErrConflict.
func PushData(ctx context.Context, r *repository.Repository, base string, data []byte, mtime time.Time, opt PushOptions) (*PushResult, error) {
	if opt.Cluster == "" {
		opt.Cluster = DefaultCluster
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	hook := func(p string) {
		if opt.Hook != nil {
			opt.Hook(p)
		}
	}
	path := base
	n, err := ParseName(base)
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, larger than any WAL file (1 GiB)", base, len(data))
	}
	e := Entry{Name: base, Kind: n.Kind, Timeline: n.Timeline, Size: int64(len(data)), Modified: mtime.UTC()}

	// Whose file is it?
	var sys uint64
	switch n.Kind {
	case KindSegment, KindPartial:
		h, err := ParseLongHeader(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if int64(h.SegSize) != e.Size && !(n.Kind == KindPartial && e.Size < int64(h.SegSize)) {
			return nil, fmt.Errorf("%s: %w: %d bytes, but its header says segments are %d bytes (a truncated or growing file?)", path, ErrNotWAL, e.Size, h.SegSize)
		}
		e.SegSize, e.SegNo = h.SegSize, n.SegNo(h.SegSize)
		if uint64(n.Seg) >= 0x100000000/uint64(h.SegSize) || uint64(h.PageAddr) != e.SegNo*uint64(h.SegSize) {
			return nil, fmt.Errorf("%s: %w: its first page is at %s, which is not where segment %s starts", path, ErrNotWAL, h.PageAddr, base)
		}
		sys = h.SystemID
	}
	if sys == 0 {
		sys = opt.SystemID
	}
	if sys == 0 {
		dir := opt.PGData
		if dir == "" {
			dir = "."
		}
		if s, err := ControlSystemID(dir); err == nil {
			sys = s
		}
	}

	cat, err := Load(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("read the WAL index: %w", err)
	}
	if len(cat.Unreadable) > 0 {
		u := cat.Unreadable[0]
		return nil, fmt.Errorf("WAL index file wal/%s cannot be read (%w), so whether %s is stored is unknown; nothing stored: run `rewind check`", u.File, u.Err, base)
	}
	cl := cat.Cluster(opt.Cluster)
	switch {
	case cl != nil && sys != 0 && cl.SystemID != sys:
		return nil, fmt.Errorf("%w: %s is from the cluster with system identifier %d, but this repository's WAL of cluster %q is from system identifier %d; nothing stored. Another cluster's archive_command points here: give it its own --cluster name",
			ErrOtherCluster, base, sys, opt.Cluster, cl.SystemID)
	case cl == nil && sys == 0:
		return nil, fmt.Errorf("%w: %s has no system identifier and cluster %q has no WAL stored yet; run wal-push in the data directory (as archive_command does) or give --pgdata; nothing stored",
			ErrUnknownCluster, base, opt.Cluster)
	case cl != nil:
		sys = cl.SystemID
	}
	if n.Kind == KindBackup {
		if cl != nil && cl.SegSize() != 0 {
			e.SegNo = n.SegNo(cl.SegSize())
		}
	}
	e.ID = r.Key().BlobID(data)
	res := &PushResult{Cluster: opt.Cluster, SystemID: sys}
	if cl != nil {
		if old := cl.Find(base); old != nil {
			ext, err := partialExtends(ctx, r, &old.Entry, &e, data)
			switch {
			case err != nil:
				return nil, err
			case ext < 0:
				// A prefix of the stored partial: nothing new.
				res.Entry = old.Entry
				return res, nil
			}
			// ext > 0: a longer partial, stored below, superseding old.
			if ext == 0 && old.ID != e.ID {
				return nil, fmt.Errorf("%s: %w (content %s, stored %s in wal/%s); refusing to overwrite archived WAL: PostgreSQL archived two different files under one name, find out why before going on",
					base, ErrConflict, e.ID.Short(), old.ID.Short(), old.File.Short())
			}
			if ext == 0 {
				res.Entry = old.Entry
				return res, nil
			}
		}
	}

	// Store the bytes, then the index, then the WAL index file.
	r.StartWriting(ctx)
	flushed := false
	defer func() {
		if !flushed {
			_ = r.Flush(ctx)
		}
	}()
	buf := make([]byte, r.Chunker(repository.ProfileDefault).BufferSize())
	err = r.Chunker(repository.ProfileDefault).Split(bytes.NewReader(data), buf, func(chunk []byte) error {
		bid, added, err := r.SaveBlob(ctx, pack.DataBlob, chunk)
		if err != nil {
			return err
		}
		if added {
			res.BlobsAdded++
		}
		e.Blobs = append(e.Blobs, bid)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", base, err)
	}
	hook("blobs-saved")
	flushed = true
	if err := r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("store %s: %w", base, err)
	}
	hook("flushed")
	e.Archived = opt.Now().UTC()
	f := &File{Version: FormatVersion, Cluster: opt.Cluster, SystemID: strconv.FormatUint(sys, 10), Time: e.Archived, Host: opt.Host, Entries: []Entry{e}}
	name, err := r.SaveJSON(ctx, backend.WALFile, f)
	if err != nil {
		return nil, fmt.Errorf("store the WAL index entry of %s: %w", base, err)
	}
	hook("indexed")
	res.Entry, res.Stored, res.IndexFile = e, true, name
	// Keep the number of files a push reads bounded: merge the cluster's
	// files once enough single-push files piled up.
	if cl != nil && cl.Small+1 >= CompactAfter && !opt.NoCompact {
		res.Compacted, res.CompactErr = Compact(ctx, r, opt.Cluster, RewriteOptions{Host: opt.Host, Hook: opt.Hook})
	}
	return res, nil
}

// readFile reads a whole file (at most maxFileSize bytes) and its
// modification time.
func readFile(path string) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > maxFileSize {
		return nil, time.Time{}, fmt.Errorf("%s: %d bytes, larger than any WAL file (1 GiB)", path, fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	return data, fi.ModTime(), nil
}
