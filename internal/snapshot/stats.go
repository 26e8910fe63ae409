package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Stats is what `rewind stats` reports for a set of snapshots.
type Stats struct {
	Snapshots int

	// What restoring each snapshot would write, summed over the
	// snapshots: entries, and the bytes of file content. A file flagged
	// NotBackedUp has no content: it is counted in NotBackedUp only,
	// never in Files or RestoreBytes. Entries whose names restore
	// refuses (fs.Listing) are not counted. A hard-linked file counts
	// once per name.
	Files, Dirs, Other int64
	RestoreBytes       int64
	NotBackedUp        int64

	// Distinct file contents among the counted files, and their bytes.
	UniqueContents     int64
	UniqueContentBytes int64

	// The distinct blobs the snapshots reference (trees, content lists,
	// data), with their plain size and the size they take in packs.
	// Missing counts referenced blobs the index does not list.
	DataBlobs, TreeBlobs   int64
	DataPlain, TreePlain   int64
	DataPacked, TreePacked int64
	Missing                int64
}

// dirCount is what one directory listing adds to the restore counts.
// bytes leaves out hard-linked files, whose sizes are in linked by inode
// so that a snapshot counts each once.
type dirCount struct {
	files, dirs, other, bytes, nbu int64
	linked                         map[inodeKey]int64
}

type inodeKey struct{ dev, ino uint64 }

func (c *dirCount) link(k inodeKey, size int64) {
	if c.linked == nil {
		c.linked = map[inodeKey]int64{}
	}
	c.linked[k] = size
}

// total is the bytes of c, each hard-linked file once.
func (c *dirCount) total() int64 {
	n := c.bytes
	for _, s := range c.linked {
		n += s
	}
	return n
}

// statsWalker walks snapshots once for all the numbers of Stats.
type statsWalker struct {
	r        *repository.Repository
	st       *Stats
	dirs     map[string]dirCount // by listing
	blobs    map[id.ID]bool      // every blob counted
	contents map[[32]byte]bool
}

// ComputeStats walks the trees of sns. Each directory listing and each
// blob is read once however many snapshots share it.
func ComputeStats(ctx context.Context, r *repository.Repository, sns []*Snapshot) (*Stats, error) {
	w := &statsWalker{r: r, st: &Stats{Snapshots: len(sns)}, dirs: map[string]dirCount{},
		blobs: map[id.ID]bool{}, contents: map[[32]byte]bool{}}
	for _, sn := range sns {
		c, err := w.dir(ctx, sn.Tree)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", sn.ID.Short(), err)
		}
		w.st.Files += c.files
		w.st.Dirs += c.dirs
		w.st.Other += c.other
		w.st.RestoreBytes += c.total()
		w.st.NotBackedUp += c.nbu
	}
	return w.st, nil
}

// blob counts i once, as a tree or data blob.
func (w *statsWalker) blob(i id.ID, isTree bool) {
	if w.blobs[i] {
		return
	}
	w.blobs[i] = true
	loc, ok := w.r.Locate(i)
	if !ok {
		w.st.Missing++
		return
	}
	if isTree {
		w.st.TreeBlobs++
		w.st.TreePlain += int64(loc.RawLength)
		w.st.TreePacked += int64(loc.Length)
	} else {
		w.st.DataBlobs++
		w.st.DataPlain += int64(loc.RawLength)
		w.st.DataPacked += int64(loc.Length)
	}
}

func (w *statsWalker) dir(ctx context.Context, ids []id.ID) (dirCount, error) {
	key := string(idBytes(ids))
	if c, ok := w.dirs[key]; ok {
		return c, nil
	}
	for _, i := range ids {
		w.blob(i, true)
	}
	var c dirCount
	var names fs.Listing
	err := EachNode(ctx, w.r, ids, func(n *tree.Node) error {
		refused := names.Check(n.Name) != nil
		switch {
		case n.Type == tree.Dir:
			sub, err := w.dir(ctx, n.Subtree)
			if err != nil {
				return err
			}
			if !refused {
				c.dirs++
				c.files += sub.files
				c.dirs += sub.dirs
				c.other += sub.other
				c.bytes += sub.bytes
				c.nbu += sub.nbu
				for k, size := range sub.linked {
					c.link(k, size)
				}
			}
		case NotBackedUp(n):
			if !refused {
				c.nbu++
			}
		case n.Type == tree.File:
			for _, l := range n.ContentLists {
				w.blob(l, true)
			}
			chunks, err := LoadContent(ctx, w.r, n)
			if err != nil {
				return fmt.Errorf("%q: %w", n.Name, err)
			}
			for _, ch := range chunks {
				if !ch.IsHole() {
					w.blob(ch.ID, false)
				}
			}
			if !refused {
				c.files++
				if n.Links > 1 {
					c.link(inodeKey{n.DeviceID, n.Inode}, int64(n.Size))
				} else {
					c.bytes += int64(n.Size)
				}
				w.content(chunks, n.Size)
			}
		default:
			if !refused {
				c.other++
			}
		}
		return nil
	})
	if err != nil {
		return dirCount{}, err
	}
	w.dirs[key] = c
	return c, nil
}

// content counts a file's content once: files with the same chunks (and
// holes) in the same order hold the same bytes.
func (w *statsWalker) content(chunks []tree.Chunk, size uint64) {
	h := sha256.New()
	var b [8]byte
	for _, ch := range chunks {
		h.Write(ch.ID[:])
		binary.LittleEndian.PutUint64(b[:], ch.Size)
		h.Write(b[:])
	}
	binary.LittleEndian.PutUint64(b[:], size)
	h.Write(b[:])
	var k [32]byte
	h.Sum(k[:0])
	if w.contents[k] {
		return
	}
	w.contents[k] = true
	w.st.UniqueContents++
	w.st.UniqueContentBytes += int64(size)
}

func idBytes(ids []id.ID) []byte {
	out := make([]byte, 0, len(ids)*id.Size)
	for _, i := range ids {
		out = append(out, i[:]...)
	}
	return out
}
