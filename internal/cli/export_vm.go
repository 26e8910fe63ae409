package cli

// rewind export --vm: P2V, the machine a files snapshot recorded rebuilt
// onto a new qcow2 VM disk (internal/drill.ExportVM over
// internal/recovery).

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/drill"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/recovery"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// machineSnapshot resolves ref (an ID, "latest" or "") to a snapshot with
// an inventory: "latest" and "" are the newest one of host.
func machineSnapshot(ctx context.Context, r *repository.Repository, ref, host string) (*snapshot.Snapshot, *inventory.Document, error) {
	sn, doc, err := inventory.OfSnapshot(ctx, r, ref, host)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: a VM is rebuilt from the inventory a files backup records", err)
	}
	return sn, doc, nil
}

// snapshotHost is the host --host names (its first), else this machine.
func snapshotHost(sf snapFilter) string {
	if len(sf.hosts) > 0 {
		return sf.hosts[0]
	}
	return inventoryHost("")
}

// bootMode is the recorded boot mode, bios when the inventory says none.
func bootMode(doc *inventory.Document) string {
	if doc.Boot.Mode == "" {
		return "bios"
	}
	return doc.Boot.Mode
}

// exportVM rebuilds sn onto new VM disks, out the boot disk; sizes are
// the disks' in the order of the files (nil: the recorded ones).
func (g *globals) exportVM(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, doc *inventory.Document, out string, sizes []int64) (*drill.Export, error) {
	return drill.ExportVM(ctx, drill.ExportOptions{Out: out, Sizes: sizes, Inventory: doc, Log: g.log,
		Recover: func(ctx context.Context, t []recovery.Target) (*recovery.Report, error) {
			return recoverOnto(ctx, g, r, sn, doc, t)
		}})
}

func (g *globals) runExportVM(ctx context.Context, ref, out string, sizeArgs []string, sf snapFilter) error {
	var sizes []int64
	for _, a := range sizeArgs {
		n, err := parseSize(a)
		if err != nil || n <= 0 {
			return fmt.Errorf("export: --size %q: give a size such as 20G", a)
		}
		sizes = append(sizes, n)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("export --vm: rebuilding a machine needs root (loop devices, mkfs, mount)")
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("export: %s exists: give a new file name (export never overwrites)", out)
	}
	if _, err := qemu.LookPath(qemu.ImgProgram); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	t0 := time.Now()
	r, done, err := g.openLocked(ctx, lock.Shared, "export --vm", true)
	if err != nil {
		return err
	}
	defer done()
	sn, doc, err := machineSnapshot(ctx, r, ref, snapshotHost(sf))
	if err != nil {
		return fmt.Errorf("export --vm: %w", err)
	}
	ex, err := g.exportVM(ctx, r, sn, doc, out, sizes)
	if err != nil {
		return fmt.Errorf("export --vm: %w", err)
	}
	sum := ExportSummary{MessageType: "summary", SnapshotID: sn.ID.String(), Target: ex.Out, Format: qemu.FormatQcow2,
		Size: ex.Size, BytesWritten: ex.BytesWritten, DurationSeconds: time.Since(t0).Seconds(),
		BootMode: bootMode(doc), Host: sn.Hostname, Phases: ex.Phases}
	for _, d := range ex.Disks {
		sum.Disks = append(sum.Disks, ExportDisk{Target: d.Out, Size: d.Size, BytesWritten: d.BytesWritten, RecordedDisk: d.Recorded})
	}
	if g.json {
		g.ui.JSONLine(sum)
		return nil
	}
	var ph []string
	for _, p := range ex.Phases {
		ph = append(ph, fmt.Sprintf("%s %.1f s", p.Name, p.Duration.Seconds()))
	}
	g.ui.Printf("rebuilt %s of %s (%s) as VM disk %s (qcow2, %s, %s on disk) in %.1f s: %s\n",
		sn.ID.Short(), sn.Hostname, sum.BootMode, ex.Out, ui.Bytes(ex.Size), ui.Bytes(ex.BytesWritten), sum.DurationSeconds, strings.Join(ph, ", "))
	if len(ex.Disks) > 1 {
		g.ui.Printf("the machine had %s; attach them all, %s first (the boot disk):\n", ui.Count(int64(len(ex.Disks)), "disk", "disks"), ex.Out)
		for _, d := range ex.Disks {
			g.ui.Printf("  %s  %s  (recorded %s)\n", d.Out, ui.Bytes(d.Size), d.Recorded)
		}
	}
	if sum.BootMode == "uefi" {
		g.ui.Printf("boot it with UEFI firmware (OVMF), e.g. qemu-system-x86_64 -bios /usr/share/OVMF/OVMF_CODE.fd ...\n")
	}
	return nil
}
