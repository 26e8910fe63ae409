package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/loopdev"
	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/recovery"
)

// Phases of ExportVM, inside a drill's restore phase.
const (
	PhaseRecover = "recover" // recovery onto the loop-attached work file
	PhaseConvert = "convert" // qemu-img convert of the work file to qcow2
)

// RecoverFunc rebuilds the recorded machine onto targets (loop devices
// over the work files), as recovery.Recover does: one target for each
// recorded disk, in the inventory's order.
type RecoverFunc func(ctx context.Context, targets []recovery.Target) (*recovery.Report, error)

// ExportOptions say what ExportVM writes.
type ExportOptions struct {
	// Out is the qcow2 file of the boot disk; it must not exist. The
	// other disks of a machine of several go next to it (DiskFile).
	Out string
	// Size is the boot disk's size in bytes; 0 is the recorded disk's.
	Size int64
	// Sizes, when given, size the VM disks in the order of the files
	// (the boot disk first, then the others in the inventory's order);
	// 0 keeps a recorded size. It replaces Size; more sizes than disks
	// is an error.
	Sizes []int64
	// Inventory is the snapshot's; it says which disks to rebuild.
	Inventory *inventory.Document
	Recover   RecoverFunc
	Log       *slog.Logger
}

// Export is what ExportVM wrote.
type Export struct {
	// Out, Size and BytesWritten are the boot disk's.
	Out  string
	Size int64
	// BytesWritten is what Out takes on disk.
	BytesWritten int64
	// Disks are every VM disk written, the boot disk first.
	Disks    []ExportDisk
	Phases   []event.Phase
	Recovery *recovery.Report
}

// ExportDisk is one VM disk of an export.
type ExportDisk struct {
	Out          string
	Size         int64
	BytesWritten int64
	// Recorded is the recorded disk it stands for ("/dev/sda").
	Recorded string
}

// RecordedDisks are the disks of the inventory that VM disks stand for
// (those with a partition table), the boot disk first (BootDisk), then
// the others in the inventory's order; order maps each to its place in
// the inventory's order, which is how recover pairs them with targets.
func RecordedDisks(d *inventory.Document) (disks []*inventory.Disk, order []int, err error) {
	var all []*inventory.Disk
	for i := range d.Disks {
		if d.Disks[i].Table != nil {
			all = append(all, &d.Disks[i])
		}
	}
	if len(all) == 0 {
		return nil, nil, errors.New("the snapshot's inventory records no disk with a partition table: nothing to rebuild as a VM disk (back the machine up with --system-root DIR --disks /dev/X)")
	}
	boot := BootDisk(d, all)
	disks, order = []*inventory.Disk{all[boot]}, []int{boot}
	for i, dk := range all {
		if i != boot {
			disks, order = append(disks, dk), append(order, i)
		}
	}
	return disks, order, nil
}

// BootDisk is the index in disks of the disk the machine boots from: the
// one whose recorded partitions hold /boot, else /, else the first.
func BootDisk(d *inventory.Document, disks []*inventory.Disk) int {
	holds := func(target string) int {
		for _, fs := range d.Filesystems {
			for _, m := range fs.Mounts {
				if m.Target != target {
					continue
				}
				for i, dk := range disks {
					for _, p := range dk.Table.Partitions {
						if p.Path == fs.Device {
							return i
						}
					}
				}
			}
		}
		return -1
	}
	for _, t := range []string{"/boot", "/"} {
		if i := holds(t); i >= 0 {
			return i
		}
	}
	return 0
}

// DiskFile is the file of the n-th VM disk (0 the boot disk) of an
// export to out: out itself, then out with "-2", "-3"... before its
// extension (web1.qcow2, web1-2.qcow2).
func DiskFile(out string, n int) string {
	if n == 0 {
		return out
	}
	ext := filepath.Ext(out)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(out, ext), n+1, ext)
}

