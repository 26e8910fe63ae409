package prune

import (
	"context"
	"errors"
	"fmt"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// pruneInventories removes the inventory files (inventory/ folder) that
// no snapshot names. A backup reuses the inventory named by the newest
// snapshot of its host, which it reads after taking its lock; so the
// locks are listed first, and when any other lock is live nothing is
// removed (a later prune does it): a backup that took its lock after
// that listing read the snapshots after it, and finds only inventories
// that the snapshots listed here name. A backup also checks that the
// inventory it reuses is still stored right before saving its snapshot.
func pruneInventories(ctx context.Context, r *repository.Repository, opt Options, res *Result) error {
	live, err := opt.Locks(ctx)
	if err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	var unreadable bool
	sns, err := snapshot.List(ctx, r, func(id.ID, error) { unreadable = true })
	if err != nil {
		return err
	}
	if unreadable {
		// A snapshot that cannot be read may name any inventory.
		return nil
	}
	used := map[id.ID]bool{}
	for _, sn := range sns {
		if sn.Inventory != nil {
			used[*sn.Inventory] = true
		}
	}
	names, err := r.List(ctx, backend.InventoryFile)
	if err != nil {
		return fmt.Errorf("list inventory files: %w", err)
	}
	var orphans []id.ID
	for _, n := range names {
		if !used[n] {
			orphans = append(orphans, n)
		}
	}
	if len(live) > 0 {
		res.InventoriesPending = len(orphans)
		return nil
	}
	if opt.DryRun {
		res.InventoriesDeleted = len(orphans)
		return nil
	}
	for _, n := range orphans {
		h := backend.Handle{Type: backend.InventoryFile, Name: n.String()}
		err := r.Backend().Remove(ctx, h)
		switch {
		case errors.Is(err, backend.ErrLocked):
			// S3 object lock keeps it until its retention ends; a
			// later prune deletes it then.
			res.InventoriesPending++
			continue
		case err != nil && !backend.IsNotExist(err):
			return fmt.Errorf("delete an unused inventory: %w", backend.Wrap("remove", h.String(), err))
		}
		res.InventoriesDeleted++
	}
	return nil
}
