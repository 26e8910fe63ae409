package restorer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// ErrEntriesRefused: a dump left out entries whose names restore refuses
// too (fs.Listing); the tar archive is complete without them.
var ErrEntriesRefused = errors.New("snapshot holds entries with invalid names")

// Dump writes the file at p to w, or, for a directory, a tar archive of
// everything below it that GNU tar and bsdtar extract in full (see
// tarDump): hard links as links, sparse files as sparse entries, ACLs and
// xattrs as GNU tar's --acls --xattrs read them. An entry whose name restore would refuse ("..", a
// name with '/', a second entry of one name...) is not written: a tar
// extractor that trusts its input would write it outside its target. A
// file whose content the backup could not read is not written either:
// alone, Dump fails with a *snapshot.NotBackedUpError before writing
// anything; in a tar archive, it is left out. refused, if not nil, is told
// of each entry left out with its quoted path and why, and Dump returns an
// error wrapping ErrEntriesRefused or ErrIncomplete after finishing the
// archive.
func Dump(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, p string, w io.Writer, refused func(p string, err error)) error {
	n, err := snapshot.Lookup(ctx, r, sn, p)
	if err != nil {
		return err
	}
	switch n.Type {
	case tree.File:
		return WriteContent(ctx, r, n, w)
	case tree.Dir:
		tw := newTarDump(ctx, r, w)
		base := path.Clean("/" + p)
		badNames, notBackedUp := 0, 0
		// The directory itself comes first, as "./" in GNU tar's archive
		// of ".": its mode, owner, times, ACLs (the default ACL too) and
		// xattrs are part of what is dumped.
		if err := tw.entry(".", n); err != nil {
			return err
		}
		err := snapshot.WalkNames(ctx, r, "", n.Subtree, func(name string, c *tree.Node, bad error) error {
			if bad == nil && snapshot.NotBackedUp(c) {
				notBackedUp++
				bad = &snapshot.NotBackedUpError{Reason: c.Error}
			} else if bad != nil {
				badNames++
			}
			if bad != nil {
				if refused != nil {
					refused(snapshot.JoinName(base, name), bad)
				}
				return nil
			}
			return tw.entry(name, c)
		})
		if err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		var errs []error
		if badNames > 0 {
			errs = append(errs, fmt.Errorf("%w: %d left out of the archive (named above); restore refuses them too", ErrEntriesRefused, badNames))
		}
		if notBackedUp > 0 {
			errs = append(errs, fmt.Errorf("%w: files left out of the archive (named above) because the backup could not read them: %d", ErrIncomplete, notBackedUp))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s is a %s; only files and directories can be dumped", p, n.Type)
}

// WriteContent writes a file's bytes, holes as zeros.
func WriteContent(ctx context.Context, r *repository.Repository, n *tree.Node, w io.Writer) error {
	content, err := snapshot.ReadableContent(ctx, r, n)
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	var buf []byte
	zero := make([]byte, 64<<10)
	for _, c := range content {
		if c.IsHole() {
			for left := int64(c.Size); left > 0; {
				k := min(left, int64(len(zero)))
				if _, err := w.Write(zero[:k]); err != nil {
					return err
				}
				left -= k
			}
			continue
		}
		buf, err = r.LoadBlob(ctx, pack.DataBlob, c.ID, buf)
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
