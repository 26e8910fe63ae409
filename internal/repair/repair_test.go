package repair_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/rewind-backup/rewind/internal/chunker"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// lostPaths returns the paths of a result's lost files.
func lostPaths(sr repair.SnapshotResult) []string {
	var out []string
	for _, f := range sr.LostFiles {
		out = append(out, f.Path)
	}
	return out
}

// checkRestored restores sn and compares it with the source folder src:
// every file of src but the lost ones (absolute paths) must come back
// byte for byte, and nothing else.
func checkRestored(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot, src string, lost []string) string {
	t.Helper()
	target := restore(t, r, sn)
	want := readFiles(t, src)
	for _, p := range lost {
		rel := strings.TrimPrefix(p, src+"/")
		if _, ok := want[rel]; !ok {
			t.Fatalf("lost file %s is not below %s", p, src)
		}
		delete(want, rel)
	}
	got := readFiles(t, filepath.Join(target, src))
	for name, data := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: intact but not restored", name)
		case !bytes.Equal(g, data):
			t.Errorf("%s: restored content differs", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: restored, but it is lost", name)
		}
	}
	return target
}

// TestRepairLostDataPack removes one data pack and repairs: a dry run
// writes nothing, the repair keeps every intact file bit-exactly, leaves
// out and names exactly the files with lost content, reuses the listings
// of undamaged directories, keeps the damaged snapshot and writes a
// damage record; a second run changes nothing; an undamaged snapshot is
// left alone.
func TestRepairLostDataPack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := t.TempDir()
	repoDir := filepath.Join(base, "repo")
	initRepo(t, repoDir, nil)
	src := filepath.Join(base, "src", "main")
	other := filepath.Join(base, "src", "other")
	files := map[string][]byte{"small.txt": []byte("hello")}
	for i := range 6 {
		files[fmt.Sprintf("a/f%d", i)] = randomBytes(uint64(100+i), 300<<10)
		files[fmt.Sprintf("b/c/f%d", i)] = randomBytes(uint64(200+i), 300<<10)
	}
	writeFiles(t, src, files)
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a", "f0"), filepath.Join(src, "a", "hard")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, other, map[string][]byte{"x.bin": randomBytes(300, 200<<10), "y.txt": []byte("other")})
	damaged := backup(t, repoDir, src)
	untouched := backup(t, repoDir, other)

	r := openRepo(t, repoDir)
	need := layout(t, r, damaged)
	lostPack, lost := pickDataPack(t, r, need, layout(t, r, untouched))
	lostBlobs := map[id.ID]bool{}
	for _, p := range lost {
		for _, b := range need[p].data {
			if locate(t, r, b).Pack == lostPack {
				lostBlobs[b] = true
			}
		}
	}
	r.Close()
	if err := os.Remove(packPath(repoDir, lostPack)); err != nil {
		t.Fatal(err)
	}
	t.Logf("removed pack %s: %d files lose content", lostPack.Short(), len(lost))

	// A dry run names the losses and writes nothing.
	before := repoFiles(t, repoDir)
	res := runRepair(t, repoDir, repair.Options{DryRun: true})
	if after := repoFiles(t, repoDir); !maps.Equal(before, after) {
		t.Fatalf("the dry run changed the repository")
	}
	sr := resultFor(t, res, damaged.ID)
	if sr.Status != repair.Damaged || !slices.Equal(lostPaths(sr), lost) || sr.RepairedAs != nil {
		t.Fatalf("dry run: %+v, want damaged with lost files %q", sr, lost)
	}
	if !slices.Equal(res.MissingPacks, []id.ID{lostPack}) {
		t.Fatalf("missing packs %v, want %v", res.MissingPacks, lostPack)
	}
	if s := resultFor(t, res, untouched.ID); s.Status != repair.Intact {
		t.Fatalf("undamaged snapshot: %+v", s)
	}

	res = runRepair(t, repoDir, repair.Options{ProgramVersion: "rewind repair-test"})
	sr = resultFor(t, res, damaged.ID)
	if sr.Status != repair.Repaired || sr.RepairedAs == nil || sr.Record == nil || sr.Err != nil {
		t.Fatalf("repair: %+v", sr)
	}
	if !slices.Equal(lostPaths(sr), lost) {
		t.Fatalf("lost files %q, want %q", lostPaths(sr), lost)
	}
	for _, f := range sr.LostFiles {
		if f.Size != need[f.Path].size || f.Size == 0 {
			t.Errorf("lost %s: size %d, want %d", f.Path, f.Size, need[f.Path].size)
		}
	}
	if len(sr.LostDirs) != 0 || sr.LostBlobs != len(lostBlobs) {
		t.Fatalf("lost dirs %q, lost blobs %d (want none, %d)", sr.LostDirs, sr.LostBlobs, len(lostBlobs))
	}
	if s := resultFor(t, res, untouched.ID); s.Status != repair.Intact || s.RepairedAs != nil || s.Record != nil {
		t.Fatalf("undamaged snapshot: %+v", s)
	}

	r = openRepo(t, repoDir)
	sns := allSnapshots(t, r)
	if len(sns) != 3 {
		t.Fatalf("%d snapshots after the repair, want 3", len(sns))
	}
	for _, sn := range sns {
		if sn.Original != nil && *sn.Original != damaged.ID {
			t.Fatalf("snapshot %s repairs %s", sn.ID.Short(), sn.Original.Short())
		}
	}
	if _, err := snapshot.Load(ctx, r, damaged.ID); err != nil {
		t.Fatalf("the damaged snapshot is gone: %v", err)
	}
	rs, err := snapshot.Load(ctx, r, *sr.RepairedAs)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Original == nil || *rs.Original != damaged.ID || !rs.Time.Equal(damaged.Time) || rs.Hostname != damaged.Hostname ||
		!slices.Equal(rs.Paths, damaged.Paths) || !slices.Equal(rs.Tags, []string{"nightly", "repaired"}) ||
		rs.ProgramVersion != "rewind repair-test" {
		t.Fatalf("repaired snapshot %+v\nof %+v", rs, damaged)
	}
	if rs.Summary.TotalFiles != damaged.Summary.TotalFiles-int64(len(lost)) {
		t.Errorf("repaired snapshot counts %d files, want %d", rs.Summary.TotalFiles, damaged.Summary.TotalFiles-int64(len(lost)))
	}

	target := checkRestored(t, r, rs, src, lost)
	if l, err := os.Readlink(filepath.Join(target, src, "link")); err != nil || l != "small.txt" {
		t.Errorf("symlink: %q, %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(target, src, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory: %v", err)
	}

	// Directories with nothing lost below keep their tree blobs; the
	// others were written again.
	orig, got := subtrees(t, r, damaged), subtrees(t, r, rs)
	if !slices.Equal(slices.Sorted(maps.Keys(orig)), slices.Sorted(maps.Keys(got))) {
		t.Fatalf("directories differ:\n%q\n%q", slices.Sorted(maps.Keys(orig)), slices.Sorted(maps.Keys(got)))
	}
	reused := 0
	for dir, ids := range got {
		affected := slices.ContainsFunc(lost, func(p string) bool { return dir == "/" || strings.HasPrefix(p, dir+"/") })
		if same := slices.Equal(ids, orig[dir]); same == affected {
			t.Errorf("%s: listing reused %v, but something below it lost: %v", dir, same, affected)
		}
		if !affected {
			reused++
		}
	}
	if reused == 0 {
		t.Fatal("no directory listing was reused")
	}

	recs, err := repair.ListDamaged(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := recs[damaged.ID]
	if len(recs) != 1 || !ok || rec.RepairedAs == nil || *rec.RepairedAs != rs.ID || rec.ID != *sr.Record ||
		!rec.Time.Equal(fixedNow) || rec.LostBlobs != len(lostBlobs) || len(rec.LostFiles) != len(lost) || len(rec.LostDirs) != 0 {
		t.Fatalf("damage records %+v", recs)
	}

	// check still reports the damage of the damaged snapshot.
	cres, err := checker.Check(ctx, r, checker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cres.Problems, func(p checker.Problem) bool { return p.Object == "data/"+lostPack.String() }) {
		t.Fatalf("check after the repair does not report the missing pack: %+v", cres.Problems)
	}
	r.Close()

	// A second run writes nothing and says the snapshot was repaired.
	before = repoFiles(t, repoDir)
	res = runRepair(t, repoDir, repair.Options{})
	if after := repoFiles(t, repoDir); !maps.Equal(before, after) {
		t.Fatalf("the second run changed the repository")
	}
	sr2 := resultFor(t, res, damaged.ID)
	if sr2.Status != repair.AlreadyRepaired || sr2.RepairedAs == nil || *sr2.RepairedAs != rs.ID ||
		!slices.Equal(lostPaths(sr2), lost) || *sr2.Record != *sr.Record {
		t.Fatalf("second run: %+v", sr2)
	}
	if s := resultFor(t, res, rs.ID); s.Status != repair.Intact {
		t.Fatalf("the repaired snapshot is not intact: %+v", s)
	}
	if s := resultFor(t, res, untouched.ID); s.Status != repair.Intact {
		t.Fatalf("undamaged snapshot on the second run: %+v", s)
	}
}

