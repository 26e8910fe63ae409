package archiver

// Backups of a drive of a running QEMU guest, read over QMP and NBD
// (internal/qemupull, docs/IMAGES.md "Running QEMU guests").

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/rewind-backup/rewind/internal/diskimage"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/nbd"
	"github.com/rewind-backup/rewind/internal/qemupull"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// QEMUOptions describe a drive of a running QEMU to back up.
type QEMUOptions struct {
	// Socket is QEMU's QMP socket, an absolute path; Drive the drive ID
	// or block node name. The snapshot stores the drive as the file
	// QEMUImagePath(Socket, Drive).
	Socket, Drive string
	// BlockSize as in ImageOptions; 0 means the parent's, or
	// ImageBlockSize of the drive's size.
	BlockSize int64
	// TempDir holds the fleecing image and NBD socket ("" for the
	// system's); QEMU must be able to open files there.
	TempDir string
	// Frozen, when set, is called once the point-in-time view exists,
	// before anything is read (tests write to the drive there).
	Frozen func()
}

// QEMUImagePath is the path a drive's snapshot stores it under.
func QEMUImagePath(socket, drive string) string { return filepath.Join(socket, drive) }

// SnapshotQEMU backs up a drive of a running QEMU: the first time (or
// when the parent's dirty bitmap cannot be used, said in Fallback) the
// blocks QEMU says hold data, later only those its dirty bitmap marks
// written since the parent; the others are the parent's. The bitmap is
// handed on only when the snapshot is saved.
func (a *Archiver) SnapshotQEMU(ctx context.Context, opt QEMUOptions) (*snapshot.Snapshot, error) {
	start := time.Now()
	name, err := CleanStreamName(QEMUImagePath(opt.Socket, opt.Drive))
	if err != nil {
		return nil, err
	}
	bs := opt.BlockSize
	p := a.opt.Parent
	if bs == 0 && p != nil && p.Image != nil {
		bs = p.Image.BlockSize
	}
	if bs != 0 && (bs < 4096 || bs > 8<<20 || bs%4096 != 0) {
		return nil, fmt.Errorf("block size %d: give a multiple of 4096 between 4 KiB and 8 MiB", bs)
	}
	var prev map[int64]id.ID
	since, why := "", ""
	switch {
	case p == nil || p.Image == nil:
	case p.Image.DirtyBitmap == "" || p.Image.QEMUDrive != opt.Drive:
		why = fmt.Sprintf("the parent snapshot %s was not read from this drive with a dirty bitmap", p.ID.Short())
	default:
		if prev = a.parentBlocks(ctx, name, bs); prev == nil {
			why = fmt.Sprintf("the parent snapshot %s has another block size or cannot be read", p.ID.Short())
		} else {
			since = p.Image.DirtyBitmap
		}
	}
	gran := int64(64 << 10)
	if bs != 0 && bs < gran {
		gran = 4096
	}
	s, err := qemupull.Start(ctx, qemupull.Options{Socket: opt.Socket, Drive: opt.Drive, SinceBitmap: since, SinceWhy: why, Granularity: gran, TempDir: opt.TempDir})
	if err != nil {
		return nil, err
	}
	for _, r := range s.Recovered {
		a.log.Warn("an earlier backup was interrupted", "drive", opt.Drive, "done", r)
	}
	sn, err := a.readQEMU(ctx, s, opt, name, bs, prev, start)
	ok := err == nil && !a.opt.DryRun
	if ferr := s.Finish(ctx, ok); errors.Is(ferr, qemupull.ErrGone) {
		err = fmt.Errorf("%w (the drive's read ended with: %v); no snapshot saved", ferr, err)
	} else if ferr != nil {
		if err == nil && ok {
			a.log.Warn("the snapshot is saved, but the parent's dirty bitmap could not be removed", "err", ferr)
		} else {
			err = errors.Join(err, fmt.Errorf("QEMU: %w", ferr))
		}
	}
	if err != nil {
		return nil, err
	}
	return sn, nil
}

func (a *Archiver) readQEMU(ctx context.Context, s *qemupull.Session, opt QEMUOptions, name string, bs int64, prev map[int64]id.ID, start time.Time) (*snapshot.Snapshot, error) {
	if bs == 0 {
		bs = ImageBlockSize(s.Size)
	}
	info := &snapshot.ImageInfo{Kind: snapshot.ImageQEMU, Size: s.Size, BlockSize: bs, Method: snapshot.MethodQEMUAllocation,
		Fallback: s.Fallback, QEMUDrive: opt.Drive, DirtyBitmap: s.Bitmap}
	if s.Since != "" && a.opt.Parent.Image.Size == s.Size {
		info.Method = snapshot.MethodQEMUDirtyBitmap
	} else if s.Since != "" {
		info.Fallback = fmt.Sprintf("the drive's size changed from %d to %d bytes", a.opt.Parent.Image.Size, s.Size)
		s.ReadWhole(info.Fallback)
		prev = nil
	}
	if opt.Frozen != nil {
		opt.Frozen()
	}
	ranges, err := s.Dirty()
	if err != nil {
		return nil, err
	}
	m := &rangeMap{r: ranges, whole: info.Method == snapshot.MethodQEMUDirtyBitmap, bs: bs}
	statsBefore := a.store.stats()
	a.store.start(ctx)
	root, end, err := a.storeImageTree(ctx, nbdSource{s.NBD, name}, name, s.Size, m, prev, m.whole, info)
	if ferr := a.store.flush(ctx); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return a.commitImage(ctx, start, end, name, root, info, statsBefore)
}

// nbdSource reads the drive's NBD export.
type nbdSource struct {
	*nbd.Conn
	name string
}

func (n nbdSource) Name() string { return n.name }

// rangeMap is a diskimage.Map of sorted ranges: with whole, any block
// of bs bytes a range touches is read whole (a dirty block); otherwise
// only the ranges (data, not zeros).
type rangeMap struct {
	r     []nbd.Range
	whole bool
	bs    int64
}

func (m *rangeMap) Runs(off, n int64) []diskimage.Run {
	end := off + n
	i := sort.Search(len(m.r), func(i int) bool { return m.r[i].Off+m.r[i].Len > off })
	var out []diskimage.Run
	for ; i < len(m.r) && m.r[i].Off < end; i++ {
		if m.whole {
			return []diskimage.Run{{Off: off, Len: n}}
		}
		s, e := max(m.r[i].Off, off), min(m.r[i].Off+m.r[i].Len, end)
		out = append(out, diskimage.Run{Off: s, Len: e - s})
	}
	return out
}
