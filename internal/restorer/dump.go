package restorer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Dump writes the file at p to w, or, for a directory, a tar archive of
// everything below it.
//
// A file whose content the backup could not read is never written: for a
// file, Dump fails with a *snapshot.NotBackedUpError before writing
// anything; in a tar archive, the file is left out, and once the archive
// is complete Dump returns an error matching ErrIncomplete that names
// every file left out.
func Dump(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, p string, w io.Writer) error {
	n, err := snapshot.Lookup(ctx, r, sn, p)
	if err != nil {
		return err
	}
	switch n.Type {
	case tree.File:
		return WriteContent(ctx, r, n, w)
	case tree.Dir:
		tw := tar.NewWriter(w)
		base := path.Clean("/" + p)
		var left []string
		err := snapshot.Walk(ctx, r, base, n.Subtree, func(q string, c *tree.Node) error {
			if snapshot.NotBackedUp(c) {
				left = append(left, fmt.Sprintf("%s: %v", q, &snapshot.NotBackedUpError{Reason: c.Error}))
				return nil
			}
			name := strings.TrimPrefix(strings.TrimPrefix(q, base), "/")
			return tarEntry(ctx, r, tw, name, c)
		})
		if err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("%w: the archive leaves out %d files whose content was not backed up:\n  %s",
				ErrIncomplete, len(left), strings.Join(left, "\n  "))
		}
		return nil
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

func tarEntry(ctx context.Context, r *repository.Repository, tw *tar.Writer, name string, n *tree.Node) error {
	h := &tar.Header{
		Name: name, Mode: int64(n.Mode), Uid: int(n.UID), Gid: int(n.GID), Uname: n.User, Gname: n.Group,
		ModTime: time.Unix(0, n.MTime), AccessTime: time.Unix(0, n.ATime), Format: tar.FormatPAX,
	}
	for _, x := range n.Xattrs {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
	}
	switch n.Type {
	case tree.File:
		h.Typeflag, h.Size = tar.TypeReg, int64(n.Size)
	case tree.Dir:
		h.Typeflag, h.Name = tar.TypeDir, name+"/"
	case tree.Symlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, n.LinkTarget
	case tree.CharDev, tree.BlockDev:
		h.Typeflag = tar.TypeChar
		if n.Type == tree.BlockDev {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor = int64((n.Rdev>>8)&0xfff | (n.Rdev>>32)&^0xfff)
		h.Devminor = int64(n.Rdev&0xff | (n.Rdev>>12)&^0xff)
	case tree.FIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return nil
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	if n.Type == tree.File {
		return WriteContent(ctx, r, n, tw)
	}
	return nil
}
