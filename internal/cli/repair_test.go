package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type jsonRepairSummary struct {
	MessageType       string   `json:"message_type"`
	PacksIndexed      int      `json:"packs_indexed"`
	IndexFilesRemoved int      `json:"index_files_removed"`
	UnreadablePacks   []string `json:"unreadable_packs"`
}

// Registered here, next to its command's test, so that
// TestJSONDocsMatchStrictStructs checks it against docs/JSON.md.
func init() { schemaTypes["repair.summary"] = reflect.TypeFor[jsonRepairSummary]() }

// TestRepairIndex loses every index file, rebuilds the index from the
// pack headers, and restores; a pack with a broken header is named and
// left in place.
func TestRepairIndex(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 1<<20)
	src := e.path("src")
	files := map[string][]byte{"a.txt": []byte("alpha"), "big.bin": randomBytes(7, 3<<20), "dir/c.bin": randomBytes(8, 200<<10)}
	writeFiles(t, src, files)
	e.mustRun("backup", src)
	e.mustRun("backup", "--force", src)

	idxDir := e.path("repo", "index")
	ents, err := os.ReadDir(idxDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if err := os.Remove(filepath.Join(idxDir, d.Name())); err != nil {
			t.Fatal(err)
		}
	}
	e.expectCode(1, "check")
	// A file named like a pack whose header is garbage.
	junk := e.path("repo", "data", "ff", "ff"+strings.Repeat("0", 62))
	if err := os.MkdirAll(filepath.Dir(junk), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("not a pack"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := e.mustRun("repair", "index", "--json")
	lines := jsonLines(t, r)
	if len(lines) != 1 {
		t.Fatalf("want one summary line: %v", r)
	}
	var sum jsonRepairSummary
	decodeStrict(t, lines[0].raw, &sum)
	if sum.MessageType != "summary" || sum.PacksIndexed < 3 || sum.IndexFilesRemoved != 0 ||
		len(sum.UnreadablePacks) != 1 || sum.UnreadablePacks[0] != filepath.Base(junk) {
		t.Fatalf("summary %+v", sum)
	}
	if _, err := os.Stat(junk); err != nil {
		t.Fatalf("the unreadable pack was removed: %v", err)
	}
	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	e.mustRun("check", "--read-data")
	target := e.path("restore")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, src, target+src)

	// Repairing again supersedes and removes the one index file.
	r = e.mustRun("repair", "index", "--json")
	decodeStrict(t, jsonLines(t, r)[0].raw, &sum)
	if sum.IndexFilesRemoved != 1 || sum.PacksIndexed < 3 {
		t.Fatalf("second repair: %+v", sum)
	}
	if ents, _ := os.ReadDir(idxDir); len(ents) != 1 {
		t.Fatalf("%d index files after repair, want 1", len(ents))
	}
	e.mustRun("check", "--read-data")
}
