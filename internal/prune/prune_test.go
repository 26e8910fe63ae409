package prune

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// TestPruneDeletesUnreferenced: the data only a forgotten snapshot used is
// deleted in the same run when no other lock is held, the rest restores
// bit-exactly and check is clean.
func TestPruneDeletesUnreferenced(t *testing.T) {
	be := mem.New()
	initRepo(t, be)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeTree(t, a, 1, 30, 40<<10)
	writeTree(t, b, 2, 30, 40<<10)
	snA := backupDir(t, be, a)
	snB := backupDir(t, be, b)
	packsBefore, sizeBefore := packCount(t, be)
	forget(t, be, snA)

	dry := runPrune(t, be, nil, Options{DryRun: true})
	if dry.PacksCondemned == 0 || dry.PacksDeleted != dry.PacksCondemned {
		t.Errorf("dry run: %+v; want packs to condemn, all to be deleted at once", dry)
	}
	if n, _ := packCount(t, be); n != packsBefore {
		t.Fatalf("dry run changed the packs: %d -> %d", packsBefore, n)
	}
	if fileCount(t, be, backend.GCFile) != 0 {
		t.Fatal("dry run stored a mark")
	}

	res := runPrune(t, be, nil, Options{})
	packsAfter, sizeAfter := packCount(t, be)
	t.Logf("packs %d -> %d, bytes %d -> %d; result %+v", packsBefore, packsAfter, sizeBefore, sizeAfter, res)
	if res.PacksDeleted == 0 || res.BytesFreed == 0 {
		t.Errorf("nothing deleted: %+v", res)
	}
	if sizeAfter >= sizeBefore*3/4 {
		t.Errorf("repository shrank only from %d to %d bytes after forgetting half its data", sizeBefore, sizeAfter)
	}
	if n := fileCount(t, be, backend.GCFile); n != 0 {
		t.Errorf("%d marks left after a prune with no other lock", n)
	}
	if res.UsedBlobs == 0 || res.Snapshots != 1 {
		t.Errorf("used blobs %d, snapshots %d", res.UsedBlobs, res.Snapshots)
	}
	c := checkClean(t, be)
	if len(c.Unindexed) != 0 || c.Condemned != 0 {
		t.Errorf("after prune: unindexed %v, condemned %d", c.Unindexed, c.Condemned)
	}
	restoreEqual(t, be, snB.ID, b)

	// A second prune finds nothing to do.
	again := runPrune(t, be, nil, Options{})
	if again.PacksCondemned != 0 || again.PacksDeleted != 0 || again.PacksRepacked != 0 {
		t.Errorf("second prune did work: %+v", again)
	}
}

