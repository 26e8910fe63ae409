package restorer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// tarDump writes the entries of a directory as a PAX tar archive that GNU
// tar and bsdtar extract with the metadata restore would set:
//   - a file with several names is written in full once, under the first
//     name written; its other names are hard-link entries to it;
//   - a file with holes is a GNU sparse 1.0 entry (PAX records
//     GNU.sparse.*, the map of data regions at the start of its data), so
//     that only its data is stored and the holes come back as holes;
//   - POSIX ACLs are SCHILY.acl.access and SCHILY.acl.default records in
//     text form, which GNU tar --acls applies; other xattrs are
//     SCHILY.xattr.NAME records (GNU tar --xattrs, bsdtar);
//   - times keep their nanoseconds; names that are long or not ASCII are
//     PAX path records, raw bytes when they are not UTF-8 (GNU tar and
//     bsdtar then create them byte for byte; a hdrcharset=BINARY record
//     would be right by POSIX, but GNU tar rejects it outside a global
//     header).
type tarDump struct {
	ctx   context.Context
	r     *repository.Repository
	w     io.Writer
	tw    *tar.Writer
	links map[inodeKey]string
	buf   []byte
}

type inodeKey struct{ dev, ino uint64 }

func newTarDump(ctx context.Context, r *repository.Repository, w io.Writer) *tarDump {
	return &tarDump{ctx: ctx, r: r, w: w, tw: tar.NewWriter(w), links: map[inodeKey]string{}}
}

func (d *tarDump) Close() error { return d.tw.Close() }

func (d *tarDump) entry(name string, n *tree.Node) error {
	h := &tar.Header{
		Name: name, Mode: int64(n.Mode), Uid: int(n.UID), Gid: int(n.GID), Uname: n.User, Gname: n.Group,
		ModTime: time.Unix(0, n.MTime), AccessTime: time.Unix(0, n.ATime), Format: tar.FormatPAX,
		PAXRecords: map[string]string{},
	}
	addXattrs(h, n)
	var content []tree.Chunk
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
	if n.Type != tree.Dir && n.Links > 1 && n.Inode != 0 {
		k := inodeKey{n.DeviceID, n.Inode}
		if first, ok := d.links[k]; ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			h.Devmajor, h.Devminor = 0, 0
			return d.writeHeader(h, name)
		}
		d.links[k] = name
	}
	if n.Type == tree.File {
		var err error
		if content, err = snapshot.ReadableContent(d.ctx, d.r, n); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		if hasHole(content) {
			return d.sparse(h, name, n, content)
		}
	}
	if err := d.writeHeader(h, name); err != nil {
		return err
	}
	return d.data(d.tw, name, content)
}

func (d *tarDump) writeHeader(h *tar.Header, name string) error {
	if err := d.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar %q: %w", name, err)
	}
	return nil
}

// data writes the data chunks of content to w, skipping holes.
func (d *tarDump) data(w io.Writer, name string, content []tree.Chunk) error {
	var err error
	for _, c := range content {
		if c.IsHole() {
			continue
		}
		if d.buf, err = d.r.LoadBlob(d.ctx, pack.DataBlob, c.ID, d.buf); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
		if _, err := w.Write(d.buf); err != nil {
			return fmt.Errorf("tar %q: %w", name, err)
		}
	}
	return nil
}

func hasHole(content []tree.Chunk) bool {
	for _, c := range content {
		if c.IsHole() {
			return true
		}
	}
	return false
}

// PAX records of GNU tar's sparse format 1.0.
const (
	paxSparseMajor    = "GNU.sparse.major"
	paxSparseMinor    = "GNU.sparse.minor"
	paxSparseName     = "GNU.sparse.name"
	paxSparseRealSize = "GNU.sparse.realsize"
	tarBlockSize      = 512
)

