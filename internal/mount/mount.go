// Package mount presents a repository as a read-only FUSE filesystem
// (rewind mount): every snapshot by host, ID and tag, the newest of each
// host, and at/, where a directory named by a moment shows everything a
// host backed up as it was then, each path from the newest snapshot that
// covers it (timeline.AtEvery). docs/MOUNT.md describes the tree.
//
// Nothing is read before it is looked at: the snapshot list is read once
// when the mount starts, a snapshot's trees when a directory of it is
// first listed or looked up in, a file's content when it is read, one data
// blob at a time through a cache of decrypted blobs bounded by bytes, with
// readahead of the blobs that follow a sequential read.
package mount

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// TimeLayout names a snapshot's directory (TIME-ID) and a moment in at/,
// in local time.
const TimeLayout = "2006-01-02T15:04:05"

// Options shape a mount.
type Options struct {
	// Snapshots are the snapshots shown, any order.
	Snapshots []*snapshot.Snapshot
	// Host is the host whose history at/ shows.
	Host string
	// Moment resolves a directory name in at/ to the moment it names (the
	// end of the span it covers); false when the name is not a moment.
	Moment func(name string) (time.Time, bool)
	// At, when not zero, makes the root the at/ view of that moment.
	At time.Time
	// CacheBytes bounds the cache of decrypted data blobs; Readahead is
	// how far ahead of a sequential read blobs are loaded.
	CacheBytes int64
	Readahead  uint64
	// Warn reports a read that failed (the reader gets EIO).
	Warn func(msg string)
}

// Mount is the filesystem of one repository.
type Mount struct {
	ctx       context.Context
	r         *repository.Repository
	opt       Options
	cache     *blobCache
	trees     *blobCache
	treeSlots chan struct{}
	readahead uint64
	prefetch  chan struct{}
	timeout   time.Duration
	nextIno   atomic.Uint64

	mu    sync.Mutex
	links map[linkKey]uint64
	ats   map[time.Time]*atView
}

// linkKey names one inode of a backed-up filesystem within one snapshot:
// its hard links share it, and so share an inode number in the mount.
type linkKey struct {
	snap       id.ID
	dev, inode uint64
}

// New makes the filesystem's root. ctx bounds the loads it starts.
func New(ctx context.Context, r *repository.Repository, opt Options) (fs.InodeEmbedder, *Mount) {
	if opt.CacheBytes <= 0 {
		opt.CacheBytes = 64 << 20
	}
	if opt.Readahead == 0 {
		opt.Readahead = 16 << 20
	}
	m := &Mount{
		ctx: ctx, r: r, opt: opt,
		readahead: opt.Readahead,
		prefetch:  make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0))),
		treeSlots: make(chan struct{}, 8),
		timeout:   time.Hour,
		links:     map[linkKey]uint64{},
		ats:       map[time.Time]*atView{},
	}
	m.nextIno.Store(1)
	m.cache = newBlobCache(opt.CacheBytes, true, func(ctx context.Context, i id.ID, buf []byte) ([]byte, error) {
		return r.LoadBlob(ctx, pack.DataBlob, i, buf)
	})
	// Tree blobs are not recycled: the nodes decoded from one may keep
	// slices of it.
	m.trees = newBlobCache(64<<20, false, func(ctx context.Context, i id.ID, _ []byte) ([]byte, error) {
		return r.LoadBlob(ctx, pack.TreeBlob, i, nil)
	})
	if !opt.At.IsZero() {
		v := m.atView(opt.At)
		return v.root(), m
	}
	return m.top(), m
}

// CachedBytes is what the blob cache holds now.
func (m *Mount) CachedBytes() int64 { return m.cache.bytes() }

func (m *Mount) newIno() uint64 { return m.nextIno.Add(1) }

// inoOf is the inode number of a stored node: shared by the hard links of
// one snapshot, new for anything else.
func (m *Mount) inoOf(snap id.ID, n *tree.Node) uint64 {
	if n.Type == tree.Dir || n.Links < 2 || n.Inode == 0 {
		return m.newIno()
	}
	k := linkKey{snap, n.DeviceID, n.Inode}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := m.links[k]; ok {
		return i
	}
	i := m.newIno()
	m.links[k] = i
	return i
}

func (m *Mount) warn(what string, err error) { m.warnf("%s: %v", what, err) }

func (m *Mount) warnf(format string, args ...any) {
	if m.opt.Warn != nil {
		m.opt.Warn(fmt.Sprintf(format, args...))
	}
}
