package cli

import (
	"context"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/recovery"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// recoverOnto rebuilds the snapshot's machine onto targets, the loop
// devices of the VM disks being made (one per recorded disk, in the
// inventory's order). The snapshot holds the system at its
// own paths (backup --system-root); the boot mode is the recorded one.
func recoverOnto(ctx context.Context, g *globals, r *repository.Repository, sn *snapshot.Snapshot, doc *inventory.Document, targets []recovery.Target) (*recovery.Report, error) {
	return recovery.Recover(ctx, recovery.Options{Repo: r, Snapshot: sn, Inventory: doc, Targets: targets,
		BootMode: bootMode(doc), Log: g.log})
}