// TestRepairLostTreePack loses the tree pack of the first of two
// backups. The first snapshot keeps nothing: it gets a damage record but
// no repaired snapshot. The second reused one directory listing from that
// pack: the directory is kept empty and named, everything else restores.
func TestRepairLostTreePack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := t.TempDir()
	repoDir := filepath.Join(base, "repo")
	initRepo(t, repoDir, nil)
	src := filepath.Join(base, "src")
	writeFiles(t, src, map[string][]byte{"A/f1": []byte("one"), "A/sub/f2": []byte("two"), "top.txt": []byte("top")})
	if err := os.Chmod(filepath.Join(src, "A"), 0o750); err != nil {
		t.Fatal(err)
	}
	first := backup(t, repoDir, src)
	writeFiles(t, src, map[string][]byte{"B/g1": randomBytes(1, 10<<10), "B/g2": []byte("gee")})
	second := backup(t, repoDir, src)

	r := openRepo(t, repoDir)
	treePack := locate(t, r, first.Tree[0]).Pack
	aNode, err := snapshot.Lookup(ctx, r, second, src+"/A")
	if err != nil {
		t.Fatal(err)
	}
	if locate(t, r, aNode.Subtree[0]).Pack != treePack || locate(t, r, second.Tree[0]).Pack == treePack {
		t.Fatal("the second backup did not reuse A's listing from the first one's tree pack")
	}
	r.Close()
	if err := os.Remove(packPath(repoDir, treePack)); err != nil {
		t.Fatal(err)
	}

	res := runRepair(t, repoDir, repair.Options{})
	s1 := resultFor(t, res, first.ID)
	if s1.Status != repair.Repaired || s1.RepairedAs != nil || s1.Record == nil ||
		!slices.Equal(s1.LostDirs, []string{"/"}) || len(s1.LostFiles) != 0 || s1.LostBlobs != 1 {
		t.Fatalf("first snapshot: %+v", s1)
	}
	s2 := resultFor(t, res, second.ID)
	if s2.Status != repair.Repaired || s2.RepairedAs == nil || !slices.Equal(s2.LostDirs, []string{src + "/A"}) ||
		len(s2.LostFiles) != 0 || s2.LostBlobs != 1 {
		t.Fatalf("second snapshot: %+v", s2)
	}

	r = openRepo(t, repoDir)
	if n := len(allSnapshots(t, r)); n != 3 {
		t.Fatalf("%d snapshots, want the two damaged ones and one repaired", n)
	}
	recs, err := repair.ListDamaged(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if rec := recs[first.ID]; rec.RepairedAs != nil || !slices.Equal(rec.LostDirs, []string{"/"}) {
		t.Fatalf("record of the first snapshot: %+v", rec)
	}
	rs, err := snapshot.Load(ctx, r, *s2.RepairedAs)
	if err != nil {
		t.Fatal(err)
	}
	target := restore(t, r, rs)
	got := readFiles(t, filepath.Join(target, src))
	want := map[string][]byte{"B/g1": randomBytes(1, 10<<10), "B/g2": []byte("gee"), "top.txt": []byte("top")}
	if len(got) != len(want) {
		t.Fatalf("restored %d files, want %d", len(got), len(want))
	}
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: restored content differs", name)
		}
	}
	a, err := os.Stat(filepath.Join(target, src, "A"))
	if err != nil || !a.IsDir() || a.Mode().Perm() != 0o750 {
		t.Fatalf("A is not kept as a directory with its metadata: %v, %v", a, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(target, src, "A")); len(ents) != 0 {
		t.Fatalf("A holds %d entries, want none", len(ents))
	}
	r.Close()

	// Nothing new on a second run, even for the snapshot nothing was
	// kept of.
	before := repoFiles(t, repoDir)
	res = runRepair(t, repoDir, repair.Options{})
	if !maps.Equal(before, repoFiles(t, repoDir)) {
		t.Fatal("the second run changed the repository")
	}
	if s := resultFor(t, res, first.ID); s.Status != repair.AlreadyRepaired || s.RepairedAs != nil {
		t.Fatalf("first snapshot on the second run: %+v", s)
	}
}

