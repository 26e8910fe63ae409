package timeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/filter"
	rfs "github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// DiffLive compares n, the entry of a snapshot at the absolute path p
// (nil: p was absent), with what is at p on disk now, and calls emit for
// each difference in path order, with the codes of `rewind diff`: "+"
// only on disk, "-" only in the snapshot, "M" file content changed, "T"
// type changed, "U" metadata only (mode, owner, modification time, size,
// symlink target, device number; extended attributes are not compared).
// Below an added or removed directory every entry is listed. When both
// are directories only what is below them is compared, as `rewind diff`
// compares two snapshot directories.
//
// Entries on disk that skip matches (the snapshot's exclude patterns, so
// never backed up) and sockets (never backed up either) are left out.
// The repository's file data is not read: a file with the snapshot's
// size, modification time, change time and inode is taken as unchanged,
// as backup takes it; any other file is read from disk and its chunks
// hashed and compared with the snapshot's chunk IDs.
func DiffLive(ctx context.Context, r *repository.Repository, p string, n *tree.Node, skip *filter.Matcher, emit func(p, mod string)) error {
	d := &liveDiff{r: r, skip: skip, emit: emit}
	live, err := lstat(p)
	if err != nil {
		return err
	}
	if n != nil && live != nil && n.Type == tree.Dir && live.node.Type == tree.Dir {
		return d.dirs(ctx, p, n.Subtree)
	}
	return d.entry(ctx, p, n, live)
}

type liveDiff struct {
	r    *repository.Repository
	skip *filter.Matcher
	emit func(p, mod string)
}

// liveEntry is an entry on disk: its node as stat gives it, and the raw
// stat for change detection.
type liveEntry struct {
	node tree.Node
	st   unix.Stat_t
}

// lstat returns the entry at p, or nil when there is none.
func lstat(p string) (*liveEntry, error) {
	var e liveEntry
	if err := unix.Lstat(p, &e.st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	e.node = rfs.NodeFromStat(path.Base(p), &e.st)
	if e.node.Type == tree.Symlink {
		t, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		e.node.LinkTarget = t
	}
	return &e, nil
}

// entry compares one entry present in the snapshot, on disk, or both.
func (d *liveDiff) entry(ctx context.Context, p string, n *tree.Node, live *liveEntry) error {
	switch {
	case n == nil && live == nil:
		return nil
	case n == nil:
		return d.added(p, live)
	case live == nil:
		d.emit(p, "-")
		if n.Type == tree.Dir {
			return snapshot.Walk(ctx, d.r, p, n.Subtree, func(q string, _ *tree.Node) error {
				d.emit(q, "-")
				return nil
			})
		}
		return nil
	case n.Type != live.node.Type:
		d.emit(p, "T")
		return nil
	}
	if snapshot.NotBackedUp(n) {
		// What the file held then is unknown.
		d.emit(p, "?")
		return nil
	}
	if n.Type == tree.File {
		same, err := d.sameContent(ctx, p, n, live)
		if err != nil {
			return err
		}
		if !same {
			d.emit(p, "M")
			return nil
		}
	}
	if !sameLiveMeta(n, &live.node) {
		d.emit(p, "U")
	}
	if n.Type == tree.Dir {
		return d.dirs(ctx, p, n.Subtree)
	}
	return nil
}

// added lists an entry found only on disk, and everything below it.
func (d *liveDiff) added(p string, live *liveEntry) error {
	if live.node.Type == tree.Socket || d.skip.Match(p, path.Base(p)) {
		return nil
	}
	d.emit(p, "+")
	if live.node.Type != tree.Dir {
		return nil
	}
	return filepath.WalkDir(p, func(q string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if q == p {
			return nil
		}
		if de.Type()&fs.ModeSocket != 0 {
			return nil
		}
		if d.skip.Match(q, de.Name()) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		d.emit(q, "+")
		return nil
	})
}

// dirs compares a snapshot's directory listing with the directory at p.
func (d *liveDiff) dirs(ctx context.Context, p string, ids []id.ID) error {
	snap, err := listing(ctx, d.r, ids)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	i, j := 0, 0
	for i < len(snap) || j < len(names) {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n *tree.Node
		var name string
		onDisk := true
		switch {
		case j == len(names) || i < len(snap) && snap[i].Name < names[j]:
			n, name, onDisk = &snap[i], snap[i].Name, false
			i++
		case i == len(snap) || snap[i].Name > names[j]:
			name = names[j]
			j++
		default:
			n, name = &snap[i], snap[i].Name
			i++
			j++
		}
		q := path.Join(p, name)
		var live *liveEntry
		if onDisk {
			if live, err = lstat(q); err != nil {
				return err
			}
		}
		if err := d.entry(ctx, q, n, live); err != nil {
			return err
		}
	}
	return nil
}

// sameLiveMeta compares what stat tells of an entry with the snapshot's
// node: mode, owner, modification time, size of files, symlink target
// and device number.
func sameLiveMeta(n, live *tree.Node) bool {
	return n.Mode == live.Mode && n.UID == live.UID && n.GID == live.GID && n.MTime == live.MTime &&
		(n.Type != tree.File || n.Size == live.Size) && n.LinkTarget == live.LinkTarget && n.Rdev == live.Rdev
}

// sameContent reports whether the file at p holds the content of n.
func (d *liveDiff) sameContent(ctx context.Context, p string, n *tree.Node, live *liveEntry) (bool, error) {
	if n.Flags != 0 || live.node.Size != n.Size {
		return false, nil
	}
	if live.node.MTime == n.MTime && live.node.CTime == n.CTime && live.node.Inode == n.Inode && live.node.DeviceID == n.DeviceID {
		return true, nil
	}
	chunks, err := snapshot.LoadContent(ctx, d.r, n)
	if err != nil {
		return false, err
	}
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 0, 1<<20)
	var off int64
	for _, c := range chunks {
		if c.IsHole() {
			// A hole may be large: check it a piece at a time.
			for left := int64(c.Size); left > 0; {
				k := min(left, int64(cap(buf)))
				buf = buf[:k]
				if _, err := f.ReadAt(buf, off); err != nil {
					return false, readErr(p, err)
				}
				if !allZero(buf) {
					return false, nil
				}
				off += k
				left -= k
			}
			continue
		}
		if cap(buf) < int(c.Size) {
			buf = make([]byte, c.Size)
		}
		buf = buf[:c.Size]
		if _, err := f.ReadAt(buf, off); err != nil {
			return false, readErr(p, err)
		}
		off += int64(c.Size)
		if d.r.Key().BlobID(buf) != c.ID {
			return false, nil
		}
	}
	return true, nil
}

// readErr is nil for a file that turned out shorter than when it was
// stat'ed (it is then not the same), else the error.
func readErr(p string, err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("read %s: %w", p, err)
}

func allZero(b []byte) bool {
	var zero [4096]byte
	for len(b) > 0 {
		k := min(len(b), len(zero))
		if !bytes.Equal(b[:k], zero[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
