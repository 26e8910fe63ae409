package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type jsonPruneSummary struct {
	Backend            jsonBackend `json:"backend"`
	MessageType        string      `json:"message_type"`
	DryRun             bool        `json:"dry_run"`
	Snapshots          int         `json:"snapshots"`
	Packs              int         `json:"packs"`
	TotalBytes         int64       `json:"total_bytes"`
	UsedBlobs          int         `json:"used_blobs"`
	UsedBytes          int64       `json:"used_bytes"`
	UnusedBytes        int64       `json:"unused_bytes"`
	PacksRepacked      int         `json:"packs_repacked"`
	BytesRepacked      int64       `json:"bytes_repacked"`
	PacksCondemned     int         `json:"packs_condemned"`
	BytesCondemned     int64       `json:"bytes_condemned"`
	PacksRevived       int         `json:"packs_revived"`
	PacksDeleted       int         `json:"packs_deleted"`
	BytesFreed         int64       `json:"bytes_freed"`
	PacksPending       int         `json:"packs_pending"`
	BytesPending       int64       `json:"bytes_pending"`
	WaitingFor         []string    `json:"waiting_for"`
	MissingPacks       []string    `json:"missing_packs"`
	Damaged            []string    `json:"damaged"`
	BadMarks           []string    `json:"unreadable_marks"`
	InventoriesDeleted int         `json:"inventories_deleted"`
	InventoriesPending int         `json:"inventories_pending"`
}

func init() { schemaTypes["prune.summary"] = reflect.TypeFor[jsonPruneSummary]() }

func pruneSummary(t *testing.T, r result) jsonPruneSummary {
	t.Helper()
	lines := jsonLines(t, r)
	if len(lines) != 1 {
		t.Fatalf("want one summary line: %v", r)
	}
	var s jsonPruneSummary
	decodeStrict(t, lines[0].raw, &s)
	return s
}

func dirSize(t *testing.T, dir string) (n int64) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestPrune: forget then prune frees the space of the forgotten data, the
// kept snapshot restores bit-exactly, check is clean, and --dry-run and a
// second prune change nothing.
func TestPrune(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 1<<20)
	old, keep := e.path("old"), e.path("keep")
	writeFiles(t, old, map[string][]byte{"a.bin": randomBytes(21, 3<<20), "b.bin": randomBytes(22, 1<<20)})
	writeFiles(t, keep, map[string][]byte{"c.bin": randomBytes(23, 2<<20), "d.txt": []byte("kept")})
	first := jsonLines(t, e.mustRun("backup", "--json", old))
	oldID, _ := first[len(first)-1].obj["snapshot_id"].(string)
	if oldID == "" {
		t.Fatalf("no snapshot_id in %s", first[len(first)-1].raw)
	}
	e.mustRun("backup", keep)
	e.mustRun("forget", oldID)
	before := dirSize(t, e.path("repo", "data"))

	dry := pruneSummary(t, e.mustRun("prune", "--dry-run", "--json"))
	if !dry.DryRun || dry.PacksCondemned == 0 || dry.PacksDeleted == 0 {
		t.Errorf("dry run: %+v", dry)
	}
	if got := dirSize(t, e.path("repo", "data")); got != before {
		t.Fatalf("dry run changed data/: %d -> %d bytes", before, got)
	}

	res := pruneSummary(t, e.mustRun("prune", "--json"))
	after := dirSize(t, e.path("repo", "data"))
	t.Logf("data/ %d -> %d bytes; %+v", before, after, res)
	if res.PacksDeleted == 0 || res.BytesFreed < 3<<20 || after > before-(3<<20) {
		t.Errorf("prune freed too little: %d -> %d bytes, %+v", before, after, res)
	}
	e.mustRun("check", "--read-data")
	target := e.path("target")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, keep, filepath.Join(target, keep))

	again := pruneSummary(t, e.mustRun("prune", "--json"))
	if again.PacksCondemned != 0 || again.PacksDeleted != 0 {
		t.Errorf("second prune did work: %+v", again)
	}
	out := e.mustRun("prune")
	if !strings.Contains(string(out.stdout), "deleted 0 packs") {
		t.Errorf("plain output: %s", out.stdout)
	}
}