// sparse writes a file with holes in GNU sparse format 1.0: the entry's
// real name and size are PAX records, its header names a placeholder
// (what a tar without sparse support extracts), and its data is the map
// of data regions ("count\n" then "offset\nsize\n" per region, padded to
// a 512-byte block) followed by the bytes of those regions only. A file
// ending in a hole ends its map with an empty region at its size, so that
// the extractor gives it its full length.
func (d *tarDump) sparse(h *tar.Header, name string, n *tree.Node, content []tree.Chunk) error {
	type region struct{ off, size int64 }
	var regions []region
	var off, stored int64
	for _, c := range content {
		size := int64(c.Size)
		if !c.IsHole() {
			if k := len(regions); k > 0 && regions[k-1].off+regions[k-1].size == off {
				regions[k-1].size += size
			} else {
				regions = append(regions, region{off, size})
			}
			stored += size
		}
		off += size
	}
	if off != int64(n.Size) {
		return fmt.Errorf("%q: content is %d bytes, the file %d", name, off, n.Size)
	}
	if k := len(regions); k == 0 || regions[k-1].off+regions[k-1].size < off {
		regions = append(regions, region{off, 0})
	}
	m := strconv.AppendInt(nil, int64(len(regions)), 10)
	m = append(m, '\n')
	for _, r := range regions {
		m = strconv.AppendInt(m, r.off, 10)
		m = append(m, '\n')
		m = strconv.AppendInt(m, r.size, 10)
		m = append(m, '\n')
	}
	if pad := len(m) % tarBlockSize; pad != 0 {
		m = append(m, make([]byte, tarBlockSize-pad)...)
	}
	h.PAXRecords[paxSparseMajor] = "1"
	h.PAXRecords[paxSparseMinor] = "0"
	h.PAXRecords[paxSparseName] = name
	h.PAXRecords[paxSparseRealSize] = strconv.FormatInt(off, 10)
	h.Name = sparsePlaceholder(name)
	h.Size = int64(len(m)) + stored
	// archive/tar drops GNU.sparse.* records: this entry's headers are
	// written here, between the entries tw writes.
	if err := d.tw.Flush(); err != nil {
		return fmt.Errorf("tar %q: %w", name, err)
	}
	hdr, err := rawPAXHeaders(h)
	if err != nil {
		return fmt.Errorf("tar %q: %w", name, err)
	}
	if _, err := d.w.Write(hdr); err != nil {
		return fmt.Errorf("tar %q: %w", name, err)
	}
	if _, err := d.w.Write(m); err != nil {
		return fmt.Errorf("tar %q: %w", name, err)
	}
	if err := d.data(d.w, name, content); err != nil {
		return err
	}
	if pad := stored % tarBlockSize; pad != 0 {
		if _, err := d.w.Write(make([]byte, tarBlockSize-pad)); err != nil {
			return fmt.Errorf("tar %q: %w", name, err)
		}
	}
	return nil
}

// sparsePlaceholder is the header name of a sparse entry, as GNU tar
// forms it (DIR/GNUSparseFile.0/BASE), kept short and ASCII so that it
// needs no PAX path record, which some readers would apply over
// GNU.sparse.name.
func sparsePlaceholder(name string) string {
	dir, base := path.Split(name)
	p := dir + "GNUSparseFile.0/" + base
	if len(p) > 100 || !isASCII(p) {
		return "GNUSparseFile.0/sparse"
	}
	return p
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0 {
			return false
		}
	}
	return true
}

// addXattrs records n's xattrs: POSIX ACLs in text form as GNU tar writes
// them with --acls, the others as SCHILY.xattr.NAME. An ACL value that
// does not decode is kept as a SCHILY.xattr record.
func addXattrs(h *tar.Header, n *tree.Node) {
	for _, x := range n.Xattrs {
		if !fs.IsACLXattr(x.Name) {
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
			continue
		}
		text, err := fs.ACLText(x.Value)
		if err != nil {
			// Not what the kernel stores: kept as it is, for the reader
			// to judge, rather than dropped.
			slog.Warn("dump: ACL kept as a raw xattr", "name", h.Name, "xattr", x.Name, "err", err)
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
			continue
		}
		if x.Name == "system.posix_acl_default" {
			h.PAXRecords["SCHILY.acl.default"] = text
		} else {
			h.PAXRecords["SCHILY.acl.access"] = text
		}
	}
}
