package copier

import (
	"context"
	"fmt"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/tree"
)

// In ModeRehash the destination names blobs with its own ID key, so every
// tree that names a blob is written again with the new IDs, bottom up:
// a listing's blob ID depends on the IDs of everything below it. The data
// blobs are all stored (and mapped) before this starts.

// rewriteDir returns the destination IDs of the tree blobs ids of one
// directory.
func (c *Copier) rewriteDir(ctx context.Context, ru *run, ids []id.ID) ([]id.ID, error) {
	out := make([]id.ID, len(ids))
	for i, s := range ids {
		d, err := c.rewriteTree(ctx, ru, s)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// treeFor returns the destination ID of a source tree blob already
// rewritten.
func (c *Copier) treeFor(ru *run, s id.ID) (id.ID, bool) {
	if d, ok := c.trees[s]; ok {
		return d, true
	}
	d, ok := ru.trees[s]
	return d, ok
}

// rewriteTree stores the listing of source tree blob s with destination
// IDs and returns its ID. A listing stays one blob: IDs have the same
// size in both repositories, so it does not grow.
func (c *Copier) rewriteTree(ctx context.Context, ru *run, s id.ID) (id.ID, error) {
	if d, ok := c.treeFor(ru, s); ok {
		return d, nil
	}
	buf, err := c.src.LoadBlob(ctx, pack.TreeBlob, s, nil)
	if err != nil {
		return id.ID{}, fmt.Errorf("read from the source: %w", err)
	}
	dec, err := tree.NewDecoder(buf)
	if err != nil {
		return id.ID{}, fmt.Errorf("tree %s: %w", s.Short(), err)
	}
	out := make([]byte, 1, len(buf))
	out[0] = tree.KindNodes
	for {
		n, ok, err := dec.Next()
		if err != nil {
			return id.ID{}, fmt.Errorf("tree %s: %w", s.Short(), err)
		}
		if !ok {
			break
		}
		if err := c.mapChunks(ru, n.Content); err != nil {
			return id.ID{}, fmt.Errorf("tree %s, %q: %w", s.Short(), n.Name, err)
		}
		for i, cl := range n.ContentLists {
			if n.ContentLists[i], err = c.rewriteContentList(ctx, ru, cl); err != nil {
				return id.ID{}, fmt.Errorf("tree %s, %q: %w", s.Short(), n.Name, err)
			}
		}
		if len(n.Subtree) > 0 {
			if n.Subtree, err = c.rewriteDir(ctx, ru, n.Subtree); err != nil {
				return id.ID{}, err
			}
		}
		out = tree.AppendNode(out, &n)
	}
	d, _, err := c.dst.SaveBlob(ctx, pack.TreeBlob, out)
	if err != nil {
		return id.ID{}, fmt.Errorf("store tree blob: %w", err)
	}
	ru.trees[s] = d
	return d, nil
}

// rewriteContentList stores a long file's chunk list piece with
// destination IDs and returns its ID.
func (c *Copier) rewriteContentList(ctx context.Context, ru *run, s id.ID) (id.ID, error) {
	if d, ok := c.treeFor(ru, s); ok {
		return d, nil
	}
	buf, err := c.src.LoadBlob(ctx, pack.TreeBlob, s, nil)
	if err != nil {
		return id.ID{}, fmt.Errorf("read from the source: %w", err)
	}
	chunks, err := tree.DecodeContentList(buf)
	if err != nil {
		return id.ID{}, fmt.Errorf("content list %s: %w", s.Short(), err)
	}
	if err := c.mapChunks(ru, chunks); err != nil {
		return id.ID{}, fmt.Errorf("content list %s: %w", s.Short(), err)
	}
	d, _, err := c.dst.SaveBlob(ctx, pack.TreeBlob, tree.EncodeContentList(chunks))
	if err != nil {
		return id.ID{}, fmt.Errorf("store content list: %w", err)
	}
	ru.trees[s] = d
	return d, nil
}

// mapChunks replaces the source IDs of chunks by the destination's.
func (c *Copier) mapChunks(ru *run, chunks []tree.Chunk) error {
	for i := range chunks {
		if chunks[i].IsHole() {
			continue
		}
		d, ok := c.dataFor(ru, chunks[i].ID)
		if !ok {
			return fmt.Errorf("%w: data blob %s was not copied", errInternal, chunks[i].ID.Short())
		}
		chunks[i].ID = d
	}
	return nil
}
