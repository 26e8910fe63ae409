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
	// Extra are more segments to store in the same batch (see Push).
	Extra []string
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
	// Extra is what became of PushOptions.Extra: those stored in the
	// batch and those skipped; the ones stored already are not listed.
	Extra []ExtraResult
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
//
// opt.Extra names more segments to store along with path, in the same
// packs and the same WAL index file (archive_command's batch: the segments
// PostgreSQL has ready next). They are stored only if path itself needs
// storing; one that is stored already is left alone, and one that cannot
// be stored (unreadable, not WAL, another cluster's, other content under a
// stored name) is skipped with its reason in PushResult.Extra: the push of
// path does not fail for it, and PostgreSQL's own call for it reports the
// error.
func Push(ctx context.Context, r *repository.Repository, path string, opt PushOptions) (*PushResult, error) {
	it, err := readItem(path, opt.PGData, opt.SystemID)
	if err != nil {
		return nil, err
	}
	return push(ctx, r, it, opt)
}

// PushData stores data as the WAL file called base (a segment, .partial,
// .history or .backup name), modified at mtime, as Push stores a file.
//
// A .partial may be shorter than a segment: the receiver stores the
// segment it is filling as a growing partial (docs/FORMAT.md §17). A
// partial whose stored namesake is a prefix of data supersedes it and is
// stored; one that is a prefix of the stored namesake stores nothing; any
// other is ErrConflict.
func PushData(ctx context.Context, r *repository.Repository, base string, data []byte, mtime time.Time, opt PushOptions) (*PushResult, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, larger than any WAL file (1 GiB)", base, len(data))
	}
	it, err := newItem(base, data, mtime, opt.PGData, opt.SystemID)
	if err != nil {
		return nil, err
	}
	return push(ctx, r, it, opt)
}

func push(ctx context.Context, r *repository.Repository, it *pushItem, opt PushOptions) (*PushResult, error) {
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
	base := it.e.Name

	cat, err := Load(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("read the WAL index: %w", err)
	}
	if len(cat.Unreadable) > 0 {
		u := cat.Unreadable[0]
		return nil, fmt.Errorf("WAL index file wal/%s cannot be read (%w), so whether %s is stored is unknown; nothing stored: run `rewind check`", u.File, u.Err, base)
	}
	cl := cat.Cluster(opt.Cluster)
	sys := it.sys
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
	if it.e.Kind == KindBackup {
		if n, _ := ParseName(base); cl != nil && cl.SegSize() != 0 {
			it.e.SegNo = n.SegNo(cl.SegSize())
		}
	}
	it.e.ID = r.Key().BlobID(it.data)
	res := &PushResult{Cluster: opt.Cluster, SystemID: sys}
	if cl != nil {
		if old := cl.Find(base); old != nil {
			ext, err := partialExtends(ctx, r, &old.Entry, &it.e, it.data)
			switch {
			case err != nil:
				return nil, err
			case ext < 0:
				// A prefix of the stored partial: nothing new.
				res.Entry = old.Entry
				return res, nil
			case ext == 0 && old.ID != it.e.ID:
				return nil, fmt.Errorf("%s: %w (content %s, stored %s in wal/%s); refusing to overwrite archived WAL: PostgreSQL archived two different files under one name, find out why before going on",
					base, ErrConflict, it.e.ID.Short(), old.ID.Short(), old.File.Short())
			case ext == 0:
				res.Entry = old.Entry
				return res, nil
			}
			// ext > 0: a longer partial, stored below, superseding old.
		}
	}

	// The batch: path first, then the extra segments that can go along.
	items := []*pushItem{it}
	seen := map[string]bool{base: true}
	for _, x := range opt.Extra {
		name := filepath.Base(x)
		if seen[name] {
			continue
		}
		seen[name] = true
		if cl != nil && cl.Find(name) != nil {
			// Stored already (PostgreSQL's call for it checks
			// the content).
			continue
		}
		xi, err := readItem(x, opt.PGData, opt.SystemID)
		switch {
		case err != nil:
		case xi.e.Kind != KindSegment:
			err = fmt.Errorf("%s: only whole segments go in a batch", name)
		case xi.sys != sys:
			err = fmt.Errorf("%w: %s is from system identifier %d, not %d", ErrOtherCluster, name, xi.sys, sys)
		case cl != nil && cl.SegSize() != 0 && xi.e.SegSize != cl.SegSize():
			err = fmt.Errorf("%s: segment size %d, the cluster's is %d", name, xi.e.SegSize, cl.SegSize())
		}
		if err != nil {
			res.Extra = append(res.Extra, ExtraResult{Name: name, Err: err})
			continue
		}
		xi.e.ID = r.Key().BlobID(xi.data)
		// Read again when stored: a batch holds one extra segment in
		// memory at a time.
		xi.data, xi.path = nil, x
		items = append(items, xi)
	}

	// Store the bytes, then the index, then one WAL index file for all.
	r.StartWriting(ctx)
	flushed := false
	defer func() {
		if !flushed {
			_ = r.Flush(ctx)
		}
	}()
	buf := make([]byte, r.Chunker(repository.ProfileDefault).BufferSize())
	stored := items[:0]
	for _, it := range items {
		if it.data == nil {
			data, _, err := readFile(it.path)
			if err == nil && r.Key().BlobID(data) != it.e.ID {
				err = fmt.Errorf("%s changed while being stored", it.path)
			}
			if err != nil {
				res.Extra = append(res.Extra, ExtraResult{Name: it.e.Name, Err: err})
				continue
			}
			it.data = data
		}
		err = r.Chunker(repository.ProfileDefault).Split(bytes.NewReader(it.data), buf, func(chunk []byte) error {
			bid, added, err := r.SaveBlob(ctx, pack.DataBlob, chunk)
			if err != nil {
				return err
			}
			if added {
				it.added++
			}
			it.e.Blobs = append(it.e.Blobs, bid)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", it.e.Name, err)
		}
		it.data = nil
		stored = append(stored, it)
	}
	items = stored
	hook("blobs-saved")
	flushed = true
	if err := r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("store %s: %w", base, err)
	}
	hook("flushed")
	now := opt.Now().UTC()
	f := &File{Version: FormatVersion, Cluster: opt.Cluster, SystemID: strconv.FormatUint(sys, 10), Time: now, Host: opt.Host}
	for _, it := range items {
		it.e.Archived = now
		f.Entries = append(f.Entries, it.e)
	}
	name, err := r.SaveJSON(ctx, backend.WALFile, f)
	if err != nil {
		return nil, fmt.Errorf("store the WAL index entry of %s: %w", base, err)
	}
	hook("indexed")
	res.Entry, res.Stored, res.IndexFile, res.BlobsAdded = items[0].e, true, name, items[0].added
	for _, it := range items[1:] {
		res.Extra = append(res.Extra, ExtraResult{Name: it.e.Name, Stored: true, Size: it.e.Size, BlobsAdded: it.added})
	}
	// Keep the number of files a push reads bounded: merge the cluster's
	// files once enough single-push files piled up.
	if cl != nil && cl.Small+1 >= CompactAfter && !opt.NoCompact {
		res.Compacted, res.CompactErr = Compact(ctx, r, opt.Cluster, RewriteOptions{Host: opt.Host, Hook: opt.Hook})
	}
	return res, nil
}

