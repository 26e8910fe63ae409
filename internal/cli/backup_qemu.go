package cli

// backup --qemu-qmp SOCKET DRIVE: a drive of a running QEMU guest, read
// through QEMU's own NBD export with a persistent dirty bitmap
// (archiver.SnapshotQEMU, docs/IMAGES.md "Running QEMU guests").

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// checkQEMU validates --qemu-qmp and its one DRIVE argument, and
// returns the path the drive is stored under, its kind and the block
// size.
func (o *imageOpts) checkQEMU(args []string, streamOn bool) (string, string, int64, error) {
	switch {
	case o.device != "" || o.image != "":
		return "", "", 0, errors.New("--qemu-qmp excludes --device and --image: back up one at a time")
	case streamOn:
		return "", "", 0, errors.New("--qemu-qmp cannot be combined with --stdin or --stdin-from-command")
	case o.fullRead:
		return "", "", 0, errors.New("--full-read does not apply to --qemu-qmp: QEMU says which blocks hold data; the first backup, or one whose parent's bitmap is gone, reads all of them")
	case len(args) != 1 || args[0] == "":
		return "", "", 0, fmt.Errorf("--qemu-qmp SOCKET takes one DRIVE argument, the drive ID or block node name (query-block), got %q", args)
	}
	var bs int64
	var err error
	if o.blockSize != "" {
		if bs, err = parseByteSize(o.blockSize); err != nil {
			return "", "", 0, fmt.Errorf("--block-size: %w", err)
		}
	}
	sock, err := filepath.Abs(o.qemuQMP)
	if err != nil {
		return "", "", 0, err
	}
	if fi, err := os.Stat(sock); err != nil {
		return "", "", 0, fmt.Errorf("--qemu-qmp %s: %w (start QEMU with -qmp unix:%s,server=on,wait=off)", sock, err, sock)
	} else if fi.Mode()&os.ModeSocket == 0 {
		return "", "", 0, fmt.Errorf("--qemu-qmp %s: not a socket (start QEMU with -qmp unix:%s,server=on,wait=off)", sock, sock)
	}
	return archiver.QEMUImagePath(sock, args[0]), snapshot.ImageQEMU, bs, nil
}

// runBackupQEMU stores the drive as one file of a new snapshot. r is
// open, locked by lk, with its index loaded.
func runBackupQEMU(cmd *cobra.Command, g *globals, o *backupOpts, r *repository.Repository, lk *lock.Lock, host string, args []string) error {
	p, _, bs, err := o.img.check(args, o.stream.on())
	if err != nil {
		return err
	}
	sock, _ := filepath.Abs(o.img.qemuQMP)
	return storeImage(cmd, g, o, r, lk, host, p, func(ctx context.Context, a *archiver.Archiver) (*snapshot.Snapshot, error) {
		return a.SnapshotQEMU(ctx, archiver.QEMUOptions{Socket: sock, Drive: args[0], BlockSize: bs, TempDir: o.img.tempDir})
	})
}
