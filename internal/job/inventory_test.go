package job

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/plan"
)

// TestJobInventorySetting: a files job records the machine's inventory
// with its snapshot, and one with `inventory: false` records none.
func TestJobInventorySetting(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := testRepo(t, "", "local")
	off := false
	for _, tc := range []struct {
		name string
		inv  *bool
		want bool
	}{{"with", nil, true}, {"without", &off, false}} {
		j := &plan.Job{Name: tc.name, Kind: plan.KindFiles, Paths: []string{src}, Inventory: tc.inv}
		rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
		if err != nil {
			t.Fatalf("job %s: %v", tc.name, err)
		}
		found := false
		for _, sn := range snapshots(t, repo) {
			if sn.ID != rec.Snapshot {
				continue
			}
			found = true
			if (sn.Inventory != "") != tc.want {
				t.Errorf("job %s (inventory %v): snapshot names inventory %q", tc.name, tc.want, sn.Inventory)
			}
		}
		if !found {
			t.Errorf("job %s: its snapshot %q is not listed", tc.name, rec.Snapshot)
		}
	}
}