// ExtraResult is what Push did with one of PushOptions.Extra.
type ExtraResult struct {
	Name string
	// Stored: it went into the batch's WAL index file.
	Stored     bool
	Size       int64
	BlobsAdded int
	// Err: why it was skipped.
	Err error
}

// pushItem is one file of a push, read and checked.
type pushItem struct {
	path  string
	data  []byte
	e     Entry
	sys   uint64
	added int
}

// readItem reads the WAL file at path and checks it as newItem does.
func readItem(path, pgdata string, sys uint64) (*pushItem, error) {
	base := filepath.Base(path)
	if _, err := ParseName(base); err != nil {
		return nil, err
	}
	data, mtime, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return newItem(base, data, mtime, pgdata, sys)
}

// newItem checks the WAL file base's name and header; its system
// identifier comes from a segment's header, else sys, else the data
// directory pgdata (the working directory if empty), else 0. A .partial
// may be shorter than a segment (pg receive's growing partial).
func newItem(base string, data []byte, mtime time.Time, pgdata string, sys uint64) (*pushItem, error) {
	path := base
	n, err := ParseName(base)
	if err != nil {
		return nil, err
	}
	it := &pushItem{data: data, e: Entry{Name: base, Kind: n.Kind, Timeline: n.Timeline, Size: int64(len(data)), Modified: mtime.UTC()}}
	switch n.Kind {
	case KindSegment, KindPartial:
		h, err := ParseLongHeader(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if int64(h.SegSize) != it.e.Size && !(n.Kind == KindPartial && it.e.Size < int64(h.SegSize)) {
			return nil, fmt.Errorf("%s: %w: %d bytes, but its header says segments are %d bytes (a truncated or growing file?)", path, ErrNotWAL, it.e.Size, h.SegSize)
		}
		it.e.SegSize, it.e.SegNo = h.SegSize, n.SegNo(h.SegSize)
		if uint64(n.Seg) >= 0x100000000/uint64(h.SegSize) || uint64(h.PageAddr) != it.e.SegNo*uint64(h.SegSize) {
			return nil, fmt.Errorf("%s: %w: its first page is at %s, which is not where segment %s starts", path, ErrNotWAL, h.PageAddr, base)
		}
		it.sys = h.SystemID
	}
	if it.sys == 0 {
		it.sys = sys
	}
	if it.sys == 0 {
		dir := pgdata
		if dir == "" {
			dir = "."
		}
		if s, err := ControlSystemID(dir); err == nil {
			it.sys = s
		}
	}
	return it, nil
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
