package cli

// backup --device and --image: a block device or disk image file stored
// block by block (archiver.SnapshotImage, docs/IMAGES.md).

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/diskimage"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// imageOpts are backup's device and image flags.
type imageOpts struct {
	device    string
	image     string
	fullRead  bool
	blockSize string
	qemuQMP   string
	tempDir   string
}

func (o *imageOpts) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.device, "device", "", "back up the block `device` whole, block by block (see docs/IMAGES.md)")
	f.StringVar(&o.image, "image", "", "back up the disk image `file` whole, block by block")
	f.BoolVar(&o.fullRead, "full-read", false, "with --device or --image: read every block, even where the filesystem (ext4, XFS) says it is free")
	f.StringVar(&o.blockSize, "block-size", "", "with --device or --image: the fixed chunk `size` (a multiple of 4K up to 8M; default 64K, more above 64 GiB)")
	f.StringVar(&o.qemuQMP, "qemu-qmp", "", "back up the drive named by the argument of the running QEMU whose QMP `socket` this is, reading only the blocks its dirty bitmap marks (docs/IMAGES.md)")
	f.StringVar(&o.tempDir, "qemu-tmp", "", "with --qemu-qmp: the `directory` for the fleecing image and the NBD socket, which QEMU must be able to open (default: the system's temporary directory)")
}

// on reports whether a device or image is backed up instead of paths.
func (o *imageOpts) on() bool { return o.device != "" || o.image != "" || o.qemuQMP != "" }

// check validates the flags and returns the path, its kind and the
// block size.
func (o *imageOpts) check(args []string, streamOn bool) (string, string, int64, error) {
	if o.qemuQMP != "" {
		return o.checkQEMU(args, streamOn)
	}
	if o.device != "" && o.image != "" {
		return "", "", 0, errors.New("--device and --image exclude each other: back up one at a time")
	}
	if streamOn {
		return "", "", 0, errors.New("--device and --image cannot be combined with --stdin or --stdin-from-command")
	}
	if len(args) > 0 {
		return "", "", 0, fmt.Errorf("--device and --image back up one device or file, not paths (got %q)", args)
	}
	var bs int64
	var err error
	if o.blockSize != "" {
		if bs, err = parseByteSize(o.blockSize); err != nil {
			return "", "", 0, fmt.Errorf("--block-size: %w", err)
		}
	}
	p, kind := o.image, snapshot.ImageFile
	if o.device != "" {
		p, kind = o.device, snapshot.ImageDevice
	}
	p, err = filepath.Abs(p)
	if err != nil {
		return "", "", 0, err
	}
	dev, err := diskimage.IsDevice(p)
	if err != nil {
		return "", "", 0, err
	}
	switch {
	case kind == snapshot.ImageDevice && !dev:
		return "", "", 0, fmt.Errorf("--device %s: not a block device (for an image file, use --image)", p)
	case kind == snapshot.ImageFile && dev:
		return "", "", 0, fmt.Errorf("--image %s: a block device (use --device)", p)
	}
	return p, kind, bs, nil
}

// runBackupImage stores the device or image file as one file of a new
// snapshot. r is open, locked by lk, with its index loaded.
func runBackupImage(cmd *cobra.Command, g *globals, o *backupOpts, r *repository.Repository, lk *lock.Lock, host string, args []string) error {
	if o.img.qemuQMP != "" {
		return runBackupQEMU(cmd, g, o, r, lk, host, args)
	}
	p, kind, bs, err := o.img.check(args, o.stream.on())
	if err != nil {
		return err
	}
	if kind == snapshot.ImageDevice {
		if why, err := diskimage.InUse(p); err == nil && why != "" {
			g.ui.Warnf("warning: %s: its content may change while it is read; back up a snapshot of it (LVM) or unmount it\n", why)
		}
	}
	return storeImage(cmd, g, o, r, lk, host, p, func(ctx context.Context, a *archiver.Archiver) (*snapshot.Snapshot, error) {
		return a.SnapshotImage(ctx, archiver.ImageOptions{Path: p, Kind: kind, BlockSize: bs, Full: o.img.fullRead})
	})
}

// storeImage runs take, which stores a device, an image file or a QEMU
// drive as the one file path of a new snapshot, with the parent found as
// backup finds it (an image snapshot of the same path), and prints the
// summary. r is open, locked by lk, with its index loaded.
func storeImage(cmd *cobra.Command, g *globals, o *backupOpts, r *repository.Repository, lk *lock.Lock, host, path string,
	take func(context.Context, *archiver.Archiver) (*snapshot.Snapshot, error)) error {
	ctx := cmd.Context()
	var parent *snapshot.Snapshot
	if !o.force {
		var err error
		if parent, _, err = findParent(cmd, g, r, o.parent, host, []string{path}); err != nil {
			return err
		}
		if parent != nil && parent.Image == nil {
			parent = nil
		}
	}
	counter := &ui.Counter{}
	a, err := archiver.New(r, archiver.Options{
		Hostname: host, Tags: o.tags, Logger: g.log, ProgramVersion: "rewind " + Version, Parent: parent,
		Progress: &backupProgress{g: g, c: counter}, DryRun: o.dryRun,
		BeforeCommit: lockedCommit(lk),
	})
	if err != nil {
		return err
	}
	prog := g.ui.StartProgress("backup", counter)
	sn, err := take(ctx, a)
	prog.Stop()
	if err != nil {
		return err
	}
	if o.dryRun {
		printDryRunSummary(g, sn, parent, a)
		return nil
	}
	if err := g.extendAfterBackup(ctx, r, sn); err != nil {
		return err
	}
	if !g.json && !g.quiet {
		printImageSummary(g, sn.Image)
	}
	printBackupSummary(g, sn, parent, a)
	return nil
}

// printImageSummary says how the blocks to read were chosen and what
// was read.
func printImageSummary(g *globals, im *snapshot.ImageInfo) {
	g.ui.Printf("%s of %s in blocks of %s, read by method %s", im.Kind, ui.Bytes(im.Size), ui.Bytes(im.BlockSize), im.Method)
	if im.Fallback != "" {
		g.ui.Printf(" (%s)", im.Fallback)
	}
	g.ui.Printf("\n")
	g.ui.Printf("Blocks: %s; holes (zeros or free space): %s; changed since the parent: %s\n",
		ui.Count(im.Blocks, "block", "blocks"), ui.Count(im.BlocksHole, "block", "blocks"), ui.Count(im.BlocksChanged, "block", "blocks"))
	g.ui.Printf("Device read: %s; free space not read: %s\n", ui.Bytes(im.BytesRead), ui.Bytes(im.BytesFree))
	if im.DirtyBitmap != "" {
		g.ui.Printf("QEMU drive %s: unchanged since the parent, not read: %s; dirty bitmap for the next backup: %s\n", im.QEMUDrive, ui.Bytes(im.BytesClean), im.DirtyBitmap)
	}
}
