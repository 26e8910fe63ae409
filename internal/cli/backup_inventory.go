package cli

import (
	"context"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// inventoryRun collects the machine's inventory while a backup reads
// files, and records it in the snapshot before it is saved.
type inventoryRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	doc    *inventory.Document
	err    error
	took   time.Duration
}

// startInventory starts collecting the inventory of this machine for
// host.
func startInventory(ctx context.Context, host string) *inventoryRun {
	return startInventoryOf(ctx, host, inventory.Sources{})
}

// startInventoryOf starts collecting the inventory of the system src
// describes (backup --system-root, --disks) for host.
func startInventoryOf(ctx context.Context, host string, src inventory.Sources) *inventoryRun {
	ctx, cancel := context.WithCancel(ctx)
	ir := &inventoryRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ir.done)
		start := time.Now()
		ir.doc, ir.err = inventory.Collect(ctx, src, host)
		ir.took = time.Since(start)
	}()
	return ir
}

// stop ends the collection if it still runs, and waits for it.
func (ir *inventoryRun) stop() {
	ir.cancel()
	<-ir.done
}

// attach waits for the collection and records the inventory in sn: the
// newest inventory of the host when its content is the same, else a new
// file. sns are the snapshots the backup listed after taking its lock
// (nil: Record lists them). An inventory that cannot be stored is a
// warning: the backup matters more than its description.
func (ir *inventoryRun) attach(ctx context.Context, g *globals, r *repository.Repository, sns []*snapshot.Snapshot, sn *snapshot.Snapshot) error {
	select {
	case <-ir.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if ir.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.log.Warn("inventory not recorded", "err", ir.err)
		return nil
	}
	for _, w := range ir.doc.Warnings {
		g.log.Info("inventory incomplete", "warning", w)
	}
	name, isNew, err := inventory.Record(ctx, r, ir.doc, sns, func(err error) {
		g.log.Warn("previous inventory unreadable; storing a new one", "err", err)
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.log.Warn("inventory not stored", "err", err)
		return nil
	}
	sn.Inventory = &name
	g.log.Info("inventory recorded", "inventory", name.Short(), "new", isNew, "collected_in", ir.took.Round(time.Millisecond))
	return nil
}

// watchInventory is the inventory `rewind watch` records once at start
// and names in every snapshot it makes: its captures come every few
// seconds, and the machine's layout rarely changes within a watch.
type watchInventory struct {
	doc  *inventory.Document
	name id.ID
}

// recordWatchInventory collects and records the inventory for a watch
// (reusing the host's last one when unchanged). It returns nil, with a
// warning logged, when the inventory cannot be recorded.
func recordWatchInventory(ctx context.Context, g *globals, r *repository.Repository, host string) (*watchInventory, error) {
	ir := startInventory(ctx, host)
	sn := &snapshot.Snapshot{}
	err := ir.attach(ctx, g, r, nil, sn)
	ir.stop()
	if err != nil {
		return nil, err
	}
	if sn.Inventory == nil {
		return nil, nil
	}
	return &watchInventory{doc: ir.doc, name: *sn.Inventory}, nil
}

// attach names the watch's inventory in sn, storing it again if a prune
// removed it since (no snapshot named it yet).
func (w *watchInventory) attach(ctx context.Context, g *globals, r *repository.Repository, sn *snapshot.Snapshot) error {
	name, isNew, err := inventory.Store(ctx, r, w.doc, w.doc, w.name)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.log.Warn("inventory not stored", "err", err)
		return nil
	}
	if isNew {
		w.name = name
	}
	sn.Inventory = &name
	return nil
}
