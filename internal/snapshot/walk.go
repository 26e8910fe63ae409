package snapshot

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
)

// EachNode calls fn for every node of the directory stored in the tree
// blobs ids, in name order, loading one blob at a time.
func EachNode(ctx context.Context, r *repository.Repository, ids []id.ID, fn func(n *tree.Node) error) error {
	var buf []byte
	for _, i := range ids {
		var err error
		buf, err = r.LoadBlob(ctx, pack.TreeBlob, i, buf)
		if err != nil {
			return err
		}
		d, err := tree.NewDecoder(buf)
		if err != nil {
			return fmt.Errorf("tree %s: %w", i.Short(), err)
		}
		for {
			n, ok, err := d.Next()
			if err != nil {
				return fmt.Errorf("tree %s: %w", i.Short(), err)
			}
			if !ok {
				break
			}
			if err := fn(&n); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrStop can be returned by a callback to end a walk early without error.
var ErrStop = fmt.Errorf("stop walk")

// Lookup finds the node at an absolute path inside a snapshot. The path "/"
// returns a synthetic directory node for the root. Each directory's names
// go through fs.Listing on the way, so that an entry restore, dump, ls
// and find refuse cannot be reached by its path either.
func Lookup(ctx context.Context, r *repository.Repository, sn *Snapshot, p string) (*tree.Node, error) {
	p = path.Clean("/" + p)
	cur := &tree.Node{Name: "/", Type: tree.Dir, Mode: 0o755, Subtree: sn.Tree}
	if p == "/" {
		return cur, nil
	}
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if cur.Type != tree.Dir {
			return nil, fmt.Errorf("%w: %q: %q is not a directory in snapshot %s", ErrPathNotFound, p, cur.Name, sn.ID.Short())
		}
		var found *tree.Node
		var names fs.Listing
		err := EachNode(ctx, r, cur.Subtree, func(n *tree.Node) error {
			if names.Check(n.Name) != nil {
				return nil
			}
			if n.Name == part {
				c := *n
				found = &c
				return ErrStop
			}
			return nil
		})
		if err != nil && err != ErrStop {
			return nil, err
		}
		if found == nil {
			return nil, fmt.Errorf("%w: %q is not in snapshot %s", ErrPathNotFound, p, sn.ID.Short())
		}
		cur = found
	}
	return cur, nil
}

// Walk visits every node below dir depth-first in name order, calling fn
// with the node's path (joined with "/", starting at prefix). If fn
// returns ErrSkipDir for a directory, its children are not visited.
func Walk(ctx context.Context, r *repository.Repository, prefix string, dir []id.ID, fn func(p string, n *tree.Node) error) error {
	return EachNode(ctx, r, dir, func(n *tree.Node) error {
		p := path.Join(prefix, n.Name)
		err := fn(p, n)
		if err == ErrSkipDir {
			return nil
		}
		if err != nil {
			return err
		}
		if n.Type == tree.Dir {
			return Walk(ctx, r, p, n.Subtree, fn)
		}
		return nil
	})
}

// ErrSkipDir tells Walk not to descend into a directory.
var ErrSkipDir = fmt.Errorf("skip this directory")

// LoadContent returns a file node's full chunk list, reading content-list
// blobs when the list is stored outside the node.
func LoadContent(ctx context.Context, r *repository.Repository, n *tree.Node) ([]tree.Chunk, error) {
	if len(n.ContentLists) == 0 {
		return n.Content, nil
	}
	var out []tree.Chunk
	var buf []byte
	for _, i := range n.ContentLists {
		var err error
		buf, err = r.LoadBlob(ctx, pack.TreeBlob, i, buf)
		if err != nil {
			return nil, err
		}
		cs, err := tree.DecodeContentList(buf)
		if err != nil {
			return nil, fmt.Errorf("content list %s of %q: %w", i.Short(), n.Name, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}
