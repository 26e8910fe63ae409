package wal

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
)

// PartialWriter stores a segment that grows (pg receive's growing
// NAME.partial, then the complete NAME) at a cost in proportion to the
// bytes added since its last store, not to the segment's length. It
// writes the same WAL index entries as PushData of the same bytes (name,
// size, ID of the whole content, blobs in order) and keeps PushData's
// rules: a partial is stored only as an extension of the stored one,
// other content under a stored name is ErrConflict, and Push returns only
// once the packs and the WAL index file are stored (docs/FORMAT.md §17).
//
// It keeps, for the segment being written:
//   - the entry ID as a running hash (crypto.BlobHasher): only new bytes
//     are hashed;
//   - the chunks before the last final chunk boundary (chunker.CutFinal)
//     and their blob IDs: a content-defined boundary depends only on the
//     bytes of its chunk, so chunking restarts at the last final boundary
//     and only the chunks after it are cut and saved again;
//   - the WAL index as last read, plus what it stored itself since.
//
// The WAL index is read again only when it may have changed under it: the
// listing of the WAL index files (one List call, no file read) differs
// from the files it knows (those it read plus those it wrote), for
// instance because another push, a compaction or a prune wrote or removed
// one. Then the stored entry of the name is checked as PushData checks it,
// hashing the stored prefix if another writer stored it. A writer that
// fails, or is Reset, reads the index and rehashes from the start at its
// next Push.
//
// Between two Push calls for the same segment the bytes given earlier
// must not change (data only grows); call Reset when that may not hold
// (a new connection). A PartialWriter is not safe for concurrent use.
type PartialWriter struct {
	r   *repository.Repository
	opt PushOptions

	// The WAL index: the catalog as read, the index files known, and
	// the entries stored since the catalog was read.
	cat   *Catalog
	files map[id.ID]bool
	own   map[string]Entry
	sys   uint64
	small int

	// The segment being written.
	seg    string
	hash   *crypto.BlobHasher
	done   int     // end of the final chunks
	blobs  []id.ID // blobs of the final chunks
	stored *Entry  // what this writer stored last for seg
}

