package archiver

// Backups of a whole block device or disk image file: fixed-size blocks
// aligned to device offsets (docs/FORMAT.md §19, docs/IMAGES.md).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rewind-backup/rewind/internal/diskimage"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// ImageBlockSize is the default chunk size of a device or image of size
// bytes: 64 KiB, so that a change of a few KiB stores little (a 64 KiB
// write at a 4 KiB-aligned offset stores at most two blocks), doubled
// while the device would have more than 2^20 blocks (over 64 GiB), so
// that the chunk list and the index stay small, up to 8 MiB.
func ImageBlockSize(size int64) int64 {
	bs := int64(64 << 10)
	for bs < 8<<20 && size/bs > 1<<20 {
		bs *= 2
	}
	return bs
}

// ImageOptions describe a device or image file to back up.
type ImageOptions struct {
	// Path is the device or file, an absolute path; the snapshot stores
	// its content as the one file at this path.
	Path string
	// Kind is snapshot.ImageDevice or snapshot.ImageFile; it is also
	// added to the snapshot's tags.
	Kind string
	// BlockSize is the chunk size; 0 means ImageBlockSize of the
	// device's size. A parent with another block size is not compared
	// with.
	BlockSize int64
	// Full reads every block, without looking for a filesystem.
	Full bool
}

