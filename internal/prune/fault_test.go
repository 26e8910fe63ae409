package prune

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// faultScene builds a repository where a prune repacks, condemns and
// deletes, and returns it with the snapshot that must survive.
func faultScene(t *testing.T) (*fault.Backend, *snapshot.Snapshot, string) {
	t.Helper()
	fb := fault.New(mem.New())
	initRepo(t, fb)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeTree(t, a, 11, 20, 30<<10)
	writeTree(t, b, 12, 40, 8<<10)
	snA := backupDir(t, fb, a)
	entries, _ := filepath.Glob(filepath.Join(b, "*", "f*"))
	first := backupDir(t, fb, b)
	for i, p := range entries {
		if i%2 == 0 {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	snB := backupDir(t, fb, b)
	forget(t, fb, snA, first)
	return fb, snB, b
}

// TestPruneFaults fails each write and each delete of a prune in turn,
// before it reaches the store and after (a lost reply). Whatever the
// failed prune left, the next prune completes, check is clean and the
// kept snapshot restores bit-exactly.
func TestPruneFaults(t *testing.T) {
	fb, _, _ := faultScene(t)
	saves, removes := fb.Calls(fault.Save), fb.Calls(fault.Remove)
	runPrune(t, fb, nil, Options{MaxUnused: 0})
	saves, removes = fb.Calls(fault.Save)-saves, fb.Calls(fault.Remove)-removes
	t.Logf("a clean prune makes %d saves and %d removes", saves, removes)
	if saves < 3 || removes < 3 {
		t.Fatalf("clean prune made %d saves and %d removes; the scene should repack, mark and delete", saves, removes)
	}
	type tc struct {
		name   string
		inject func(fb *fault.Backend)
	}
	var cases []tc
	for k := 1; k <= saves; k++ {
		cases = append(cases,
			tc{fmt.Sprintf("fail-save-%d", k), func(fb *fault.Backend) { fb.FailNth(fault.Save, k, nil) }},
			tc{fmt.Sprintf("lost-reply-save-%d", k), func(fb *fault.Backend) { fb.FailNthAfter(fault.Save, k, nil) }})
	}
	for k := 1; k <= removes; k++ {
		cases = append(cases,
			tc{fmt.Sprintf("fail-remove-%d", k), func(fb *fault.Backend) { fb.FailNth(fault.Remove, k, nil) }},
			tc{fmt.Sprintf("lost-reply-remove-%d", k), func(fb *fault.Backend) { fb.FailNthAfter(fault.Remove, k, nil) }})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fb, keep, dir := faultScene(t)
			c.inject(fb)
			_, err := tryPrune(fb, nil, Options{MaxUnused: 0})
			fb.Reset()
			if err != nil {
				t.Logf("faulted prune: %v", err)
				testutil.CheckNamedOnce(t, "faulted prune", err)
			}
			// Whatever happened, the kept snapshot restores now, and after
			// a clean prune, which leaves a clean repository.
			restoreEqual(t, fb, keep.ID, dir)
			res := runPrune(t, fb, nil, Options{MaxUnused: 0})
			if res.PacksPending != 0 {
				t.Errorf("packs still pending after a clean prune with no locks: %+v", res)
			}
			c := checkClean(t, fb)
			if c.Condemned != 0 || len(c.Unindexed) != 0 {
				t.Errorf("after recovery: condemned %d, unindexed %v", c.Condemned, c.Unindexed)
			}
			restoreEqual(t, fb, keep.ID, dir)
		})
	}
}