// TestRepairReadData flips a bit inside a data blob: the index still
// lists it and its pack is stored, so only --read-data finds it.
func TestRepairReadData(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	repoDir := filepath.Join(base, "repo")
	initRepo(t, repoDir, nil)
	src := filepath.Join(base, "src")
	files := map[string][]byte{}
	for i := range 4 {
		files[fmt.Sprintf("f%d", i)] = randomBytes(uint64(i), 300<<10)
	}
	writeFiles(t, src, files)
	sn := backup(t, repoDir, src)
	r := openRepo(t, repoDir)
	victim := src + "/f2"
	blob := layout(t, r, sn)[victim].data[0]
	loc := locate(t, r, blob)
	r.Close()
	flipByte(t, packPath(repoDir, loc.Pack), int64(loc.Offset+loc.Length/2))

	if s := resultFor(t, runRepair(t, repoDir, repair.Options{DryRun: true}), sn.ID); s.Status != repair.Intact {
		t.Fatalf("without --read-data: %+v, want intact", s)
	}
	res := runRepair(t, repoDir, repair.Options{ReadData: true})
	s := resultFor(t, res, sn.ID)
	if s.Status != repair.Repaired || !slices.Equal(lostPaths(s), []string{victim}) || s.LostBlobs != 1 || len(res.MissingPacks) != 0 {
		t.Fatalf("with --read-data: %+v", s)
	}
	r = openRepo(t, repoDir)
	rs, err := snapshot.Load(context.Background(), r, *s.RepairedAs)
	if err != nil {
		t.Fatal(err)
	}
	checkRestored(t, r, rs, src, []string{victim})
}