// TestPruneRepacks: packs that hold both kept and forgotten data are
// repacked, the forgotten data goes, the kept data stays readable.
func TestPruneRepacks(t *testing.T) {
	be := mem.New()
	initRepo(t, be)
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src, 3, 60, 8<<10) // small files share packs
	first := backupDir(t, be, src)
	// Remove every other file, then back up again.
	entries, _ := filepath.Glob(filepath.Join(src, "*", "f*"))
	for i, p := range entries {
		if i%2 == 0 {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	second := backupDir(t, be, src)
	forget(t, be, first)
	_, sizeBefore := packCount(t, be)

	res := runPrune(t, be, nil, Options{MaxUnused: 0})
	_, sizeAfter := packCount(t, be)
	t.Logf("bytes %d -> %d; %+v", sizeBefore, sizeAfter, res)
	if res.PacksRepacked == 0 || res.BytesRepacked == 0 {
		t.Fatalf("no pack repacked: %+v", res)
	}
	if sizeAfter >= sizeBefore*3/4 {
		t.Errorf("repository shrank only from %d to %d bytes", sizeBefore, sizeAfter)
	}
	checkClean(t, be)
	restoreEqual(t, be, second.ID, src)

	// --max-repack-size bounds the copying.
	be2 := mem.New()
	initRepo(t, be2)
	src2 := filepath.Join(t.TempDir(), "src")
	writeTree(t, src2, 4, 60, 8<<10)
	f2 := backupDir(t, be2, src2)
	entries, _ = filepath.Glob(filepath.Join(src2, "*", "f*"))
	for i, p := range entries {
		if i%2 == 0 {
			os.Remove(p)
		}
	}
	s2 := backupDir(t, be2, src2)
	forget(t, be2, f2)
	limited := runPrune(t, be2, nil, Options{MaxRepackBytes: 1})
	if limited.PacksRepacked != 0 {
		t.Errorf("repacked %d packs with a 1-byte limit", limited.PacksRepacked)
	}
	checkClean(t, be2)
	restoreEqual(t, be2, s2.ID, src2)
}

// TestPruneWaitsForLocks: a lock held when the mark is made keeps the
// condemned packs on disk, readable, until it is released.
func TestPruneWaitsForLocks(t *testing.T) {
	be := mem.New()
	initRepo(t, be)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeTree(t, a, 5, 20, 40<<10)
	writeTree(t, b, 6, 20, 40<<10)
	snA := backupDir(t, be, a)
	snB := backupDir(t, be, b)
	forget(t, be, snA)
	packsBefore, _ := packCount(t, be)

	f := &fence{}
	f.hold("backup-1")
	res := runPrune(t, be, f, Options{})
	if res.PacksCondemned == 0 || res.PacksDeleted != 0 || res.PacksPending != res.PacksCondemned {
		t.Fatalf("with a lock held: %+v; want condemned packs pending, none deleted", res)
	}
	if len(res.WaitingFor) != 1 {
		t.Errorf("waiting for %v, want the one lock", res.WaitingFor)
	}
	if n, _ := packCount(t, be); n != packsBefore {
		t.Fatalf("packs deleted while a lock was held: %d -> %d", packsBefore, n)
	}
	if fileCount(t, be, backend.GCFile) != 1 {
		t.Fatal("want one mark")
	}
	c := checkClean(t, be)
	if c.Condemned != res.PacksCondemned || len(c.Unindexed) != 0 {
		t.Errorf("check sees condemned %d (want %d), unindexed %v", c.Condemned, res.PacksCondemned, c.Unindexed)
	}

	// A lock taken after the mark does not hold the deletion back.
	f.release("backup-1")
	f.hold("backup-2")
	res = runPrune(t, be, f, Options{})
	if res.PacksDeleted == 0 || res.PacksPending != 0 {
		t.Fatalf("after the lock was released: %+v", res)
	}
	if fileCount(t, be, backend.GCFile) != 0 {
		t.Error("mark left after its packs were deleted")
	}
	checkClean(t, be)
	restoreEqual(t, be, snB.ID, b)
}

// TestPruneRevivesForConcurrentBackup plays the race that loses data in
// other tools: a backup reads the index, a prune condemns data that the
// backup then deduplicates against, and the backup stores a snapshot
// referencing it. The snapshot must restore, before and after the next
// prune.
func TestPruneRevivesForConcurrentBackup(t *testing.T) {
	be := mem.New()
	initRepo(t, be)
	a := filepath.Join(t.TempDir(), "a")
	writeTree(t, a, 7, 20, 40<<10)
	snA := backupDir(t, be, a)

	// The backup starts: it takes its lock and reads the index.
	f := &fence{}
	f.hold("slow-backup")
	slow := open(t, be, true)

	// Meanwhile the only snapshot is forgotten and pruned.
	forget(t, be, snA)
	res := runPrune(t, be, f, Options{})
	if res.PacksCondemned == 0 || res.PacksDeleted != 0 {
		t.Fatalf("prune: %+v", res)
	}

	// The slow backup stores the same data: it deduplicates against the
	// condemned blobs it still sees in its index.
	snSlow := backupWith(t, slow, a)
	f.release("slow-backup")
	c := checkClean(t, be)
	if c.Condemned == 0 {
		t.Error("check sees no condemned packs before the sweep")
	}
	restoreEqual(t, be, snSlow.ID, a)

	// The next prune revives the packs instead of deleting them.
	res = runPrune(t, be, f, Options{})
	if res.PacksRevived == 0 {
		t.Errorf("no pack revived: %+v", res)
	}
	c = checkClean(t, be)
	if c.Condemned != 0 || len(c.Unindexed) != 0 {
		t.Errorf("after revival: condemned %d, unindexed %v", c.Condemned, c.Unindexed)
	}
	restoreEqual(t, be, snSlow.ID, a)

	// A backup that starts after the mark does not use condemned data:
	// it stores its own copy.
	b := filepath.Join(t.TempDir(), "b")
	writeTree(t, b, 8, 10, 40<<10)
	snB := backupDir(t, be, b)
	forget(t, be, snB, snSlow)
	f.hold("late")
	runPrune(t, be, f, Options{})
	late := open(t, be, true)
	var lateSns []*snapshot.Snapshot
	for _, dir := range []string{a, b} {
		lateSns = append(lateSns, backupWith(t, late, dir))
	}
	f.release("late")
	res = runPrune(t, be, f, Options{})
	if res.PacksDeleted == 0 || res.PacksRevived != 0 {
		t.Errorf("late backups: %+v; want the condemned packs deleted, none revived", res)
	}
	checkClean(t, be)
	restoreEqual(t, be, lateSns[0].ID, a)
	restoreEqual(t, be, lateSns[1].ID, b)
}

// TestPruneRefusesDamage: an index that lists a pack that is gone stops
// the prune before it changes anything, whichever pack it is (one of
// data blobs, or the one holding the trees).
func TestPruneRefusesDamage(t *testing.T) {
	for victim := 0; ; victim++ {
		be := mem.New()
		initRepo(t, be)
		a := filepath.Join(t.TempDir(), "a")
		writeTree(t, a, 9, 10, 40<<10)
		backupDir(t, be, a)
		var packs []string
		be.List(context.Background(), backend.PackFile, func(fi backend.FileInfo) error {
			packs = append(packs, fi.Name)
			return nil
		})
		if victim == len(packs) {
			if victim < 2 {
				t.Fatalf("only %d packs: the test needs a data pack and a tree pack", victim)
			}
			return
		}
		slices.Sort(packs)
		if err := be.Remove(context.Background(), backend.Handle{Type: backend.PackFile, Name: packs[victim]}); err != nil {
			t.Fatal(err)
		}
		before, _ := packCount(t, be)
		_, err := tryPrune(be, nil, Options{})
		if !isMissing(err) {
			t.Fatalf("prune with pack %d of %d gone: %v; want ErrMissing", victim+1, len(packs), err)
		}
		if after, _ := packCount(t, be); after != before || fileCount(t, be, backend.GCFile) != 0 {
			t.Errorf("prune changed a damaged repository (pack %d of %d gone)", victim+1, len(packs))
		}
	}
}

func isMissing(err error) bool { return errors.Is(err, ErrMissing) }

// TestPruneToleratesRecordedDamage: a snapshot with a damage record does
// not stop prune for the blobs it lost; without the record it does.
func TestPruneToleratesRecordedDamage(t *testing.T) {
	be := mem.New()
	initRepo(t, be)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeTree(t, a, 13, 20, 40<<10)
	snA := backupDir(t, be, a)
	writeTree(t, b, 14, 20, 40<<10)
	snB := backupDir(t, be, b)
	// Lose a data pack of a's snapshot, and rebuild the index so that it
	// no longer lists it.
	r := open(t, be, true)
	entries, _ := filepath.Glob(filepath.Join(a, "*", "f*"))
	n, err := snapshot.Lookup(context.Background(), r, snA, entries[0])
	if err != nil || len(n.Content) == 0 {
		t.Fatalf("lookup %s: %v", entries[0], err)
	}
	loc, ok := r.Index().Lookup(n.Content[0].ID)
	if !ok {
		t.Fatal("chunk not indexed")
	}
	if err := be.Remove(context.Background(), backend.Handle{Type: backend.PackFile, Name: loc.Pack.String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, be, true).RebuildIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := tryPrune(be, nil, Options{}); !isMissing(err) {
		t.Fatalf("prune with unrecorded damage: %v; want ErrMissing", err)
	}
	res, err := tryPrune(be, nil, Options{Damaged: map[id.ID]bool{snA.ID: true}})
	if err != nil {
		t.Fatalf("prune with recorded damage: %v", err)
	}
	t.Logf("%+v", res)
	restoreEqual(t, be, snB.ID, b)
}
