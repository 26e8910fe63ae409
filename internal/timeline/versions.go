package timeline

import (
	"context"
	"path"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Change says how a version differs from the one before it.
type Change string

// The changes between versions.
const (
	// First is the oldest version known.
	First Change = "first"
	// Created: the path appeared after a time without it.
	Created Change = "created"
	// Deleted: the path went away; the version is an absent one.
	Deleted Change = "deleted"
	// Content: the file's data, a symlink's target, a device's number,
	// the type, or for a directory anything below it other than
	// metadata changed.
	Content Change = "content"
	// Metadata: only mode, owner, modification time, size or extended
	// attributes changed (of the entry, or of entries below a
	// directory).
	Metadata Change = "metadata"
	// Unknown: the file's content in this version, or in the one before,
	// is not in the snapshot because the backup could not read it, so
	// whether it changed cannot be told.
	Unknown Change = "unknown"
)

// Version is one state of a path that lasted through consecutive
// snapshots.
type Version struct {
	// Node is the path's entry in First; nil while the path was absent.
	Node *tree.Node
	// Change is how it differs from the version before.
	Change Change
	// First and Last are the oldest and newest snapshots that show this
	// version; Snapshots counts those from First to Last.
	First, Last *snapshot.Snapshot
	Snapshots   int
	// Entries counts a directory's direct entries.
	Entries int
	// Labels are the labels whose moment falls in this version's time:
	// from First's time to the next version's.
	Labels []label.Label
}

// Present reports whether the path existed in this version.
func (v *Version) Present() bool { return v.Node != nil }

// Versions folds the snapshots sns (oldest first, each covering p) into
// the distinct versions of p, oldest first. A snapshot in which p is the
// same as in the one before, as far as a restore can tell (content IDs,
// directory trees, type and metadata; access and change times and inode
// numbers do not count), joins the version before. No file data is read:
// directories are compared by their tree IDs, and only trees whose IDs
// differ are read, down to the first difference in content. Each label of
// labels (oldest first) is attached to the version in force at its time;
// labels older than the first snapshot are left out.
func Versions(ctx context.Context, r *repository.Repository, sns []*snapshot.Snapshot, p string, labels []label.Label) ([]Version, error) {
	f := &finder{r: r, memo: map[string]*tree.Node{}}
	c := &comparer{r: r}
	var out []Version
	var last *tree.Node // p in the newest snapshot of the current version
	for _, sn := range sns {
		n, err := f.lookup(ctx, sn, p)
		if err != nil {
			return nil, err
		}
		var ch Change
		switch {
		case len(out) == 0:
			ch = First
		case last == nil && n == nil:
		case last == nil:
			ch = Created
		case n == nil:
			ch = Deleted
		default:
			if ch, err = c.nodes(ctx, last, n); err != nil {
				return nil, err
			}
		}
		last = n
		if ch == "" {
			v := &out[len(out)-1]
			v.Last = sn
			v.Snapshots++
			continue
		}
		v := Version{Node: n, Change: ch, First: sn, Last: sn, Snapshots: 1}
		if n != nil && n.Type == tree.Dir {
			err := snapshot.EachNode(ctx, r, n.Subtree, func(*tree.Node) error {
				v.Entries++
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		out = append(out, v)
	}
	attachLabels(out, labels)
	return out, nil
}

// attachLabels gives each label to the version in force at its time.
func attachLabels(vs []Version, labels []label.Label) {
	for _, l := range labels {
		for i := len(vs) - 1; i >= 0; i-- {
			if !vs[i].First.AsOf().After(l.Time) {
				vs[i].Labels = append(vs[i].Labels, l)
				break
			}
		}
	}
}

// finder looks a path up in many snapshots, remembering each step, so
// that the directories snapshots share are read once.
type finder struct {
	r *repository.Repository
	// memo maps a directory's tree IDs and a name to the entry, nil when
	// the directory has no such entry.
	memo map[string]*tree.Node
}

func treeKey(ids []id.ID) string {
	var b strings.Builder
	for _, i := range ids {
		b.Write(i[:])
	}
	return b.String()
}

// lookup returns p's entry in sn, or nil when sn does not hold p.
func (f *finder) lookup(ctx context.Context, sn *snapshot.Snapshot, p string) (*tree.Node, error) {
	p = path.Clean("/" + p)
	cur := &tree.Node{Name: "/", Type: tree.Dir, Mode: 0o755, Subtree: sn.Tree}
	if p == "/" {
		return cur, nil
	}
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if cur.Type != tree.Dir {
			return nil, nil
		}
		key := treeKey(cur.Subtree) + "/" + part
		n, ok := f.memo[key]
		if !ok {
			err := snapshot.EachNode(ctx, f.r, cur.Subtree, func(c *tree.Node) error {
				if c.Name == part {
					cp := *c
					n = &cp
					return snapshot.ErrStop
				}
				return nil
			})
			if err != nil && err != snapshot.ErrStop {
				return nil, err
			}
			f.memo[key] = n
		}
		if n == nil {
			return nil, nil
		}
		cur = n
	}
	return cur, nil
}

// Compare tells how b, found at the same path as a in a later snapshot,
// differs from a, by the rules of Versions: Content, Metadata, Unknown,
// or "" when a restore of either would give the same result. No file data
// is read.
func Compare(ctx context.Context, r *repository.Repository, a, b *tree.Node) (Change, error) {
	return (&comparer{r: r}).nodes(ctx, a, b)
}

// comparer tells how two entries found at the same path differ.
type comparer struct {
	r *repository.Repository
}

// nodes returns Content, Metadata or "" (the same) for two entries.
func (c *comparer) nodes(ctx context.Context, a, b *tree.Node) (Change, error) {
	if a.Type != b.Type {
		return Content, nil
	}
	switch a.Type {
	case tree.File:
		if snapshot.NotBackedUp(a) || snapshot.NotBackedUp(b) {
			if snapshot.NotBackedUp(a) && snapshot.NotBackedUp(b) && tree.SameMeta(a, b) {
				return "", nil
			}
			return Unknown, nil
		}
		if !slices.Equal(a.Content, b.Content) || !slices.Equal(a.ContentLists, b.ContentLists) || a.Flags != b.Flags {
			return Content, nil
		}
	case tree.Symlink:
		if a.LinkTarget != b.LinkTarget {
			return Content, nil
		}
	case tree.BlockDev, tree.CharDev:
		if a.Rdev != b.Rdev {
			return Content, nil
		}
	case tree.Dir:
		ch, err := c.trees(ctx, a.Subtree, b.Subtree)
		if err != nil || ch == Content {
			return ch, err
		}
		if !tree.SameMeta(a, b) {
			return Metadata, nil
		}
		return ch, nil
	}
	if !tree.SameMeta(a, b) {
		return Metadata, nil
	}
	return "", nil
}

// trees compares two directory listings, reading only those whose IDs
// differ and stopping at the first difference in content.
func (c *comparer) trees(ctx context.Context, a, b []id.ID) (Change, error) {
	if slices.Equal(a, b) {
		return "", nil
	}
	la, err := listing(ctx, c.r, a)
	if err != nil {
		return "", err
	}
	lb, err := listing(ctx, c.r, b)
	if err != nil {
		return "", err
	}
	if len(la) != len(lb) {
		return Content, nil
	}
	var out Change
	for i := range la {
		if la[i].Name != lb[i].Name {
			return Content, nil
		}
		ch, err := c.nodes(ctx, &la[i], &lb[i])
		if err != nil || ch == Content {
			return ch, err
		}
		if ch != "" {
			out = ch
		}
	}
	return out, nil
}

// listing loads a directory's entries, in name order.
func listing(ctx context.Context, r *repository.Repository, ids []id.ID) ([]tree.Node, error) {
	var out []tree.Node
	err := snapshot.EachNode(ctx, r, ids, func(n *tree.Node) error {
		out = append(out, *n)
		return nil
	})
	return out, err
}