// TestRepairLostContentList damages the tree blob holding part of a long
// file's chunk list. Tree blobs are always verified, so the file is found
// lost without --read-data, and only it.
func TestRepairLostContentList(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	repoDir := filepath.Join(base, "repo")
	// Tiny chunks, so that a 1.5 MB file has more chunks than a node
	// holds and keeps its list in content-list blobs.
	tiny := chunker.Params{Min: 64, Avg: 128, Max: 512}
	initRepo(t, repoDir, map[string]chunker.Params{repository.ProfileDefault: tiny, repository.ProfileSmall: tiny})
	src := filepath.Join(base, "src")
	writeFiles(t, src, map[string][]byte{"long.bin": randomBytes(9, 1500<<10), "short.txt": []byte("short"), "d/e.txt": []byte("e")})
	sn := backup(t, repoDir, src)
	r := openRepo(t, repoDir)
	fb := layout(t, r, sn)[src+"/long.bin"]
	if len(fb.lists) < 2 {
		t.Fatalf("long.bin has %d content-list blobs, want several", len(fb.lists))
	}
	loc := locate(t, r, fb.lists[1])
	r.Close()
	flipByte(t, packPath(repoDir, loc.Pack), int64(loc.Offset+loc.Length/2))

	res := runRepair(t, repoDir, repair.Options{})
	s := resultFor(t, res, sn.ID)
	if s.Status != repair.Repaired || !slices.Equal(lostPaths(s), []string{src + "/long.bin"}) || s.LostBlobs != 1 || len(s.LostDirs) != 0 {
		t.Fatalf("repair: %+v", s)
	}
	r = openRepo(t, repoDir)
	rs, err := snapshot.Load(context.Background(), r, *s.RepairedAs)
	if err != nil {
		t.Fatal(err)
	}
	checkRestored(t, r, rs, src, []string{src + "/long.bin"})
}

