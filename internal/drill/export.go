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

// RecoverFunc rebuilds the recorded machine onto target (a loop device
// over the work file), as recovery.Recover does.
type RecoverFunc func(ctx context.Context, target recovery.Target) (*recovery.Report, error)

// ExportOptions say what ExportVM writes.
type ExportOptions struct {
	// Out is the qcow2 file to write; it must not exist.
	Out string
	// Size is the VM disk's size in bytes; 0 is the recorded disk's.
	Size int64
	// Inventory is the snapshot's; it says which disk to rebuild.
	Inventory *inventory.Document
	Recover   RecoverFunc
	Log       *slog.Logger
}

// Export is what ExportVM wrote.
type Export struct {
	Out  string
	Size int64
	// BytesWritten is what Out takes on disk.
	BytesWritten int64
	Phases       []event.Phase
	Recovery     *recovery.Report
}

// RecordedDisk is the one disk of the inventory that a VM disk stands
// for: the disk with a partition table. Machines of several disks are
// refused for now.
func RecordedDisk(d *inventory.Document) (*inventory.Disk, error) {
	var disks []*inventory.Disk
	var names []string
	for i := range d.Disks {
		if d.Disks[i].Table != nil {
			disks = append(disks, &d.Disks[i])
			names = append(names, d.Disks[i].Path)
		}
	}
	switch len(disks) {
	case 0:
		return nil, errors.New("the snapshot's inventory records no disk with a partition table: nothing to rebuild as a VM disk (back the machine up with --system-root DIR --disks /dev/X)")
	case 1:
		return disks[0], nil
	}
	return nil, fmt.Errorf("the snapshot's machine had %d disks (%s): export --vm makes a VM of one disk; rebuild several disks with rewind recover --disk onto loop devices over files (docs/RECOVERY.md)", len(disks), strings.Join(names, ", "))
}

// ExportVM rebuilds the snapshot's machine onto a new VM disk: a sparse
// raw work file next to Out, attached as a loop device, recovered onto,
// detached and converted to qcow2 (holes stay unallocated). On failure
// nothing is left: neither Out, nor the work file, nor the loop device.
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
	if _, err := os.Lstat(out); err == nil {
		return nil, fmt.Errorf("%s exists: give a new file name (export never overwrites)", out)
	}
	if _, err := qemu.LookPath(qemu.ImgProgram); err != nil {
		return nil, err
	}
	disk, err := RecordedDisk(o.Inventory)
	if err != nil {
		return nil, err
	}
	size := o.Size
	if size == 0 {
		size = disk.SizeBytes
	}
	if size <= 0 || size%512 != 0 {
		return nil, fmt.Errorf("VM disk size %d: give a positive multiple of 512 bytes (--size)", size)
	}
	ex = &Export{Out: out, Size: size}
	work := out + ".rewind-work.raw"
	f, err := os.OpenFile(work, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the work file: %w", err)
	}
	terr := f.Truncate(size)
	if cerr := f.Close(); terr == nil {
		terr = cerr
	}
	defer os.Remove(work)
	if terr != nil {
		return nil, fmt.Errorf("the work file %s: %w", work, terr)
	}
	defer func() {
		if err != nil {
			os.Remove(out)
		}
	}()

	t0 := time.Now()
	dev, err := loopdev.Attach(ctx, work)
	if err != nil {
		return nil, err
	}
	log.Info("export --vm: work file attached", "device", dev, "size", size)
	detached := false
	detach := func() error {
		if detached {
			return nil
		}
		detached = true
		return loopdev.Detach(context.WithoutCancel(ctx), dev)
	}
	defer detach()
	rep, err := o.Recover(ctx, recovery.Target{Path: dev, SizeBytes: size, SectorSize: 512})
	ex.Recovery = rep
	if err != nil {
		return ex, err
	}
	if err := detach(); err != nil {
		return ex, err
	}
	ex.Phases = append(ex.Phases, event.Phase{Name: PhaseRecover, Duration: time.Since(t0)})

	t1 := time.Now()
	if err := qemu.Convert(ctx, work, qemu.FormatRaw, out, qemu.FormatQcow2); err != nil {
		return ex, err
	}
	ex.Phases = append(ex.Phases, event.Phase{Name: PhaseConvert, Duration: time.Since(t1)})
	st, err := os.Stat(out)
	if err != nil {
		return ex, err
	}
	ex.BytesWritten = st.Size()
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ex.BytesWritten = s.Blocks * 512
	}
	return ex, nil
}