// ExportVM rebuilds the snapshot's machine onto new VM disks, one for
// each recorded disk: sparse raw work files next to Out, each attached
// as a loop device, recovered onto in one run (so mounts across disks
// are rebuilt together), detached and converted to qcow2 (holes stay
// unallocated). On failure nothing is left: no output, no work file, no
// loop device.
func ExportVM(ctx context.Context, o ExportOptions) (ex *Export, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Recover == nil || o.Inventory == nil {
		return nil, errors.New("export --vm: no inventory or recovery given")
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	if _, err := qemu.LookPath(qemu.ImgProgram); err != nil {
		return nil, err
	}
	disks, order, err := RecordedDisks(o.Inventory)
	if err != nil {
		return nil, err
	}
	sizes := o.Sizes
	if len(sizes) == 0 && o.Size != 0 {
		sizes = []int64{o.Size}
	}
	if len(sizes) > len(disks) {
		return nil, fmt.Errorf("%d sizes for %d disks: the snapshot's machine had %d (%s); give --size at most once per disk, the boot disk first", len(sizes), len(disks), len(disks), diskPaths(disks))
	}
	ex = &Export{Out: out}
	for i, dk := range disks {
		f := DiskFile(out, i)
		if _, err := os.Lstat(f); err == nil {
			return nil, fmt.Errorf("%s exists: give a new file name (export never overwrites)", f)
		}
		size := dk.SizeBytes
		if i < len(sizes) && sizes[i] != 0 {
			size = sizes[i]
		}
		if size <= 0 || size%512 != 0 {
			return nil, fmt.Errorf("VM disk size %d of %s: give a positive multiple of 512 bytes (--size)", size, dk.Path)
		}
		ex.Disks = append(ex.Disks, ExportDisk{Out: f, Size: size, Recorded: dk.Path})
	}
	ex.Size = ex.Disks[0].Size
	if len(disks) > 1 {
		log.Info("export --vm: a machine of several disks", "disks", diskPaths(disks), "boot_disk", disks[0].Path)
	}

	// Work files and their loop devices; all removed and detached when
	// this returns, the outputs too on failure.
	var works, devs []string
	outs := ex.Disks
	defer func() {
		for _, w := range works {
			os.Remove(w)
		}
		if err != nil {
			for _, d := range outs {
				os.Remove(d.Out)
			}
		}
	}()
	detachAll := func() error {
		var first error
		for _, d := range devs {
			if e := loopdev.Detach(context.WithoutCancel(ctx), d); e != nil && first == nil {
				first = e
			}
		}
		devs = nil
		return first
	}
	defer detachAll()

	t0 := time.Now()
	targets := make([]recovery.Target, len(disks))
	for i, d := range ex.Disks {
		work := d.Out + ".rewind-work.raw"
		f, err := os.OpenFile(work, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("the work file: %w", err)
		}
		works = append(works, work)
		terr := f.Truncate(d.Size)
		if cerr := f.Close(); terr == nil {
			terr = cerr
		}
		if terr != nil {
			return nil, fmt.Errorf("the work file %s: %w", work, terr)
		}
		dev, err := loopdev.Attach(ctx, work)
		if err != nil {
			return nil, err
		}
		devs = append(devs, dev)
		log.Info("export --vm: work file attached", "device", dev, "size", d.Size, "recorded_disk", d.Recorded)
		targets[order[i]] = recovery.Target{Path: dev, SizeBytes: d.Size, SectorSize: 512}
	}
	rep, err := o.Recover(ctx, targets)
	ex.Recovery = rep
	if err != nil {
		return ex, err
	}
	if err := detachAll(); err != nil {
		return ex, err
	}
	ex.Phases = append(ex.Phases, event.Phase{Name: PhaseRecover, Duration: time.Since(t0)})

	t1 := time.Now()
	for i := range ex.Disks {
		d := &ex.Disks[i]
		if err := qemu.Convert(ctx, works[i], qemu.FormatRaw, d.Out, qemu.FormatQcow2); err != nil {
			return ex, err
		}
		st, err := os.Stat(d.Out)
		if err != nil {
			return ex, err
		}
		d.BytesWritten = st.Size()
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			d.BytesWritten = s.Blocks * 512
		}
	}
	ex.Phases = append(ex.Phases, event.Phase{Name: PhaseConvert, Duration: time.Since(t1)})
	ex.BytesWritten = ex.Disks[0].BytesWritten
	return ex, nil
}

func diskPaths(disks []*inventory.Disk) string {
	var n []string
	for _, d := range disks {
		n = append(n, d.Path)
	}
	return strings.Join(n, ", ")
}
