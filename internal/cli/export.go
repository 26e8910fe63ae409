package cli

// rewind export --qcow2: a device or image snapshot written as a
// standalone qcow2 disk (qemu-img convert from a private mount of the
// repository, docs/IMAGES.md).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/instant"
	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/ui"
)

// ExportSummary is the JSON line of `export` (docs/JSON.md).
type ExportSummary struct {
	MessageType string `json:"message_type"`
	SnapshotID  string `json:"snapshot_id"`
	Target      string `json:"target"`
	Format      string `json:"format"`
	// Size is the disk's size; BytesWritten what the file takes on disk.
	Size            int64   `json:"size"`
	BytesWritten    int64   `json:"bytes_written"`
	DurationSeconds float64 `json:"duration_seconds"`
	// With --vm: the boot mode of the rebuilt machine, the snapshot's
	// host and the timed phases (recover onto the work file, convert).
	BootMode string        `json:"boot_mode,omitempty"`
	Host     string        `json:"hostname,omitempty"`
	Phases   []event.Phase `json:"phases,omitempty"`
	// With --vm: every VM disk written, the boot disk (Target) first.
	Disks []ExportDisk `json:"disks,omitempty"`
}

// ExportDisk is one VM disk of `export --vm` (docs/JSON.md).
type ExportDisk struct {
	Target       string `json:"target"`
	Size         int64  `json:"size"`
	BytesWritten int64  `json:"bytes_written"`
	RecordedDisk string `json:"recorded_disk"`
}

func newExportCmd(g *globals) *cobra.Command {
	var sf snapFilter
	var out, vm string
	var size []string
	cmd := &cobra.Command{
		Use:   "export --qcow2 OUT SNAPSHOT[:IMAGE] | --vm OUT [--size N] [SNAPSHOT]",
		Short: "Write a snapshot as a standalone qcow2 disk, or rebuild a machine as a VM disk",
		Long: `Write the disk of a device or image snapshot (backup --device or --image) as
a standalone qcow2 file OUT, which QEMU, libvirt or Proxmox boot without
the repository. Holes and free space stay unallocated in OUT. OUT must not
exist. The image is read through a private read-only FUSE mount of the
repository by qemu-img convert: needs qemu-utils and FUSE (/dev/fuse,
fuse3).

IMAGE, when given, must name the snapshot's image (its path or file name).

--vm OUT (P2V) rebuilds the machine a files snapshot recorded (its
inventory: partition table, filesystems with their UUIDs and labels, boot
loader) onto a new VM disk OUT in qcow2, ready to boot under QEMU/KVM or to
import into a hypervisor: the same recovery as rewind recover, onto a
sparse work file next to OUT attached as a loop device, then converted.
SNAPSHOT defaults to the newest snapshot with an inventory of this host
(or of --host). The disk's size is the recorded disk's unless --size says
(the last partition grows or shrinks to fit).

A machine of several disks (system and data) becomes one qcow2 per
recorded disk: OUT is the boot disk (the one holding /boot or /, else the
first), the others are OUT with -2, -3... before the extension
(web1.qcow2, web1-2.qcow2, in the inventory's order), recovered together
so fstab's mounts across disks are rebuilt. --size may be repeated, in
the order of the files: the first sizes OUT, the second OUT-2 and so on;
disks without one keep their recorded size. Attach all of them to the VM,
OUT as its boot disk.

Needs root, losetup, sfdisk, the mkfs tools, GRUB and qemu-img
(docs/RECOVERY.md). On failure nothing is left behind.`,
		Example: `  rewind export --qcow2 /var/lib/libvirt/images/web1.qcow2 latest --tag image
  rewind export --qcow2 web1.qcow2 4f2a91c3 --json
  rewind export --vm /var/lib/libvirt/images/web1.qcow2 --host web1
  rewind export --vm web1.qcow2 --size 20G 4f2a91c3 --json
  rewind export --vm web1.qcow2 --size 20G --size 100G --host web1`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			if vm != "" {
				if out != "" {
					return errors.New("export: give --qcow2 (an image snapshot) or --vm (a machine), not both")
				}
				return g.runExportVM(cmd.Context(), arg, vm, size, sf)
			}
			if len(size) > 0 {
				return errors.New("export: --size is for --vm")
			}
			if arg == "" {
				return errors.New("export: name the snapshot to export (an ID, or latest)")
			}
			return g.runExport(cmd.Context(), arg, out, sf)
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&out, "qcow2", "", "write the qcow2 disk to `OUT` (a new file)")
	cmd.Flags().StringVar(&vm, "vm", "", "rebuild the snapshot's machine as a VM disk `OUT` (qcow2, a new file)")
	cmd.Flags().StringArrayVar(&size, "size", nil, "with --vm: the VM disk's `size` (20G; default the recorded disk's); repeat it for the disks of a machine of several, in the order of the files")
	return cmd
}

func (g *globals) runExport(ctx context.Context, arg, out string, sf snapFilter) error {
	if out == "" {
		return errors.New("export: give --qcow2 OUT, the qcow2 file to write (or --vm OUT to rebuild a machine)")
	}
	out, _ = filepath.Abs(out)
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("export: %s exists: give a new file name (export never overwrites)", out)
	}
	if _, err := qemu.LookPath(qemu.ImgProgram); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := instant.FUSEReady(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	t0 := time.Now()
	r, sn, err := g.openImageSnapshot(ctx, "export", arg, sf.filter())
	if err != nil {
		return err
	}
	defer r.done()
	ex, err := instant.Expose(ctx, r.repo, sn, "", func(msg string) { g.ui.Warnf("export: repository read: %s\n", msg) })
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer ex.Unmount()
	if err := qemu.Convert(ctx, ex.File, qemu.FormatRaw, out, qemu.FormatQcow2); err != nil {
		os.Remove(out)
		return fmt.Errorf("export: %w", err)
	}
	st, err := os.Stat(out)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	sum := ExportSummary{MessageType: "summary", SnapshotID: sn.ID.String(), Target: out, Format: qemu.FormatQcow2,
		Size: sn.Image.Size, BytesWritten: diskUsage(st), DurationSeconds: time.Since(t0).Seconds()}
	if g.json {
		g.ui.JSONLine(sum)
		return nil
	}
	g.ui.Printf("exported %s (%s) to %s (qcow2, %s on disk) in %.1f s\n", sn.ID.Short(), ui.Bytes(sum.Size), out, ui.Bytes(sum.BytesWritten), sum.DurationSeconds)
	return nil
}

// diskUsage is what a file takes on disk (its allocated blocks).
func diskUsage(st os.FileInfo) int64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Blocks * 512
	}
	return st.Size()
}
