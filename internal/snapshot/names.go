package snapshot

import (
	"context"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
)

// WalkNames visits every node below dir depth-first in stored order, as
// Walk does, for the readers that show or write what they find (ls, find,
// dump). Each listing's names go through fs.Listing, the check restore
// applies, and paths are joined without cleaning, so that no entry is
// shown under a path that is not its own.
//
// fn gets the node's path, prefix joined with its name ("" as prefix
// gives paths relative to dir), and refused, non-nil for an entry whose
// name fs.Listing refuses. Such an entry's path ends in its Go-quoted
// name ("/srv/\"..\""), which cannot be taken for another path, and the
// walk does not go below it. If fn returns ErrSkipDir for a directory,
// its children are not visited.
func WalkNames(ctx context.Context, r *repository.Repository, prefix string, dir []id.ID, fn func(p string, n *tree.Node, refused error) error) error {
	var names fs.Listing
	return EachNode(ctx, r, dir, func(n *tree.Node) error {
		if refused := names.Check(n.Name); refused != nil {
			return fn(JoinName(prefix, strconv.Quote(n.Name)), n, refused)
		}
		p := JoinName(prefix, n.Name)
		err := fn(p, n, nil)
		if err == ErrSkipDir {
			return nil
		}
		if err != nil {
			return err
		}
		if n.Type == tree.Dir {
			return WalkNames(ctx, r, p, n.Subtree, fn)
		}
		return nil
	})
}

// JoinName appends a name to a path without cleaning either: "" and "/"
// as prefix give "name" and "/name".
func JoinName(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case strings.HasSuffix(prefix, "/"):
		return prefix + name
	}
	return prefix + "/" + name
}
