package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
)

// ErrUnstorable: a directory listing that a repair must write is, byte
// for byte, a tree blob the index lists but whose stored copy is lost.
// Storing it again would not help, since readers keep finding the lost
// copy. For a blob in a missing pack, `rewind repair index` drops the
// missing pack from the index, after which the repair can store it.
var ErrUnstorable = errors.New("a rewritten directory listing is identical to a lost tree blob")

// dirResult is what rewriting one directory listing found. Paths are
// relative to the directory; "" in dirs is the directory itself.
type dirResult struct {
	changed bool
	// ids is the new listing, nil when it holds no entries.
	ids     []id.ID
	entries int // entries kept in the new listing
	files   []LostFile
	dirs    []string
	blobs   []id.ID // distinct lost blobs below, sorted
}

// intact is the shared result of every listing with nothing lost below.
var intact = &dirResult{}

// rewriter writes new listings for damaged directories. It is used by one
// goroutine.
type rewriter struct {
	r     *repository.Repository
	s     *blobState
	store bool // false for a dry run: IDs are computed, nothing is saved
	// memo holds the result for each listing seen, by its blob IDs, so
	// that a directory shared by many snapshots is examined once.
	memo    map[string]*dirResult
	written map[id.ID]bool // tree blobs saved (or, dry, computed) by this run
	buf     []byte
}

func newRewriter(r *repository.Repository, s *blobState, store bool) *rewriter {
	return &rewriter{r: r, s: s, store: store, memo: map[string]*dirResult{}, written: map[id.ID]bool{}}
}

func listingKey(ids []id.ID) string {
	var b strings.Builder
	b.Grow(len(ids) * id.Size)
	for _, i := range ids {
		b.Write(i[:])
	}
	return b.String()
}

// under joins a name and a path relative to the directory holding it.
// Names are raw bytes and are never cleaned.
func under(name, rel string) string {
	if rel == "" {
		return name
	}
	return name + "/" + rel
}

// dir examines the listing stored in ids and, when something below it is
// lost, writes a new one without the losses.
func (w *rewriter) dir(ctx context.Context, ids []id.ID) (*dirResult, error) {
	key := listingKey(ids)
	if res, ok := w.memo[key]; ok {
		return res, nil
	}
	res := &dirResult{}
	var lostBlobs map[id.ID]struct{} // made at the first loss
	addLost := func(b id.ID) {
		if lostBlobs == nil {
			lostBlobs = map[id.ID]struct{}{}
		}
		lostBlobs[b] = struct{}{}
	}
	var nodes []tree.Node
	for _, t := range ids {
		ns, ok, err := w.loadListing(ctx, t)
		if err != nil {
			return nil, err
		}
		if !ok {
			if !res.changed {
				res.dirs = append(res.dirs, "") // named once, however many blobs
			}
			res.changed = true
			addLost(t)
			continue
		}
		nodes = append(nodes, ns...)
	}
	kept := nodes[:0]
	for i := range nodes {
		n := &nodes[i]
		switch n.Type {
		case tree.Dir:
			sub, err := w.dir(ctx, n.Subtree)
			if err != nil {
				return nil, err
			}
			if sub.changed {
				res.changed = true
				n.Subtree = sub.ids
				for _, f := range sub.files {
					res.files = append(res.files, LostFile{Path: under(n.Name, f.Path), Size: f.Size})
				}
				for _, d := range sub.dirs {
					res.dirs = append(res.dirs, under(n.Name, d))
				}
				for _, b := range sub.blobs {
					addLost(b)
				}
			}
		case tree.File:
			lost, err := w.fileLoss(ctx, n)
			if err != nil {
				return nil, err
			}
			if len(lost) > 0 {
				res.changed = true
				res.files = append(res.files, LostFile{Path: n.Name, Size: n.Size})
				for _, b := range lost {
					addLost(b)
				}
				continue
			}
		}
		kept = append(kept, *n)
	}
	if !res.changed {
		w.memo[key] = intact
		return intact, nil
	}
	for b := range lostBlobs {
		res.blobs = append(res.blobs, b)
	}
	slices.SortFunc(res.blobs, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
	res.entries = len(kept)
	if len(kept) > 0 {
		b := tree.Builder{Emit: func(blob []byte) (id.ID, error) { return w.emit(ctx, blob) }}
		for i := range kept {
			if err := b.Add(&kept[i]); err != nil {
				return nil, err
			}
		}
		var err error
		if res.ids, err = b.Finish(); err != nil {
			return nil, err
		}
	}
	w.memo[key] = res
	return res, nil
}

// loadListing decodes the nodes of one tree blob. ok is false when the
// blob is lost; err is for failures that do not mean loss.
func (w *rewriter) loadListing(ctx context.Context, t id.ID) (nodes []tree.Node, ok bool, err error) {
	if w.s.lost(t) {
		return nil, false, nil
	}
	buf, err := w.r.LoadBlob(ctx, pack.TreeBlob, t, w.buf)
	if err != nil {
		if lostErr(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("load tree %s: %w", t, err)
	}
	w.buf = buf
	d, err := tree.NewDecoder(buf)
	if err != nil {
		return nil, false, nil
	}
	for {
		// Decoded nodes own their bytes, so buf can be reused.
		n, more, err := d.Next()
		if err != nil {
			return nil, false, nil
		}
		if !more {
			return nodes, true, nil
		}
		nodes = append(nodes, n)
	}
}

// fileLoss returns the lost blobs that a file's content needs: data
// blobs, and blobs holding its chunk list. A chunk list that is lost
// hides which data blobs it named; only the list's blob is returned then.
func (w *rewriter) fileLoss(ctx context.Context, n *tree.Node) ([]id.ID, error) {
	var lost []id.ID
	check := func(cs []tree.Chunk) {
		for _, c := range cs {
			if !c.IsHole() && w.s.lost(c.ID) {
				lost = append(lost, c.ID)
			}
		}
	}
	check(n.Content)
	for _, l := range n.ContentLists {
		if w.s.lost(l) {
			lost = append(lost, l)
			continue
		}
		buf, err := w.r.LoadBlob(ctx, pack.TreeBlob, l, w.buf)
		if err != nil {
			if lostErr(err) {
				lost = append(lost, l)
				continue
			}
			return nil, fmt.Errorf("load content list %s: %w", l, err)
		}
		w.buf = buf
		cs, err := tree.DecodeContentList(buf)
		if err != nil {
			lost = append(lost, l)
			continue
		}
		check(cs)
	}
	return lost, nil
}

// emit stores one tree blob of a new listing, unless it is stored already.
func (w *rewriter) emit(ctx context.Context, blob []byte) (id.ID, error) {
	i := w.r.Key().BlobID(blob)
	if w.written[i] {
		return i, nil
	}
	if w.s.indexed(i) && w.s.lost(i) {
		return id.ID{}, fmt.Errorf("%w (tree blob %s)", ErrUnstorable, i)
	}
	if w.store {
		if _, _, err := w.r.SaveBlob(ctx, pack.TreeBlob, blob); err != nil {
			return id.ID{}, fmt.Errorf("save tree blob: %w", err)
		}
	}
	w.written[i] = true
	return i, nil
}
