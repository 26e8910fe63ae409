package repository

import (
	"sync/atomic"

	"github.com/rewind-backup/rewind/internal/pack"
)

// Stats counts what a repository stored since it was opened.
type Stats struct {
	DataBlobs   atomic.Int64
	TreeBlobs   atomic.Int64
	DataAdded   atomic.Int64 // plain bytes of new data blobs
	TreeAdded   atomic.Int64 // plain bytes of new tree blobs
	BlobsStored atomic.Int64 // sealed bytes of new blobs
	Packs       atomic.Int64
	PackBytes   atomic.Int64 // bytes of stored packs, headers included
}

func (s *Stats) addBlob(t pack.BlobType, plain, sealed int64) {
	if t == pack.TreeBlob {
		s.TreeBlobs.Add(1)
		s.TreeAdded.Add(plain)
	} else {
		s.DataBlobs.Add(1)
		s.DataAdded.Add(plain)
	}
	s.BlobsStored.Add(sealed)
}

func (s *Stats) addPack(size int64) {
	s.Packs.Add(1)
	s.PackBytes.Add(size)
}

// Stats returns the repository's counters.
func (r *Repository) Stats() *Stats { return &r.stats }
