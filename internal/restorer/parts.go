package restorer

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// A restore assembled from several snapshots (restore --at T without a
// path): each part is one path of the host, restored from the snapshot
// that answers it, at its absolute path below the target.

// Part is one path of a restore assembled from several snapshots.
type Part struct {
	Snapshot *snapshot.Snapshot
	// Path is the absolute path restored from Snapshot.
	Path string
	// Skip are paths below Path that other parts restore.
	Skip []string
}

// RestoreParts restores every part into opt.Target, one restorer run per
// part, each at its absolute path below the target (Options.Absolute)
// and leaving alone the paths that other parts answer. The target is
// checked once, before the first part, as Restore checks it: without
// Overwrite it must be empty or missing, and what earlier parts wrote is
// not held against later ones. Parts run deepest first, so that a
// directory that encloses another part gets its own metadata last.
//
// done is told about every part when it has run, with its Stats (nil when
// it could not start) and error. A part whose path the snapshot does not
// hold (it was absent then) is reported with an error that matches
// snapshot.ErrPathNotFound and does not fail the whole. The returned
// error is the first error of a part that stops the restore (the target
// is refused, the disk is full, the repository fails), or else the
// gravest of the parts' errors: an entry that could not be restored
// before files that were not backed up (ErrIncomplete).
func RestoreParts(ctx context.Context, r *repository.Repository, opt Options, parts []Part, done func(Part, *Stats, error)) error {
	first, err := New(r, opt)
	if err != nil {
		return err
	}
	created, err := first.prepareTarget()
	if err != nil {
		return err
	}
	if opt.targetAbsent = created && opt.DryRun; opt.targetAbsent {
		first.plan(Planned{Action: ActNew, Path: "/", Type: tree.Dir.String()})
	}
	opt.targetReady, opt.Absolute = true, true
	order := slices.Clone(parts)
	slices.SortStableFunc(order, func(a, b Part) int {
		return strings.Count(path.Clean(b.Path), "/") - strings.Count(path.Clean(a.Path), "/")
	})
	var worst error
	for _, p := range order {
		o := opt
		o.Skip = append(slices.Clone(opt.Skip), p.Skip...)
		rs, err := New(r, o)
		if err != nil {
			return err
		}
		st, err := rs.Restore(ctx, p.Snapshot, p.Path)
		done(p, st, err)
		switch {
		case err == nil:
		case st == nil && errors.Is(err, snapshot.ErrPathNotFound):
		case st == nil || ctx.Err() != nil || errors.Is(err, ErrDiskFull):
			return err
		case errors.Is(err, ErrIncomplete):
			if worst == nil {
				worst = err
			}
		default:
			if worst == nil || errors.Is(worst, ErrIncomplete) {
				worst = err
			}
		}
	}
	return worst
}

// leftAlone reports whether the restore leaves the snapshot path p (named
// name) alone: excluded, or answered by another part.
func (r *Restorer) leftAlone(p, name string) bool {
	return r.excl.Match(p, name) || r.skip[p]
}

// ancestors returns the nodes of the directories above the snapshot path
// p, from the root's child down to p's parent.
func ancestors(ctx context.Context, repo *repository.Repository, sn *snapshot.Snapshot, p string) ([]*tree.Node, error) {
	var out []*tree.Node
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		n, err := snapshot.Lookup(ctx, repo, sn, d)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	slices.Reverse(out)
	return out, nil
}

// along restores n, the entry at the snapshot path base, at that path
// below top: the directories above it (above, from the top down) are
// created as the snapshot has them when something is restored into them,
// and take their metadata once n is done, but nothing else of theirs is
// restored or deleted. Walker only.
func (r *Restorer) along(ctx context.Context, top *rdir, above []*tree.Node, base string, n *tree.Node) error {
	top.pending.Store(1)
	chain := []*rdir{top}
	d, dir, all := top, "/", r.incl == nil
	release := func() error {
		for i := len(chain) - 1; i >= 0; i-- {
			if err := r.childDone(chain[i]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, a := range above {
		p := path.Join(dir, a.Name)
		if a.Type != tree.Dir || r.leftAlone(p, a.Name) {
			return release()
		}
		all = all || r.incl.Match(p, a.Name)
		c := *a
		child := &rdir{parent: d, name: a.Name, path: p, rel: path.Join(d.rel, a.Name), node: &c, fd: -1}
		d.pending.Add(1)
		child.pending.Store(1)
		chain = append(chain, child)
		d, dir = child, p
	}
	if err := r.entry(ctx, d, path.Dir(base), n, all); err != nil {
		return err
	}
	return release()
}
