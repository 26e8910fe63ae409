package wal

import (
	"bytes"
	"context"
	"fmt"

	"github.com/rewind-backup/rewind/internal/repository"
)

// Partial segments (docs/FORMAT.md §17, "Partial segments from pg receive"). `pg receive` stores the segment
// it is filling as a growing NAME.partial, again and again, each time
// longer; a longer partial of a name supersedes a shorter one whose bytes
// are its prefix, and the complete segment NAME supersedes them all.

// DataEnd returns the LSN just after the WAL bytes e holds: a segment's
// end, or for a partial its start plus its length.
func (e *Entry) DataEnd() LSN {
	if e.Kind == KindPartial && e.Size < int64(e.SegSize) {
		return e.StartLSN() + LSN(e.Size)
	}
	return e.EndLSN()
}

// partialExtends compares a partial e (bytes data) with the stored entry
// old of the same name. It returns 1 when old is a shorter prefix of data
// (e supersedes it), -1 when data is a prefix of old (nothing new), 0 when
// either is not a partial or both are the same size. Two partials where
// neither is a prefix of the other are ErrConflict.
func partialExtends(ctx context.Context, r *repository.Repository, old, e *Entry, data []byte) (int, error) {
	if old.Kind != KindPartial || e.Kind != KindPartial || old.Size == e.Size {
		return 0, nil
	}
	if old.Size < e.Size {
		if r.Key().BlobID(data[:old.Size]) == old.ID {
			return 1, nil
		}
		return 0, fmt.Errorf("%s: %w: the stored %d bytes (%s) are not a prefix of the %d bytes given; a partial segment may only grow. Two receivers, or a receiver and a server on different histories, write this cluster name: find out why before going on",
			e.Name, ErrConflict, old.Size, old.ID.Short(), e.Size)
	}
	stored, err := Read(ctx, r, old)
	if err != nil {
		return 0, err
	}
	if bytes.Equal(stored[:len(data)], data) {
		return -1, nil
	}
	return 0, fmt.Errorf("%s: %w: the %d bytes given are not a prefix of the stored %d bytes (%s); refusing a partial segment that is not an extension",
		e.Name, ErrConflict, e.Size, old.Size, old.ID.Short())
}

// supersedes tells whether stored entry e, of the same name as old,
// replaces old when merging: a longer partial replaces a shorter one.
// (Push stored it only after checking that old is its prefix.)
func supersedes(e, old *Entry) bool {
	return e.Kind == KindPartial && old.Kind == KindPartial && e.Size > old.Size
}

// StreamEnd returns where the WAL stored for the cluster ends: the newest
// timeline with a stored segment or partial, and the LSN after the last
// byte stored on it. ok is false when no segment is stored.
func (cl *Cluster) StreamEnd() (tli uint32, end LSN, ok bool) {
	for _, e := range cl.entries {
		if e.Kind != KindSegment && e.Kind != KindPartial {
			continue
		}
		d := e.DataEnd()
		if !ok || e.Timeline > tli || e.Timeline == tli && d > end {
			tli, end, ok = e.Timeline, d, true
		}
	}
	return tli, end, ok
}

// ForFetch returns the stored file that answers PostgreSQL's request for
// name (restore_command's %f), and the size to pad it to with zeros (0:
// serve as stored). A stored file of that name answers. For a segment
// that is not stored, the longest stored partial of it answers, padded to
// the segment size: recovery replays its records and stops where they
// end, which is how it reaches the newest streamed commit.
func (cl *Cluster) ForFetch(name string) (e *StoredEntry, padTo int64) {
	if e := cl.entries[name]; e != nil {
		return e, 0
	}
	n, err := ParseName(name)
	if err != nil || n.Kind != KindSegment {
		return nil, 0
	}
	p := cl.entries[name+".partial"]
	if p == nil {
		return nil, 0
	}
	return p, int64(p.SegSize)
}
