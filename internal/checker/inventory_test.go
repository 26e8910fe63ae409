package checker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// TestCheckInventories: check loads each inventory a snapshot names, and
// reports one that is missing or does not decrypt.
func TestCheckInventories(t *testing.T) {
	ctx := context.Background()
	r, be := newPackedRepo(t, 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Save(ctx, r, &inventory.Document{Version: 1, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		a, err := archiver.New(r, archiver.Options{BeforeSave: func(_ context.Context, sn *snapshot.Snapshot) error {
			sn.Inventory = &inv
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Snapshot(ctx, []string{dir}); err != nil {
			t.Fatal(err)
		}
	}
	res := runCheck(t, r, Options{})
	if res.Inventories != 1 || len(res.Problems) != 0 {
		t.Fatalf("inventories %d, problems %+v", res.Inventories, res.Problems)
	}

	h := backend.Handle{Type: backend.InventoryFile, Name: inv.String()}
	for _, damage := range []string{"altered", "missing"} {
		if damage == "altered" {
			if err := be.Save(ctx, h, backend.NewByteReader([]byte("not sealed"))); err != nil {
				// The name is the hash of the content: replace in place.
				if err := be.Remove(ctx, h); err != nil {
					t.Fatal(err)
				}
				if err := be.Save(ctx, h, backend.NewByteReader([]byte("not sealed"))); err != nil {
					t.Fatal(err)
				}
			}
		} else if err := be.Remove(ctx, h); err != nil {
			t.Fatal(err)
		}
		res = runCheck(t, r, Options{})
		if len(res.Problems) != 1 || res.Problems[0].Object != "inventory/"+inv.String() || !strings.Contains(res.Problems[0].Error, "named by snapshot") {
			t.Errorf("%s inventory: problems %+v", damage, res.Problems)
		}
	}
}