// damagedRepo makes a repository with one snapshot whose data lost one
// pack, and returns its folder, the source folder, the snapshot and the
// files lost.
func damagedRepo(t *testing.T) (repoDir, src string, sn *snapshot.Snapshot, lost []string) {
	t.Helper()
	base := t.TempDir()
	repoDir = filepath.Join(base, "repo")
	initRepo(t, repoDir, nil)
	src = filepath.Join(base, "src")
	files := map[string][]byte{}
	for i := range 8 {
		files[fmt.Sprintf("d%d/f", i%3)+fmt.Sprint(i)] = randomBytes(uint64(50+i), 300<<10)
	}
	writeFiles(t, src, files)
	sn = backup(t, repoDir, src)
	r := openRepo(t, repoDir)
	p, lost := pickDataPack(t, r, layout(t, r, sn), nil)
	r.Close()
	if err := os.Remove(packPath(repoDir, p)); err != nil {
		t.Fatal(err)
	}
	return repoDir, src, sn, lost
}

// TestRepairForget removes the damaged snapshot only after its repaired
// snapshot and record are stored, also for a snapshot repaired by an
// earlier run, and keeps the record.
func TestRepairForget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repoDir, src, sn, lost := damagedRepo(t)
	res := runRepair(t, repoDir, repair.Options{})
	first := resultFor(t, res, sn.ID)
	if first.Status != repair.Repaired || first.Forgotten {
		t.Fatalf("repair: %+v", first)
	}

	// As after a crash between storing the record and removing the
	// damaged snapshot: the next run with --forget removes it.
	res = runRepair(t, repoDir, repair.Options{Forget: true})
	s := resultFor(t, res, sn.ID)
	if s.Status != repair.AlreadyRepaired || !s.Forgotten || *s.RepairedAs != *first.RepairedAs {
		t.Fatalf("forget: %+v", s)
	}
	r := openRepo(t, repoDir)
	if _, err := snapshot.Load(ctx, r, sn.ID); !backend.IsNotExist(err) {
		t.Fatalf("damaged snapshot after --forget: %v", err)
	}
	sns := allSnapshots(t, r)
	if len(sns) != 1 || sns[0].ID != *first.RepairedAs {
		t.Fatalf("snapshots after --forget: %d", len(sns))
	}
	recs, err := repair.ListDamaged(ctx, r)
	if err != nil || recs[sn.ID].ID != *first.Record {
		t.Fatalf("damage records after --forget: %+v, %v", recs, err)
	}
	checkRestored(t, r, sns[0], src, lost)

	// A fresh damage with --forget in one run.
	repoDir2, _, sn2, _ := damagedRepo(t)
	s = resultFor(t, runRepair(t, repoDir2, repair.Options{Forget: true}), sn2.ID)
	if s.Status != repair.Repaired || !s.Forgotten {
		t.Fatalf("repair --forget: %+v", s)
	}
	if got := names(t, repoDir2, backend.SnapshotFile); !slices.Equal(got, []string{s.RepairedAs.String()}) {
		t.Fatalf("snapshots %q, want only the repaired one", got)
	}
	if got := names(t, repoDir2, backend.DamageFile); !slices.Equal(got, []string{s.Record.String()}) {
		t.Fatalf("damage records %q", got)
	}
}

// TestRepairRecordMissing: a run that stored the repaired snapshot but
// crashed before the damage record. The next run writes the record for
// the snapshot already stored, and no second one.
func TestRepairRecordMissing(t *testing.T) {
	t.Parallel()
	repoDir, _, sn, lost := damagedRepo(t)
	first := resultFor(t, runRepair(t, repoDir, repair.Options{}), sn.ID)
	if first.Status != repair.Repaired {
		t.Fatalf("repair: %+v", first)
	}
	rec := filepath.Join(repoDir, "damaged", first.Record.String())
	if err := os.Remove(rec); err != nil {
		t.Fatal(err)
	}
	snaps := names(t, repoDir, backend.SnapshotFile)
	again := resultFor(t, runRepair(t, repoDir, repair.Options{}), sn.ID)
	if again.Status != repair.Repaired || *again.RepairedAs != *first.RepairedAs || !slices.Equal(lostPaths(again), lost) {
		t.Fatalf("second run: %+v, want the first repaired snapshot %s", again, first.RepairedAs.Short())
	}
	if got := names(t, repoDir, backend.SnapshotFile); !slices.Equal(got, snaps) {
		t.Fatalf("snapshots %q after the second run, want %q", got, snaps)
	}
	if got := names(t, repoDir, backend.DamageFile); !slices.Equal(got, []string{again.Record.String()}) {
		t.Fatalf("damage records %q", got)
	}
}

