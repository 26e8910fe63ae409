package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/ui"
)

type jsonLostFile struct {
	Path string `json:"path"`
	Size uint64 `json:"size"`
}

type jsonRepairSnapshot struct {
	MessageType  string         `json:"message_type"`
	SnapshotID   string         `json:"snapshot_id"`
	Status       string         `json:"status"`
	RepairedAs   string         `json:"repaired_as"`
	DamageRecord string         `json:"damage_record"`
	LostFiles    []jsonLostFile `json:"lost_files"`
	LostDirs     []string       `json:"lost_dirs"`
	LostBlobs    int            `json:"lost_blobs"`
	Forgotten    bool           `json:"forgotten"`
	Error        string         `json:"error"`
}

type jsonRepairSnapshotsSummary struct {
	MessageType     string   `json:"message_type"`
	Snapshots       int      `json:"snapshots"`
	Intact          int      `json:"intact"`
	Repaired        int      `json:"repaired"`
	AlreadyRepaired int      `json:"already_repaired"`
	Damaged         int      `json:"damaged"`
	Failed          int      `json:"failed"`
	DryRun          bool     `json:"dry_run"`
	MissingPacks    []string `json:"missing_packs"`
	Unreadable      int      `json:"unreadable"`
}

// Registered here, next to the command's test, so that
// TestJSONDocsMatchStrictStructs checks them against docs/JSON.md.
func init() {
	schemaTypes["repair.snapshots.snapshot"] = reflect.TypeFor[jsonRepairSnapshot]()
	schemaTypes["repair.snapshots.summary"] = reflect.TypeFor[jsonRepairSnapshotsSummary]()
}

// repairSnapshotsJSON checks the output of `repair snapshots --json`
// against docs/JSON.md and returns its snapshot lines by snapshot ID, and
// its summary.
func repairSnapshotsJSON(t *testing.T, r result) (map[string]jsonRepairSnapshot, jsonRepairSnapshotsSummary) {
	t.Helper()
	lines := jsonLines(t, r)
	if len(lines) == 0 {
		t.Fatalf("no output: %v", r)
	}
	out := map[string]jsonRepairSnapshot{}
	for _, l := range lines[:len(lines)-1] {
		var s jsonRepairSnapshot
		checkDoc(t, "repair.snapshots.snapshot", l.raw, &s)
		if s.MessageType != "snapshot" {
			t.Fatalf("line %s is not a snapshot line", l.raw)
		}
		out[s.SnapshotID] = s
	}
	var sum jsonRepairSnapshotsSummary
	checkDoc(t, "repair.snapshots.summary", lines[len(lines)-1].raw, &sum)
	if sum.MessageType != "summary" || sum.Snapshots != len(out) {
		t.Fatalf("summary %+v after %d snapshot lines", sum, len(out))
	}
	return out, sum
}