// SnapshotImage reads the device or image opt.Path and stores it as one
// file of a new snapshot, in blocks of opt.BlockSize: a block that is all
// zeros, or free in the ext2/3/4 filesystem the device holds, is a hole
// and is not stored; a block the repository has (the parent's block at
// the same offset, unchanged) is not stored again. The Parent option, if
// it is an image snapshot of the same path, gives the changed-block
// count.
func (a *Archiver) SnapshotImage(ctx context.Context, opt ImageOptions) (*snapshot.Snapshot, error) {
	start := time.Now()
	name, err := CleanStreamName(opt.Path)
	if err != nil {
		return nil, err
	}
	bs := opt.BlockSize
	if bs != 0 && (bs < 4096 || bs > 8<<20 || bs%4096 != 0) {
		return nil, fmt.Errorf("block size %d: give a multiple of 4096 between 4 KiB and 8 MiB", bs)
	}
	f, err := os.Open(opt.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := diskimage.Size(f)
	if err != nil {
		return nil, err
	}
	if bs == 0 {
		bs = ImageBlockSize(size)
	}
	info := &snapshot.ImageInfo{Kind: opt.Kind, Size: size, BlockSize: bs, Method: snapshot.MethodFull}
	var alloc diskimage.Map
	if !opt.Full {
		alloc = a.imageMap(f, size, info)
	}
	prev := a.parentBlocks(ctx, name, bs)
	statsBefore := a.store.stats()
	a.store.start(ctx)
	root, end, err := a.storeImageTree(ctx, f, name, size, alloc, prev, false, info)
	if ferr := a.store.flush(ctx); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return a.commitImage(ctx, start, end, name, root, info, statsBefore)
}

// commitImage saves the snapshot of the image stored as name under
// root, read from start to end.
func (a *Archiver) commitImage(ctx context.Context, start, end time.Time, name string, root []id.ID, info *snapshot.ImageInfo, statsBefore repoStats) (*snapshot.Snapshot, error) {
	size := info.Size
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	tags := slices.Clone(a.opt.Tags)
	if !slices.Contains(tags, info.Kind) {
		tags = append(tags, info.Kind)
	}
	after := a.store.stats()
	sn := &snapshot.Snapshot{
		Time: start.UTC(), Tree: root, Paths: []string{name}, Hostname: a.opt.Hostname,
		Username: a.names.User(uid), UID: uid, GID: gid, Tags: tags,
		ProgramVersion: a.opt.ProgramVersion, Image: info,
		Summary: &snapshot.Summary{
			BackupStart: start.UTC(), BackupEnd: end.UTC(),
			TotalFiles: 1, TotalBytes: size, BytesRead: info.BytesRead,
			DataBlobs: after.dataBlobs - statsBefore.dataBlobs, TreeBlobs: after.treeBlobs - statsBefore.treeBlobs,
			DataAdded: after.added - statsBefore.added, DataStored: after.stored - statsBefore.stored,
		},
	}
	if p := a.opt.Parent; p != nil && p.Image != nil {
		pid := p.ID
		sn.Parent = &pid
		sn.Summary.FilesChanged = 1
	} else {
		sn.Summary.FilesNew = 1
	}
	return a.commit(ctx, sn)
}

// imageMap finds what of the device to read: the blocks in use of the
// ext2/3/4 or XFS filesystem on it, or of those in its partitions. It
// returns nil (read everything) and says why in info.Fallback otherwise.
func (a *Archiver) imageMap(f *os.File, size int64, info *snapshot.ImageInfo) diskimage.Map {
	method := snapshot.MethodExt4Bitmap
	alloc, err := diskimage.Ext4Allocation(f, size)
	if errors.Is(err, diskimage.ErrNotExt4) {
		method = snapshot.MethodXFSBtree
		alloc, err = diskimage.XFSAllocation(f, size)
	}
	if err == nil {
		info.Method = method
		return alloc
	}
	if !errors.Is(err, diskimage.ErrNotXFS) {
		info.Fallback = err.Error()
		a.log.Warn("reading every block", "path", f.Name(), "err", err)
		return nil
	}
	parts, err := diskimage.PartitionsAllocation(f, size)
	switch {
	case err != nil:
		info.Fallback = "partition table: " + err.Error()
		return nil
	case parts == nil:
		info.Fallback = "no ext2/3/4 or XFS filesystem found, on the device or in a partition"
		return nil
	}
	info.Method = snapshot.MethodPartitions
	return parts
}

// storeImageTree stores the image's blocks, its file node and the
// listings above it, and returns the root's tree blobs and when the
// reading ended.
func (a *Archiver) storeImageTree(ctx context.Context, f imageSource, name string, size int64, alloc diskimage.Map, prev map[int64]id.ID, reuse bool, info *snapshot.ImageInfo) ([]id.ID, time.Time, error) {
	chunks, err := a.storeImage(ctx, f, size, alloc, prev, reuse, info)
	if err != nil {
		return nil, time.Time{}, err
	}
	end := time.Now()
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	file := tree.Node{
		Name: path.Base(name), Type: tree.File, Mode: 0o600, UID: uid, GID: gid,
		User: a.names.User(uid), Group: a.names.Group(gid), Links: 1,
		MTime: end.UnixNano(), CTime: end.UnixNano(), ATime: end.UnixNano(),
	}
	if err := a.setContent(ctx, &file, chunks, size); err != nil {
		return nil, time.Time{}, err
	}
	root, err := a.streamTrees(ctx, name, file, end)
	return root, end, err
}

// parentBlocks maps the offsets of the parent's data blocks to their
// blob IDs, when the parent is an image snapshot of name with block size
// bs. It returns nil otherwise, or when the parent cannot be read (the
// backup then counts every block as changed).
func (a *Archiver) parentBlocks(ctx context.Context, name string, bs int64) map[int64]id.ID {
	p := a.opt.Parent
	if p == nil || p.Image == nil || p.Image.BlockSize != bs {
		return nil
	}
	n, err := snapshot.Lookup(ctx, a.repo, p, name)
	if err == nil && n.Type != tree.File {
		err = fmt.Errorf("%s is not a file", name)
	}
	var chunks []tree.Chunk
	if err == nil {
		chunks, err = snapshot.LoadContent(ctx, a.repo, n)
	}
	if err != nil {
		a.log.Warn("parent image unreadable: every block counts as changed", "parent", p.ID.Short(), "err", err)
		return nil
	}
	m := make(map[int64]id.ID, len(chunks))
	var off int64
	for _, c := range chunks {
		if !c.IsHole() {
			m[off] = c.ID
		}
		off += int64(c.Size)
	}
	return m
}

// imageSource is what an image is read from: the device or file, or a
// QEMU drive's NBD export.
type imageSource interface {
	io.ReaderAt
	Name() string
}

// storeImage reads the size bytes of f block by block and returns the
// chunk list, counting into info. With reuse, a block alloc gives no
// run in is the parent's block at the same offset (prev), unread, or a
// hole where the parent had one: alloc marks what changed since the
// parent, not what is in use.
func (a *Archiver) storeImage(ctx context.Context, f imageSource, size int64, alloc diskimage.Map, prev map[int64]id.ID, reuse bool, info *snapshot.ImageInfo) ([]tree.Chunk, error) {
	g, gctx := errgroup.WithContext(ctx)
	a.saves = make(chan saveJob, a.opt.Savers)
	for range a.opt.Savers {
		g.Go(func() error { return a.saver(gctx) })
	}
	rd := &fileReader{a: a}
	readErr := func() error {
		defer close(a.saves)
		bs := info.BlockSize
		buf := make([]byte, bs)
		hole := func(n int64) {
			info.BlocksHole++
			if k := len(rd.chunks); k > 0 && rd.chunks[k-1].IsHole() {
				rd.chunks[k-1].Size += uint64(n)
				return
			}
			rd.chunks = append(rd.chunks, tree.Chunk{Size: uint64(n)})
		}
		for off := int64(0); off < size; off += bs {
			if err := gctx.Err(); err != nil {
				return err
			}
			n := min(bs, size-off)
			b := buf[:n]
			info.Blocks++
			var read int64
			if alloc == nil {
				if _, err := f.ReadAt(b, off); err != nil {
					return fmt.Errorf("read %s at %d: %w", f.Name(), off, err)
				}
				read = n
			} else {
				runs := alloc.Runs(off, n)
				if reuse && len(runs) == 0 {
					info.BytesClean += n
					a.prog.Done(0, n)
					if p, ok := prev[off]; ok {
						rd.chunks = append(rd.chunks, tree.Chunk{ID: p, Size: uint64(n)})
					} else {
						hole(n)
					}
					continue
				}
				if len(runs) > 0 {
					clear(b)
				}
				for _, r := range runs {
					if _, err := f.ReadAt(b[r.Off-off:r.Off-off+r.Len], r.Off); err != nil {
						return fmt.Errorf("read %s at %d: %w", f.Name(), r.Off, err)
					}
					read += r.Len
				}
				if !reuse {
					info.BytesFree += n - read
				}
			}
			info.BytesRead += read
			a.st.bytesRead.Add(read)
			a.prog.Done(0, n)
			if read == 0 || isZero(b) {
				hole(n)
				continue
			}
			if err := rd.addChunk(gctx, b); err != nil {
				return err
			}
			if p, ok := prev[off]; !ok || p != rd.chunks[len(rd.chunks)-1].ID {
				info.BlocksChanged++
			}
		}
		return nil
	}()
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, readErr
	}
	return rd.chunks, nil
}
