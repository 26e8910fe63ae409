package copier

import (
	"context"
	"fmt"
	"sync"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sync/errgroup"
)

// walk reads the source trees below root, one level of directories at a
// time with up to Workers trees read at once, and sends the data blobs
// to copy to out. In ModeByID it stores the tree blobs the destination
// lacks as it reads them. Trees walked before, in this Copy or an earlier
// one, are not walked again.
func (c *Copier) walk(ctx context.Context, ru *run, root []id.ID, out chan<- blobRef) error {
	level := c.unwalked(ru, root)
	for len(level) > 0 {
		var (
			mu   sync.Mutex
			next []id.ID
		)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.opt.Workers)
		for _, t := range level {
			g.Go(func() error {
				subs, err := c.walkTree(gctx, ru, t, out)
				mu.Lock()
				next = append(next, subs...)
				mu.Unlock()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		level = c.unwalked(ru, next)
	}
	return nil
}

// unwalked returns the trees of ids not walked yet, each once, and marks
// them walked.
func (c *Copier) unwalked(ru *run, ids []id.ID) []id.ID {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	var out []id.ID
	for _, t := range ids {
		if _, ok := c.walked[t]; ok {
			continue
		}
		if _, ok := ru.walked[t]; ok {
			continue
		}
		ru.walked[t] = struct{}{}
		out = append(out, t)
	}
	return out
}

// walkTree reads one tree blob (a piece of a directory listing), sends
// its files' data blobs, and returns the tree blobs of its
// subdirectories.
func (c *Copier) walkTree(ctx context.Context, ru *run, t id.ID, out chan<- blobRef) ([]id.ID, error) {
	buf, err := c.treeBlob(ctx, t)
	if err != nil {
		return nil, err
	}
	d, err := tree.NewDecoder(buf)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", t.Short(), err)
	}
	var subs []id.ID
	for {
		n, ok, err := d.Next()
		if err != nil {
			return nil, fmt.Errorf("tree %s: %w", t.Short(), err)
		}
		if !ok {
			break
		}
		if n.Type == tree.File && c.opt.Progress != nil {
			c.opt.Progress.Walked(1, int64(n.Size))
		}
		if err := c.sendChunks(ctx, n.Content, out); err != nil {
			return nil, err
		}
		for _, cl := range n.ContentLists {
			if len(c.unwalked(ru, []id.ID{cl})) == 0 {
				continue
			}
			b, err := c.treeBlob(ctx, cl)
			if err != nil {
				return nil, err
			}
			chunks, err := tree.DecodeContentList(b)
			if err != nil {
				return nil, fmt.Errorf("content list %s of %q: %w", cl.Short(), n.Name, err)
			}
			if err := c.sendChunks(ctx, chunks, out); err != nil {
				return nil, err
			}
		}
		// Every node's subtree is followed, whatever its type, so that
		// nothing a snapshot names is left behind.
		subs = append(subs, n.Subtree...)
	}
	return subs, nil
}

// treeBlob reads a tree blob from the source and, in ModeByID, stores it
// in the destination unless it is there already.
func (c *Copier) treeBlob(ctx context.Context, t id.ID) ([]byte, error) {
	buf, err := c.src.LoadBlob(ctx, pack.TreeBlob, t, nil)
	if err != nil {
		return nil, fmt.Errorf("read from the source: %w", err)
	}
	if c.mode != ModeByID {
		return buf, nil
	}
	ok, err := c.dst.Reserve(t)
	if err != nil || !ok {
		return buf, err
	}
	if err := c.dst.SaveReserved(ctx, pack.TreeBlob, t, buf); err != nil {
		return nil, fmt.Errorf("store tree blob %s: %w", t.Short(), err)
	}
	return buf, nil
}

// sendChunks sends the data blobs of a chunk list that may need copying.
func (c *Copier) sendChunks(ctx context.Context, chunks []tree.Chunk, out chan<- blobRef) error {
	for _, ch := range chunks {
		if ch.IsHole() {
			continue
		}
		if c.mode == ModeByID && c.dst.HasBlob(ch.ID) {
			continue
		}
		if _, ok := c.data[ch.ID]; ok && c.mode == ModeRehash {
			continue
		}
		select {
		case out <- blobRef{id: ch.ID}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}