// TestRepairSnapshots removes one data pack of a backup and repairs with
// the real binary: the report names exactly the files whose data was in
// the pack; the repaired snapshot restores with exit status 0 and every
// other file intact; the damaged snapshot is still listed and check still
// reports it; a second run repairs nothing twice.
func TestRepairSnapshots(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 1<<20)
	src := e.path("src")
	files := map[string][]byte{"note.txt": []byte("kept")}
	for i := range 6 {
		files[fmt.Sprintf("a/file%d", i)] = randomBytes(uint64(300+i), 300<<10)
		files[fmt.Sprintf("b/file%d", i)] = randomBytes(uint64(400+i), 300<<10)
	}
	writeFiles(t, src, files)
	e.mustRun("backup", src)
	var before []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &before)
	damaged := before[0].ID

	l := readLayout(t, e.path("repo"))
	victim := l.dataPacks[0]
	var lost []string
	for p, ids := range l.files {
		if slices.ContainsFunc(ids, func(i id.ID) bool { return l.loc[i].Pack == victim }) {
			lost = append(lost, p)
		}
	}
	slices.Sort(lost)
	if len(lost) == 0 || len(lost) == len(l.files) {
		t.Fatalf("the lost pack should hold some files and not others: %d of %d", len(lost), len(l.files))
	}
	if err := os.Remove(e.path("repo", "data", victim.String()[:2], victim.String())); err != nil {
		t.Fatal(err)
	}

	// A dry run names every lost file and writes nothing.
	r := e.mustRun("repair", "snapshots", "--dry-run")
	size := func(p string) int { return len(files[strings.TrimPrefix(p, src+"/")]) }
	for _, p := range lost {
		if !strings.Contains(string(r.stdout), "lost file       "+p+" ("+ui.Bytes(int64(size(p)))+")") {
			t.Errorf("the dry run does not name %s: %v", p, r)
		}
	}
	if !strings.Contains(string(r.stdout), "run `rewind repair index`") {
		t.Errorf("the dry run does not point at the missing pack: %v", r)
	}
	if got := snapshotFiles(t, e); len(got) != 1 {
		t.Fatalf("the dry run wrote snapshots: %q", got)
	}
	if ents, _ := os.ReadDir(e.path("repo", "damaged")); len(ents) != 0 {
		t.Fatalf("the dry run wrote %d damage records", len(ents))
	}

	r = e.mustRun("repair", "snapshots", "--json")
	out, sum := repairSnapshotsJSON(t, r)
	s, ok := out[damaged]
	if !ok || s.Status != "repaired" || !hexID.MatchString(s.RepairedAs) || !hexID.MatchString(s.DamageRecord) || s.Forgotten {
		t.Fatalf("repair: %+v", s)
	}
	var named []string
	for _, f := range s.LostFiles {
		named = append(named, f.Path)
		if f.Size != uint64(size(f.Path)) {
			t.Errorf("lost file %s: size %d", f.Path, f.Size)
		}
	}
	if !slices.Equal(named, lost) || len(s.LostDirs) != 0 || s.LostBlobs == 0 {
		t.Fatalf("repair names lost files %q (dirs %q, %d blobs), want %q", named, s.LostDirs, s.LostBlobs, lost)
	}
	if sum.Repaired != 1 || sum.Intact != 0 || sum.DryRun || !slices.Equal(sum.MissingPacks, []string{victim.String()}) {
		t.Fatalf("summary %+v", sum)
	}
	repaired := s.RepairedAs

	target := e.path("restore")
	e.mustRun("restore", repaired, "--target", target)
	got := readFiles(t, filepath.Join(target, src))
	for name, data := range files {
		g, ok := got[name]
		switch isLost := slices.Contains(lost, src+"/"+name); {
		case isLost && ok:
			t.Errorf("%s: lost, but restored", name)
		case !isLost && !ok:
			t.Errorf("%s: intact, but not restored", name)
		case !isLost && !bytes.Equal(g, data):
			t.Errorf("%s: restored content differs", name)
		}
	}
	if len(got) != len(files)-len(lost) {
		t.Errorf("restored %d files, want %d", len(got), len(files)-len(lost))
	}

	// Both snapshots are listed; the new one says what it repairs.
	var listed []map[string]any
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &listed); err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]any{}
	for _, sn := range listed {
		byID[sn["id"].(string)] = sn
	}
	if len(listed) != 2 || byID[damaged] == nil || byID[repaired] == nil {
		t.Fatalf("snapshots after the repair: %v", listed)
	}
	if byID[repaired]["original"] != damaged || !slices.Contains(byID[repaired]["tags"].([]any), any("repaired")) {
		t.Fatalf("repaired snapshot %v", byID[repaired])
	}
	if _, ok := byID[damaged]["original"]; ok {
		t.Fatalf("the damaged snapshot was changed: %v", byID[damaged])
	}

	// check still reports the missing data, and names the snapshot that
	// replaces the damaged one.
	r = e.expectCode(ExitFatal, "check")
	if !strings.Contains(string(r.stdout), "data/"+victim.String()) {
		t.Errorf("check no longer reports the missing pack: %v", r)
	}
	if note := checkNotes(t, e); !strings.Contains(note, "snapshot "+damaged[:8]+" references lost data; it has been repaired as "+repaired[:8]) {
		t.Errorf("check note: %q", note)
	}

	// Again: nothing new, and the report says so.
	r = e.mustRun("repair", "snapshots", "--json")
	out, sum = repairSnapshotsJSON(t, r)
	if s := out[damaged]; s.Status != "already_repaired" || s.RepairedAs != repaired || len(s.LostFiles) != len(lost) {
		t.Fatalf("second run, damaged snapshot: %+v", s)
	}
	if s := out[repaired]; s.Status != "intact" || s.RepairedAs != "" || s.DamageRecord != "" || s.LostFiles != nil {
		t.Fatalf("second run, repaired snapshot: %+v", s)
	}
	if sum.Repaired != 0 || sum.AlreadyRepaired != 1 || sum.Intact != 1 {
		t.Fatalf("second run: %+v", sum)
	}
	r = e.mustRun("repair", "snapshots", damaged[:8])
	if want := fmt.Sprintf("repaired before, as %s", repaired[:8]); !strings.Contains(string(r.stdout), want) {
		t.Errorf("second run does not say %q: %v", want, r)
	}
	if got := snapshotFiles(t, e); len(got) != 2 {
		t.Fatalf("%d snapshots after the second run", len(got))
	}
}

