package instant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/rewind-backup/rewind/internal/qemu"
)

// jobEvent is the data of BLOCK_JOB_READY, _COMPLETED and _ERROR.
type jobEvent struct {
	Device string `json:"device"`
	Len    int64  `json:"len"`
	Offset int64  `json:"offset"`
	Error  string `json:"error"`
}

// Migrate copies the guest's whole disk (the repository's image under
// the overlay's writes) to dest, a block device or a file of at least
// the image's size, while the guest runs: blockdev-mirror with sync full,
// BLOCK_JOB_READY, then block-job-complete switches the guest's disk to
// dest. It then closes the overlay and the image on the mount: the
// guest no longer reads the repository. device says dest is a block
// device.
func (vm *VM) Migrate(ctx context.Context, dest string, device bool) error {
	file := map[string]any{"driver": "file", "filename": dest}
	if device {
		file["driver"] = "host_device"
	}
	file["node-name"] = nodeDestFile
	add := map[string]any{"driver": "raw", "node-name": nodeDest, "file": file}
	if err := vm.qmp.Execute(ctx, "blockdev-add", add, nil); err != nil {
		return fmt.Errorf("open %s in QEMU: %w", dest, err)
	}
	sub := vm.qmp.Subscribe("BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_ERROR", "BLOCK_JOB_CANCELLED")
	defer sub.Close()
	mirror := map[string]any{
		"job-id": migrateJob, "device": nodeDisk, "target": nodeDest,
		"sync": "full", "on-source-error": "stop", "on-target-error": "stop",
	}
	if err := vm.qmp.Execute(ctx, "blockdev-mirror", mirror, nil); err != nil {
		vm.qmp.Execute(context.WithoutCancel(ctx), "blockdev-del", map[string]any{"node-name": nodeDest}, nil)
		return fmt.Errorf("start copying the disk to %s: %w", dest, err)
	}
	if _, err := vm.jobEvent(ctx, sub, "BLOCK_JOB_READY"); err != nil {
		vm.qmp.Execute(context.WithoutCancel(ctx), "block-job-cancel", map[string]any{"device": migrateJob, "force": true}, nil)
		return err
	}
	if err := vm.qmp.Execute(ctx, "block-job-complete", map[string]any{"device": migrateJob}, nil); err != nil {
		return fmt.Errorf("switch the guest's disk to %s: %w", dest, err)
	}
	if _, err := vm.jobEvent(ctx, sub, "BLOCK_JOB_COMPLETED"); err != nil {
		return err
	}
	// The guest's disk is dest now; the overlay and the image it read are
	// nodes of their own that nothing uses: closing them closes the
	// image's file on the mount.
	for _, n := range []string{nodeDisk, nodeOvlFile, nodeBase, nodeBaseFile} {
		if err := vm.qmp.Execute(ctx, "blockdev-del", map[string]any{"node-name": n}, nil); err != nil {
			return fmt.Errorf("close %s after the copy: %w", n, err)
		}
	}
	return nil
}

// jobEvent waits for the migration job's event want; an error, a
// cancellation or QEMU's exit end the wait with an error.
func (vm *VM) jobEvent(ctx context.Context, sub *qemu.Subscription, want string) (jobEvent, error) {
	for {
		e, err := sub.Next(ctx, nil)
		if err != nil {
			return jobEvent{}, fmt.Errorf("copy of the disk: %w", err)
		}
		var d jobEvent
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return jobEvent{}, fmt.Errorf("QEMU event %s: %w", e.Name, err)
		}
		if d.Device != migrateJob {
			continue
		}
		switch {
		case e.Name == "BLOCK_JOB_ERROR":
			return d, fmt.Errorf("copy of the disk failed (QEMU: %s)", e.Data)
		case e.Name == "BLOCK_JOB_CANCELLED":
			return d, errors.New("copy of the disk was cancelled")
		case e.Name == "BLOCK_JOB_COMPLETED" && d.Error != "":
			return d, fmt.Errorf("copy of the disk failed: %s", d.Error)
		case e.Name == want:
			return d, nil
		}
	}
}

// PrepareDest checks or creates the migration target: a block device of
// at least size bytes, or a new file, made sparse of size bytes. It
// returns whether dest is a device.
func PrepareDest(dest string, size int64) (bool, error) {
	st, err := os.Stat(dest)
	if err == nil && st.Mode()&os.ModeDevice != 0 {
		f, err := os.OpenFile(dest, os.O_RDWR|os.O_EXCL, 0)
		if err != nil {
			return true, fmt.Errorf("--migrate %s: %w (is it mounted or in use?)", dest, err)
		}
		defer f.Close()
		n, err := f.Seek(0, 2)
		if err != nil {
			return true, fmt.Errorf("--migrate %s: size: %w", dest, err)
		}
		if n < size {
			return true, fmt.Errorf("--migrate %s holds %d bytes, smaller than the %d-byte image: give a larger device", dest, n, size)
		}
		return true, nil
	}
	if err == nil {
		return false, fmt.Errorf("--migrate %s exists: give a new file name or a block device (an existing file is never overwritten)", dest)
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false, fmt.Errorf("--migrate: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(dest)
		return false, fmt.Errorf("--migrate %s: %w", dest, err)
	}
	return false, f.Close()
}
