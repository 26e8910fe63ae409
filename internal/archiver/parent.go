package archiver

import (
	"context"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
)

// parentDir walks the parent snapshot's listing of one directory in step
// with the walk, one tree blob at a time. Names must be asked for in
// increasing byte order, which is the order both listings are sorted in.
type parentDir struct {
	repo *repository.Repository
	ids  []id.ID
	next int // index in ids of the next blob to load
	dec  *tree.Decoder
	cur  *tree.Node
	buf  []byte
	err  error
}

func newParentDir(r *repository.Repository, ids []id.ID) *parentDir {
	return &parentDir{repo: r, ids: ids}
}

// advance loads the next node into cur; cur is nil at the end.
func (p *parentDir) advance(ctx context.Context) {
	p.cur = nil
	for p.err == nil {
		if p.dec != nil {
			n, ok, err := p.dec.Next()
			if err != nil {
				p.err = err
				return
			}
			if ok {
				p.cur = &n
				return
			}
			p.dec = nil
		}
		if p.next >= len(p.ids) {
			return
		}
		p.buf, p.err = p.repo.LoadBlob(ctx, pack.TreeBlob, p.ids[p.next], p.buf)
		p.next++
		if p.err == nil {
			// The decoder reads buf until it is exhausted, and buf is only
			// reloaded after that; decoded nodes own their bytes (the codec
			// copies names, values and IDs), so no copy is needed here.
			p.dec, p.err = tree.NewDecoder(p.buf)
		}
	}
}

// find returns the parent's node called name, or nil. A parent snapshot
// that cannot be read only costs change detection: the error is kept in
// p.err and every later lookup misses.
func (p *parentDir) find(ctx context.Context, name string) *tree.Node {
	if p == nil || len(p.ids) == 0 {
		return nil
	}
	if p.cur == nil && p.dec == nil && p.next == 0 {
		p.advance(ctx)
	}
	for p.cur != nil && p.cur.Name < name {
		p.advance(ctx)
	}
	if p.cur != nil && p.cur.Name == name {
		return p.cur
	}
	return nil
}
