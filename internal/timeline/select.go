package timeline

import (
	"context"
	"errors"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Covers reports whether sn backed up the absolute path p: p is one of
// its paths or lies below one. A snapshot that does not cover p says
// nothing about it, while one that covers p and lacks it shows that p was
// absent.
func Covers(sn *snapshot.Snapshot, p string) bool {
	for _, sp := range sn.Paths {
		sp = path.Clean("/" + sp)
		if sp == "/" || p == sp || strings.HasPrefix(p, sp+"/") {
			return true
		}
	}
	return false
}

// Select returns the snapshots of sns that pass f and, unless p is "",
// cover p, in the order of the moments they show (AsOf), oldest first.
func Select(sns []*snapshot.Snapshot, f snapshot.Filter, p string) []*snapshot.Snapshot {
	var out []*snapshot.Snapshot
	for _, sn := range sns {
		if f.Match(sn) && (p == "" || Covers(sn, p)) {
			out = append(out, sn)
		}
	}
	snapshot.SortByAsOf(out)
	return out
}

// At returns the snapshot of sns (in AsOf order, as Select returns them)
// that shows things as they were at t: the newest whose capture had ended
// by t (AsOf at or before t). A snapshot whose capture was still running
// at t is never chosen, since it may hold writes made after t. At returns
// nil when no capture had ended by t.
func At(sns []*snapshot.Snapshot, t time.Time) *snapshot.Snapshot {
	i := sort.Search(len(sns), func(i int) bool { return sns[i].AsOf().After(t) })
	if i == 0 {
		return nil
	}
	return sns[i-1]
}

// Lookup is snapshot.Lookup, except that a path the snapshot does not
// hold gives a nil node and no error: for a snapshot that covers p, p was
// absent then.
func Lookup(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, p string) (*tree.Node, error) {
	n, err := snapshot.Lookup(ctx, r, sn, p)
	if errors.Is(err, snapshot.ErrPathNotFound) {
		return nil, nil
	}
	return n, err
}