// NewPartialWriter returns a PartialWriter storing into r (open with its
// index loaded, under the caller's shared lock) with opt (Extra is not
// used).
func NewPartialWriter(r *repository.Repository, opt PushOptions) *PartialWriter {
	if opt.Cluster == "" {
		opt.Cluster = DefaultCluster
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &PartialWriter{r: r, opt: opt}
}

// Reset forgets everything: the next Push reads the WAL index and hashes
// and chunks its data from the start.
func (w *PartialWriter) Reset() {
	w.cat, w.files, w.own = nil, nil, nil
	w.resetSegment("")
}

func (w *PartialWriter) resetSegment(seg string) {
	w.seg, w.hash, w.done, w.blobs, w.stored = seg, w.r.Key().NewBlobHasher(), 0, nil, nil
}

// Push stores data as the WAL file base, a segment's NAME.partial or the
// complete NAME, modified at mtime, as PushData does.
func (w *PartialWriter) Push(ctx context.Context, base string, data []byte, mtime time.Time) (*PushResult, error) {
	res, err := w.push(ctx, base, data, mtime)
	if err != nil {
		w.Reset()
	}
	return res, err
}

func (w *PartialWriter) push(ctx context.Context, base string, data []byte, mtime time.Time) (*PushResult, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, larger than any WAL file (1 GiB)", base, len(data))
	}
	it, err := newItem(base, data, mtime, w.opt.PGData, w.opt.SystemID)
	if err != nil {
		return nil, err
	}
	if it.e.Kind != KindPartial && it.e.Kind != KindSegment {
		return nil, fmt.Errorf("%s: a PartialWriter stores segments and partial segments only", base)
	}
	hook := func(p string) {
		if w.opt.Hook != nil {
			w.opt.Hook(p)
		}
	}
	seg := strings.TrimSuffix(base, ".partial")
	if w.hash == nil || seg != w.seg || int64(len(data)) < w.hash.Len() {
		w.resetSegment(seg)
	}
	w.hash.Write(data[w.hash.Len():])
	it.e.ID = w.hash.Sum()

	if err := w.refresh(ctx); err != nil {
		return nil, err
	}
	switch {
	case w.sys != 0 && it.sys != 0 && w.sys != it.sys:
		return nil, fmt.Errorf("%w: %s is from the cluster with system identifier %d, but this repository's WAL of cluster %q is from system identifier %d; nothing stored. Another cluster's archive_command points here: give it its own --cluster name",
			ErrOtherCluster, base, it.sys, w.opt.Cluster, w.sys)
	case w.sys == 0 && it.sys == 0:
		return nil, fmt.Errorf("%w: %s has no system identifier and cluster %q has no WAL stored yet; nothing stored", ErrUnknownCluster, base, w.opt.Cluster)
	}
	sys := w.sys
	if sys == 0 {
		sys = it.sys
	}
	res := &PushResult{Cluster: w.opt.Cluster, SystemID: sys}
	if old := w.find(base); old != nil {
		ext := 0
		if w.stored != nil && old.Name == w.stored.Name && old.ID == w.stored.ID && old.Size == w.stored.Size && old.Size <= it.e.Size {
			// This writer stored it from the bytes data starts
			// with: a prefix, known without hashing again.
			if old.Size < it.e.Size {
				ext = 1
			}
		} else if ext, err = partialExtends(ctx, w.r, old, &it.e, data); err != nil {
			return nil, err
		}
		switch {
		case ext < 0:
			res.Entry = *old
			return res, nil
		case ext == 0 && old.ID != it.e.ID:
			return nil, fmt.Errorf("%s: %w (content %s, stored %s); refusing to overwrite archived WAL: PostgreSQL archived two different files under one name, find out why before going on",
				base, ErrConflict, it.e.ID.Short(), old.ID.Short())
		case ext == 0:
			res.Entry = *old
			return res, nil
		}
	}

	// Save the chunks after the last final boundary; commit the new
	// boundary only once the entry is stored.
	w.r.StartWriting(ctx)
	flushed := false
	defer func() {
		if !flushed {
			_ = w.r.Flush(ctx)
		}
	}()
	ch := w.r.Chunker(repository.ProfileDefault)
	done, blobs := w.done, slices.Clip(w.blobs)
	tail, nfinal := false, len(blobs)
	for off := w.done; off < len(data); {
		n, final := ch.CutFinal(data[off:])
		bid, added, err := w.r.SaveBlob(ctx, pack.DataBlob, data[off:off+n])
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", base, err)
		}
		if added {
			res.BlobsAdded++
		}
		blobs = append(blobs, bid)
		off += n
		if final && !tail {
			done, nfinal = off, len(blobs)
		} else {
			tail = true
		}
	}
	it.e.Blobs = blobs
	hook("blobs-saved")
	flushed = true
	if err := w.r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("store %s: %w", base, err)
	}
	hook("flushed")
	now := w.opt.Now().UTC()
	it.e.Archived = now
	f := &File{Version: FormatVersion, Cluster: w.opt.Cluster, SystemID: strconv.FormatUint(sys, 10), Time: now, Host: w.opt.Host, Entries: []Entry{it.e}}
	name, err := w.r.SaveJSON(ctx, backend.WALFile, f)
	if err != nil {
		return nil, fmt.Errorf("store the WAL index entry of %s: %w", base, err)
	}
	hook("indexed")
	w.files[name] = true
	w.own[base] = it.e
	w.sys = sys
	w.small++
	w.done, w.blobs = done, blobs[:nfinal:nfinal]
	e := it.e
	w.stored = &e
	res.Entry, res.Stored, res.IndexFile = it.e, true, name
	if w.small >= CompactAfter && !w.opt.NoCompact {
		res.Compacted, res.CompactErr = Compact(ctx, w.r, w.opt.Cluster, RewriteOptions{Host: w.opt.Host, Hook: w.opt.Hook})
		// The files changed: read the index again next time.
		w.cat = nil
	}
	return res, nil
}

// refresh reads the WAL index unless the listing of its files is the one
// this writer knows.
func (w *PartialWriter) refresh(ctx context.Context) error {
	list, err := w.r.List(ctx, backend.WALFile)
	if err != nil {
		return fmt.Errorf("list the WAL index: %w", err)
	}
	if w.cat != nil && len(list) == len(w.files) {
		same := true
		for _, f := range list {
			if !w.files[f] {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	// Files listed before the read: one written in between shows in the
	// next listing, which then differs again.
	cat, err := Load(ctx, w.r)
	if err != nil {
		return fmt.Errorf("read the WAL index: %w", err)
	}
	if len(cat.Unreadable) > 0 {
		u := cat.Unreadable[0]
		return fmt.Errorf("WAL index file wal/%s cannot be read (%w), so what is stored is unknown; nothing stored: run `rewind check`", u.File, u.Err)
	}
	w.cat, w.own, w.files, w.sys, w.small = cat, map[string]Entry{}, map[id.ID]bool{}, 0, 0
	for _, f := range list {
		w.files[f] = true
	}
	if cl := cat.Cluster(w.opt.Cluster); cl != nil {
		w.sys, w.small = cl.SystemID, cl.Small
	}
	return nil
}

// find returns the entry stored under name: one this writer stored since
// it read the index, else the index's.
func (w *PartialWriter) find(name string) *Entry {
	if e, ok := w.own[name]; ok {
		return &e
	}
	if cl := w.cat.Cluster(w.opt.Cluster); cl != nil {
		if e := cl.Find(name); e != nil {
			return &e.Entry
		}
	}
	return nil
}
