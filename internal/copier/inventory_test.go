package copier_test

import (
	"context"
	"testing"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// backupWithInventory backs up dir into r recording doc, reused from the
// host's last snapshot when unchanged, as the CLI does.
func backupWithInventory(t *testing.T, r *repository.Repository, dir string, doc *inventory.Document) *snapshot.Snapshot {
	t.Helper()
	a, err := archiver.New(r, archiver.Options{Hostname: "web1", BeforeSave: func(ctx context.Context, sn *snapshot.Snapshot) error {
		name, _, err := inventory.Record(ctx, r, doc, nil, nil)
		sn.Inventory = &name
		return err
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

// TestCopyCarriesInventory: copies name an inventory of the destination
// with the source's content, stored once per content.
func TestCopyCarriesInventory(t *testing.T) {
	ctx := context.Background()
	src := openRepo(t, newRepo(t, repository.InitOptions{}, nil), nil)
	dst := openRepo(t, newRepo(t, repository.InitOptions{}, nil), nil)
	dir := t.TempDir()
	writeData(t, dir, 1)
	v1 := &inventory.Document{Version: 1, Host: "web1", Kernel: inventory.Kernel{Release: "6.1.0-17"}}
	v2 := &inventory.Document{Version: 1, Host: "web1", Kernel: inventory.Kernel{Release: "6.1.0-18"}}
	a := backupWithInventory(t, src, dir, v1)
	b := backupWithInventory(t, src, dir, v1)
	c := backupWithInventory(t, src, dir, v2)
	if *a.Inventory != *b.Inventory || *b.Inventory == *c.Inventory {
		t.Fatalf("source inventories %s %s %s", a.Inventory, b.Inventory, c.Inventory)
	}
	_, res := copyAll(t, src, dst)
	if len(res) != 3 {
		t.Fatalf("copied %d", len(res))
	}
	var names []string
	for i, want := range []*inventory.Document{v1, v1, v2} {
		if res[i].InventoryError != nil {
			t.Fatal(res[i].InventoryError)
		}
		cp, err := snapshot.Load(ctx, dst, res[i].CopyID)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Inventory == nil {
			t.Fatalf("copy %d names no inventory", i)
		}
		got, err := inventory.Load(ctx, dst, *cp.Inventory)
		if err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		if !inventory.SameContent(got, want) {
			t.Errorf("copy %d: inventory %+v, want %+v", i, got.Kernel, want.Kernel)
		}
		names = append(names, cp.Inventory.String())
	}
	if names[0] != names[1] || names[1] == names[2] {
		t.Errorf("destination inventories %v: want the first two shared", names)
	}
	stored, err := dst.List(ctx, backend.InventoryFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 {
		t.Errorf("destination holds %d inventory files, want 2", len(stored))
	}
}
