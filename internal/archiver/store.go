package archiver

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
)

// blobStore is where a backup puts its blobs: the repository, or for a
// dry run (Options.DryRun) a counter that stores nothing. The archiver
// computes every chunk and listing the same way for both; only this last
// step differs.
type blobStore interface {
	start(ctx context.Context)
	flush(ctx context.Context) error
	// reserve claims a blob that is neither stored nor claimed yet; the
	// caller then saves it with saveReserved.
	reserve(i id.ID) (bool, error)
	saveReserved(ctx context.Context, t pack.BlobType, i id.ID, data []byte) error
	// saveBlob stores data unless it is stored or claimed already.
	saveBlob(ctx context.Context, t pack.BlobType, data []byte) (id.ID, error)
	stats() repoStats
}

// repoStore stores blobs in the repository.
type repoStore struct{ r *repository.Repository }

func (s repoStore) start(ctx context.Context)       { s.r.StartWriting(ctx) }
func (s repoStore) flush(ctx context.Context) error { return s.r.Flush(ctx) }
func (s repoStore) reserve(i id.ID) (bool, error)   { return s.r.Reserve(i) }
func (s repoStore) stats() repoStats                { return snapshotRepoStats(s.r) }
func (s repoStore) saveReserved(ctx context.Context, t pack.BlobType, i id.ID, data []byte) error {
	return s.r.SaveReserved(ctx, t, i, data)
}
func (s repoStore) saveBlob(ctx context.Context, t pack.BlobType, data []byte) (id.ID, error) {
	i, _, err := s.r.SaveBlob(ctx, t, data)
	return i, err
}

// dryStore counts the blobs a backup would add: those the index does not
// hold, each once. It writes nothing.
type dryStore struct {
	r                    *repository.Repository
	mu                   sync.Mutex
	seen                 map[id.ID]struct{}
	dataBlobs, treeBlobs atomic.Int64
	dataAdded, treeAdded atomic.Int64 // plain bytes
}

func newDryStore(r *repository.Repository) *dryStore {
	return &dryStore{r: r, seen: make(map[id.ID]struct{})}
}

func (s *dryStore) start(context.Context)       {}
func (s *dryStore) flush(context.Context) error { return nil }

func (s *dryStore) reserve(i id.ID) (bool, error) {
	if s.r.HasBlob(i) {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.seen[i]; dup {
		return false, nil
	}
	s.seen[i] = struct{}{}
	return true, nil
}

func (s *dryStore) saveReserved(_ context.Context, t pack.BlobType, _ id.ID, data []byte) error {
	if t == pack.TreeBlob {
		s.treeBlobs.Add(1)
		s.treeAdded.Add(int64(len(data)))
	} else {
		s.dataBlobs.Add(1)
		s.dataAdded.Add(int64(len(data)))
	}
	return nil
}

func (s *dryStore) saveBlob(ctx context.Context, t pack.BlobType, data []byte) (id.ID, error) {
	i := s.r.Key().BlobID(data)
	ok, err := s.reserve(i)
	if ok && err == nil {
		err = s.saveReserved(ctx, t, i, data)
	}
	return i, err
}

// stats: a dry run compresses and seals nothing, so stored stays 0.
func (s *dryStore) stats() repoStats {
	return repoStats{dataBlobs: s.dataBlobs.Load(), treeBlobs: s.treeBlobs.Load(), added: s.dataAdded.Load() + s.treeAdded.Load()}
}