// checkNotes runs what check prints about repaired snapshots, in process
// on the repository of e, and returns it.
func checkNotes(t *testing.T, e *env) string {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, e.path("repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out, errs bytes.Buffer
	noteRepairedSnapshots(ctx, &globals{ui: &ui.UI{Out: &out, Err: &errs}}, r)
	if errs.Len() > 0 {
		t.Errorf("warnings: %s", errs.String())
	}
	return out.String()
}

// TestRepairSnapshotsForget: with --forget the damaged snapshot is
// removed once the repaired one and its damage record are stored.
func TestRepairSnapshotsForget(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 1<<20)
	src := e.path("src")
	files := map[string][]byte{}
	for i := range 6 {
		files[fmt.Sprintf("f%d", i)] = randomBytes(uint64(500+i), 300<<10)
	}
	writeFiles(t, src, files)
	e.mustRun("backup", src)
	l := readLayout(t, e.path("repo"))
	victim := l.dataPacks[0]
	if err := os.Remove(e.path("repo", "data", victim.String()[:2], victim.String())); err != nil {
		t.Fatal(err)
	}
	e.expectCode(ExitFatal, "repair", "snapshots", "--dry-run", "--forget")

	r := e.mustRun("repair", "snapshots", "--forget", "--json")
	out, _ := repairSnapshotsJSON(t, r)
	if len(out) != 1 {
		t.Fatalf("%d snapshot lines", len(out))
	}
	var s jsonRepairSnapshot
	for _, v := range out {
		s = v
	}
	if s.Status != "repaired" || !s.Forgotten || s.RepairedAs == "" {
		t.Fatalf("repair --forget: %+v", s)
	}
	if got := snapshotFiles(t, e); !slices.Equal(got, []string{s.RepairedAs}) {
		t.Fatalf("snapshots after --forget: %q, want only %s", got, s.RepairedAs)
	}
	if ents, _ := os.ReadDir(e.path("repo", "damaged")); len(ents) != 1 || ents[0].Name() != s.DamageRecord {
		t.Fatalf("damage records after --forget: %v", ents)
	}
	e.mustRun("restore", "latest", "--target", e.path("restore"))
	// The record is kept but no longer concerns check: the damaged
	// snapshot is gone.
	if note := checkNotes(t, e); note != "" {
		t.Errorf("check note with the damaged snapshot forgotten: %q", note)
	}
}
