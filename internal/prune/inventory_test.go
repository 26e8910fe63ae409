package prune

import (
	"context"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// saveInventory stores a small inventory document for host.
func saveInventory(t *testing.T, be backend.Backend, host, kernel string) id.ID {
	t.Helper()
	r := open(t, be, false)
	name, err := inventory.Save(context.Background(), r, &inventory.Document{Version: 1, Host: host, Kernel: inventory.Kernel{Release: kernel}})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// backupNaming backs up dir into a snapshot that names the inventory inv.
func backupNaming(t *testing.T, be backend.Backend, dir string, inv id.ID) *snapshot.Snapshot {
	t.Helper()
	r := open(t, be, true)
	a, err := archiver.New(r, archiver.Options{BeforeSave: func(_ context.Context, sn *snapshot.Snapshot) error {
		sn.Inventory = &inv
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func storedInventories(t *testing.T, be backend.Backend) []id.ID {
	t.Helper()
	names, err := open(t, be, false).List(context.Background(), backend.InventoryFile)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(names, func(a, b id.ID) int { return slices.Compare(a[:], b[:]) })
	return names
}

// TestPruneInventories: prune deletes the inventory files no snapshot
// names, keeps those a kept snapshot names, and waits while other locks
// are held.
func TestPruneInventories(t *testing.T) {
	be := mem.New()
	initRepo(t, be)
	dir := t.TempDir()
	writeTree(t, dir, 1, 3, 1000)
	kept := saveInventory(t, be, "h", "6.1")
	gone := saveInventory(t, be, "h", "6.2")
	orphan := saveInventory(t, be, "h", "6.3") // never named
	sn1 := backupNaming(t, be, dir, kept)
	backupNaming(t, be, dir, kept)
	sn3 := backupNaming(t, be, dir, gone)
	_ = sn1
	forget(t, be, sn3)

	// Another process holds a lock: nothing is deleted yet.
	f := &fence{}
	f.hold("backup")
	res := runPrune(t, be, f, Options{})
	if res.InventoriesDeleted != 0 || res.InventoriesPending != 2 || len(storedInventories(t, be)) != 3 {
		t.Fatalf("with a lock held: deleted %d, pending %d, stored %v", res.InventoriesDeleted, res.InventoriesPending, storedInventories(t, be))
	}
	f.release("backup")

	// A dry run counts without deleting.
	res = runPrune(t, be, f, Options{DryRun: true})
	if res.InventoriesDeleted != 2 || len(storedInventories(t, be)) != 3 {
		t.Fatalf("dry run: deleted %d, stored %v", res.InventoriesDeleted, storedInventories(t, be))
	}

	res = runPrune(t, be, f, Options{})
	if res.InventoriesDeleted != 2 {
		t.Errorf("deleted %d inventory files, want 2", res.InventoriesDeleted)
	}
	if got := storedInventories(t, be); !slices.Equal(got, []id.ID{kept}) {
		t.Errorf("stored after prune %v, want only %v (not %v, %v)", got, kept, gone, orphan)
	}
	if _, err := inventory.Load(context.Background(), open(t, be, false), kept); err != nil {
		t.Error(err)
	}
}
