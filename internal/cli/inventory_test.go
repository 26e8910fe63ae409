package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/inventory"
)

// inventoryFiles lists the names in the repository's inventory folder.
func inventoryFiles(t *testing.T, e *env) []string {
	t.Helper()
	ents, err := os.ReadDir(e.path("repo", "inventory"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	return names
}

// snapshotOf returns the snapshot listed with this ID.
func snapshotOf(t *testing.T, e *env, id string) jsonSnapshot {
	t.Helper()
	sn, ok := snapshotsByID(t, e)[id]
	if !ok {
		t.Fatalf("snapshot %s not listed", id)
	}
	return sn
}

func backupID(t *testing.T, e *env, args ...string) string {
	t.Helper()
	r := e.mustRun(append([]string{"backup", "--json"}, args...)...)
	lines := jsonLines(t, r)
	return lines[len(lines)-1].obj["snapshot_id"].(string)
}

// TestInventoryRecordedReusedPruned: a backup records the machine's
// inventory; a second backup of the unchanged machine names the same
// file; show and diff read it; prune after forget deletes an inventory no
// snapshot names and keeps the others; check loads them.
func TestInventoryRecordedReusedPruned(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("a")})

	id1 := backupID(t, e, "--host", "inv-a", src)
	sn1 := snapshotOf(t, e, id1)
	if sn1.Inventory == "" {
		t.Fatal("the backup recorded no inventory")
	}
	if files := inventoryFiles(t, e); len(files) != 1 || files[0] != sn1.Inventory {
		t.Fatalf("inventory files %v, snapshot names %s", files, sn1.Inventory)
	}

	writeFiles(t, src, map[string][]byte{"b.txt": []byte("b")})
	id2 := backupID(t, e, "--host", "inv-a", src)
	if sn2 := snapshotOf(t, e, id2); sn2.Inventory != sn1.Inventory {
		t.Errorf("second backup of an unchanged machine: inventory %s, want the first one %s", sn2.Inventory, sn1.Inventory)
	}
	if files := inventoryFiles(t, e); len(files) != 1 {
		t.Errorf("a new inventory file for an unchanged machine: %v", files)
	}
	idNo := backupID(t, e, "--host", "inv-a", "--no-inventory", src)
	if sn := snapshotOf(t, e, idNo); sn.Inventory != "" {
		t.Errorf("--no-inventory recorded %s", sn.Inventory)
	}

	// show --json prints the whole document; the text summary counts.
	var doc inventory.Document
	decodeStrict(t, e.mustRun("inventory", "show", "--json", "--host", "inv-a").stdout, &doc)
	if doc.Version != 1 || doc.Host != "inv-a" || doc.Kernel.Release == "" || len(doc.Users) == 0 {
		t.Errorf("inventory show --json: version %d host %q kernel %+v, %d users", doc.Version, doc.Host, doc.Kernel, len(doc.Users))
	}
	out := string(e.mustRun("inventory", "show", id1[:8]).stdout)
	for _, want := range []string{"inventory of inv-a", "Disks", "Filesystems", "Boot:", "Kernel:", "users"} {
		if !strings.Contains(out, want) {
			t.Errorf("inventory show lacks %q:\n%s", want, out)
		}
	}
	e.expectCode(ExitFatal, "inventory", "show", idNo[:8])
	var d InventoryDiffJSON
	decodeStrict(t, e.mustRun("inventory", "diff", "--json", id1, id2).stdout, &d)
	if d.From != id1 || d.To != id2 || len(d.Changes) != 0 {
		t.Errorf("diff of one inventory with itself: %+v", d)
	}

	// Another host: a document of its own.
	idB := backupID(t, e, "--host", "inv-b", src)
	snB := snapshotOf(t, e, idB)
	if snB.Inventory == "" || snB.Inventory == sn1.Inventory {
		t.Fatalf("host inv-b inventory %q", snB.Inventory)
	}
	if files := inventoryFiles(t, e); len(files) != 2 {
		t.Fatalf("inventory files %v", files)
	}
	check := e.mustRun("check", "--json")
	if !strings.Contains(string(check.stdout), `"inventories":2`) {
		t.Errorf("check counts the inventories: %s", check.stdout)
	}

	// Forget inv-b's snapshot and prune: its inventory goes, inv-a's stays.
	e.mustRun("forget", idB)
	sum := pruneSummary(t, e.mustRun("prune", "--json"))
	if sum.InventoriesDeleted != 1 {
		t.Errorf("prune deleted %d inventory files, want 1", sum.InventoriesDeleted)
	}
	if files := inventoryFiles(t, e); len(files) != 1 || files[0] != sn1.Inventory {
		t.Errorf("after prune: %v, want only %s", files, sn1.Inventory)
	}
	e.mustRun("check")
	if _, err := os.Stat(filepath.Join(e.path("repo", "inventory"), sn1.Inventory)); err != nil {
		t.Error(err)
	}
}