// TestListDamagedUnreadable: a damage record that does not decrypt is
// named in the error; the others are still returned, and a repair goes
// on with a warning.
func TestListDamagedUnreadable(t *testing.T) {
	t.Parallel()
	repoDir, _, sn, _ := damagedRepo(t)
	first := resultFor(t, runRepair(t, repoDir, repair.Options{}), sn.ID)
	junk := strings.Repeat("ab", 32)
	if err := os.WriteFile(filepath.Join(repoDir, "damaged", junk), []byte("not a record"), 0o400); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, repoDir)
	recs, err := repair.ListDamaged(context.Background(), r)
	if err == nil || !errors.Is(err, repository.ErrCorrupt) || !strings.Contains(err.Error(), junk) {
		t.Fatalf("error %v, want one naming damaged/%s", err, junk)
	}
	if len(recs) != 1 || recs[sn.ID].ID != *first.Record {
		t.Fatalf("records %+v", recs)
	}
	r.Close()
	res := runRepair(t, repoDir, repair.Options{})
	if len(res.Warnings) != 1 || resultFor(t, res, sn.ID).Status != repair.AlreadyRepaired {
		t.Fatalf("repair with an unreadable record: %+v", res)
	}
}

// TestRepairUnstorableListing: the repaired listing of a directory is
// byte for byte an older listing whose only copy is in a missing pack.
// The index still lists that copy, so the repair refuses to count on it
// and fails for that snapshot; after `repair index` drops the missing
// pack from the index, the repair stores the listing anew.
func TestRepairUnstorableListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := t.TempDir()
	repoDir := filepath.Join(base, "repo")
	initRepo(t, repoDir, nil)
	src := filepath.Join(base, "src")
	writeFiles(t, src, map[string][]byte{"D/a": []byte("alpha"), "top": []byte("top")})
	old := backup(t, repoDir, src)
	writeFiles(t, src, map[string][]byte{"D/b": randomBytes(4, 10<<10)})
	sn := backup(t, repoDir, src)

	r := openRepo(t, repoDir)
	treePack := locate(t, r, old.Tree[0]).Pack
	bPack := locate(t, r, layout(t, r, sn)[src+"/D/b"].data[0]).Pack
	r.Close()
	for _, p := range []id.ID{treePack, bPack} {
		if err := os.Remove(packPath(repoDir, p)); err != nil {
			t.Fatal(err)
		}
	}

	res := runRepair(t, repoDir, repair.Options{})
	s := resultFor(t, res, sn.ID)
	if s.Status != repair.Failed || !errors.Is(s.Err, repair.ErrUnstorable) || s.RepairedAs != nil || s.Record != nil {
		t.Fatalf("repair with the stale index: %+v", s)
	}
	if s := resultFor(t, res, old.ID); s.Status != repair.Repaired || s.RepairedAs != nil {
		t.Fatalf("the older snapshot: %+v", s)
	}
	if n := len(names(t, repoDir, backend.SnapshotFile)); n != 2 {
		t.Fatalf("%d snapshots after a failed repair, want 2", n)
	}

	r = openRepo(t, repoDir)
	if _, err := r.RebuildIndex(ctx); err != nil {
		t.Fatal(err)
	}
	r.Close()
	res = runRepair(t, repoDir, repair.Options{})
	s = resultFor(t, res, sn.ID)
	if s.Status != repair.Repaired || s.RepairedAs == nil || !slices.Equal(lostPaths(s), []string{src + "/D/b"}) || len(res.MissingPacks) != 0 {
		t.Fatalf("repair after repair index: %+v", s)
	}
	r = openRepo(t, repoDir)
	rs, err := snapshot.Load(ctx, r, *s.RepairedAs)
	if err != nil {
		t.Fatal(err)
	}
	checkRestored(t, r, rs, src, []string{src + "/D/b"})
}
