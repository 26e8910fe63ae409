package archiver

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/tree"
)

// dirState is a directory whose listing is being built. Its children are
// filled in by the walker and by file workers; pending counts the children
// not finished plus one hold by the walker while it is still listing.
type dirState struct {
	path    string
	nodes   []tree.Node
	pending atomic.Int64
	parent  *dirState
	slot    int // index of this directory's node in parent.nodes
	// prev is the parent snapshot's node for this directory, nil if new.
	prev   *tree.Node
	onDone func(ids []id.ID) // set for the root only
	// gates are the SQLite databases of this listing that have siblings
	// (-wal, -shm, -journal), by name; set before any entry is dispatched.
	gates map[string]*dbGate
}

// removed marks a node whose entry vanished; it is left out of the tree.
const removed tree.Type = 0

// childDone is called once per finished child, and once by the walker
// when it has listed and dispatched everything. The call that brings
// pending to zero encodes the directory and reports to its parent.
func (a *Archiver) childDone(ctx context.Context, d *dirState) error {
	for d != nil {
		if d.pending.Add(-1) != 0 {
			return nil
		}
		ids, err := a.encodeDir(ctx, d)
		if err != nil {
			return err
		}
		if d.onDone != nil {
			d.onDone(ids)
			return nil
		}
		n := &d.parent.nodes[d.slot]
		n.Subtree = ids
		if n.Type != removed {
			a.countDir(n, d.prev)
		}
		d = d.parent
	}
	return nil
}

func (a *Archiver) countDir(n, prev *tree.Node) {
	switch {
	case prev == nil || prev.Type != tree.Dir:
		a.st.dirsNew.Add(1)
	case slices.Equal(prev.Subtree, n.Subtree) && prev.CTime == n.CTime && tree.SameMeta(prev, n):
		a.st.dirsUnchanged.Add(1)
	default:
		a.st.dirsChanged.Add(1)
	}
}

// encodeDir stores the directory's listing as tree blobs.
func (a *Archiver) encodeDir(ctx context.Context, d *dirState) ([]id.ID, error) {
	b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
		return a.store.saveBlob(ctx, pack.TreeBlob, blob)
	}}
	for i := range d.nodes {
		if d.nodes[i].Type == removed {
			continue
		}
		if err := b.Add(&d.nodes[i]); err != nil {
			return nil, err
		}
	}
	ids, err := b.Finish()
	d.nodes = nil
	return ids, err
}
