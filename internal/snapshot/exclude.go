package snapshot

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Excluded is what a TreeRewriter removed from one snapshot.
type Excluded struct {
	// Paths names each entry removed by absolute path; a directory is
	// named once and everything below it goes with it.
	Paths []string
	// Files, Dirs and Other count the entries removed, those below
	// removed directories included.
	Files, Dirs, Other int64
	// Bytes is the size of the removed files whose content was backed
	// up; a file flagged NotBackedUp has none.
	Bytes int64
}

func (e *Excluded) add(o *Excluded) {
	e.Paths = append(e.Paths, o.Paths...)
	e.Files += o.Files
	e.Dirs += o.Dirs
	e.Other += o.Other
	e.Bytes += o.Bytes
}

func (e *Excluded) count(n *tree.Node) {
	switch n.Type {
	case tree.File:
		e.Files++
		if !NotBackedUp(n) {
			e.Bytes += int64(n.Size)
		}
	case tree.Dir:
		e.Dirs++
	default:
		e.Other++
	}
}

// TreeRewriter writes the trees of snapshots without the entries that
// Match excludes. Unchanged directories keep their tree blobs; a changed
// one gets a new listing, and so does every directory above it up to the
// root. Content blobs are never touched: the data of removed files stays
// in the repository until prune finds no snapshot needs it.
//
// With Store, the new tree blobs are saved; the caller brackets the
// rewrite with r.StartWriting and r.Flush and saves no snapshot before
// Flush returns. Without it (a dry run) only their IDs are computed.
type TreeRewriter struct {
	R *repository.Repository
	// Match reports whether the entry at absolute path p, named name, is
	// to be removed (filter.Matcher.Match).
	Match func(p, name string) bool
	Store bool

	// memo holds the result for each directory by path and listing, so
	// that a directory shared by several snapshots is rewritten once.
	memo map[string]*dirRewrite
}

type dirRewrite struct {
	changed bool
	ids     []id.ID
	ex      Excluded
}

// Rewrite returns the new root tree of sn and what was removed; changed
// is false, and root sn.Tree, when nothing matched.
func (w *TreeRewriter) Rewrite(ctx context.Context, sn *Snapshot) (root []id.ID, ex Excluded, changed bool, err error) {
	if w.memo == nil {
		w.memo = map[string]*dirRewrite{}
	}
	d, err := w.dir(ctx, "/", sn.Tree)
	if err != nil {
		return nil, Excluded{}, false, fmt.Errorf("rewrite snapshot %s: %w", sn.ID.Short(), err)
	}
	if !d.changed {
		return sn.Tree, Excluded{}, false, nil
	}
	ex = d.ex
	ex.Paths = slices.Clone(d.ex.Paths)
	return d.ids, ex, true, nil
}

func (w *TreeRewriter) dir(ctx context.Context, p string, ids []id.ID) (*dirRewrite, error) {
	var key strings.Builder
	key.WriteString(p)
	key.WriteByte(0)
	for _, i := range ids {
		key.Write(i[:])
	}
	if d, ok := w.memo[key.String()]; ok {
		return d, nil
	}
	res := &dirRewrite{}
	var kept []tree.Node
	err := EachNode(ctx, w.R, ids, func(n *tree.Node) error {
		np := JoinName(p, n.Name)
		if w.Match(np, n.Name) {
			res.changed = true
			res.ex.Paths = append(res.ex.Paths, np)
			res.ex.count(n)
			if n.Type == tree.Dir {
				return Walk(ctx, w.R, np, n.Subtree, func(_ string, c *tree.Node) error {
					res.ex.count(c)
					return nil
				})
			}
			return nil
		}
		c := *n
		if n.Type == tree.Dir {
			sub, err := w.dir(ctx, np, n.Subtree)
			if err != nil {
				return err
			}
			if sub.changed {
				res.changed = true
				res.ex.add(&sub.ex)
				c.Subtree = sub.ids
			}
		}
		kept = append(kept, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res.changed {
		b := tree.Builder{Emit: func(blob []byte) (id.ID, error) { return w.emit(ctx, blob) }}
		for i := range kept {
			if err := b.Add(&kept[i]); err != nil {
				return nil, err
			}
		}
		if res.ids, err = b.Finish(); err != nil {
			return nil, err
		}
	}
	w.memo[key.String()] = res
	return res, nil
}

func (w *TreeRewriter) emit(ctx context.Context, blob []byte) (id.ID, error) {
	if !w.Store {
		return w.R.Key().BlobID(blob), nil
	}
	i, _, err := w.R.SaveBlob(ctx, pack.TreeBlob, blob)
	if err != nil {
		return id.ID{}, fmt.Errorf("save tree blob: %w", err)
	}
	return i, nil
}

// Rewritten returns the snapshot that `rewind rewrite` makes of sn: the
// same time, host, paths, tags and summary, with root as its tree and
// Rewrite saying what was removed. The summary's totals lose the removed
// files and their bytes.
func Rewritten(sn *Snapshot, root []id.ID, ex Excluded, excludes []string, version string, now time.Time) *Snapshot {
	rs := *sn
	rs.ID = id.ID{}
	rs.Tree = root
	rs.Paths = slices.Clone(sn.Paths)
	rs.Tags = slices.Clone(sn.Tags)
	rs.Excludes = slices.Clone(sn.Excludes)
	rs.Rewrite = &Rewrite{From: sn.ID, Time: now.UTC(), Excludes: slices.Clone(excludes)}
	rs.TaggedFrom = nil // it names sn's predecessor, not what this replaces
	if version != "" {
		rs.ProgramVersion = version
	}
	if sn.Summary != nil {
		sum := *sn.Summary
		sum.TotalFiles = max(0, sum.TotalFiles-ex.Files)
		sum.TotalBytes = max(0, sum.TotalBytes-ex.Bytes)
		sum.Errors = nil
		for _, fe := range sn.Summary.Errors {
			if !excludedPath(ex.Paths, fe.Path) {
				sum.Errors = append(sum.Errors, fe)
			}
		}
		rs.Summary = &sum
	}
	return &rs
}

// excludedPath reports whether p is one of paths or below one.
func excludedPath(paths []string, p string) bool {
	for _, x := range paths {
		if p == x || strings.HasPrefix(p, x+"/") {
			return true
		}
	}
	return false
}
