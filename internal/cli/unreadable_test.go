package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// damagedSnapshotRepo backs up three trees and damages the second
// snapshot's file with change. It returns the sandbox, the snapshot IDs
// and the sources.
func damagedSnapshotRepo(t *testing.T, seed int, change func([]byte) []byte, hold bool) (e *env, snaps, srcs []string) {
	t.Helper()
	e = newRepo(t, 0)
	for k := range 3 {
		src := e.path(fmt.Sprintf("src%d", k))
		writeFiles(t, src, map[string][]byte{
			"data.bin":     randomBytes(uint64(10*seed+k), 20<<10+k),
			"etc/conf.txt": []byte(fmt.Sprintf("setting = %d\n", k)),
		})
		r := e.mustRun("backup", "--json", src)
		lines := jsonLines(t, r)
		var sum jsonBackupSummary
		decodeStrict(t, lines[len(lines)-1].raw, &sum)
		snaps, srcs = append(snaps, sum.SnapshotID), append(srcs, src)
	}
	if hold {
		e.mustRun("protect", "--reason", "evidence", snaps[1])
	}
	damageFile(t, e.path("repo", "snapshots", snaps[1]), change)
	return e, snaps, srcs
}

var snapshotFileDamages = []struct {
	name   string
	change func([]byte) []byte
}{
	{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
	{"bit flipped", func(b []byte) []byte { c := slices.Clone(b); c[len(c)/2] ^= 1; return c }},
	{"zero length", func([]byte) []byte { return nil }},
	{"garbage", func(b []byte) []byte { return randomBytes(3, len(b)) }},
}

// TestForgetUnreadableSnapshot: a snapshot file that cannot be read makes
// check fail and say what to run; `forget ID` (a prefix of the file name)
// stores a damage record and removes it, after which check passes and the
// other snapshots restore as they were.
func TestForgetUnreadableSnapshot(t *testing.T) {
	for n, dm := range snapshotFileDamages {
		t.Run(dm.name, func(t *testing.T) {
			t.Parallel()
			e, snaps, srcs := damagedSnapshotRepo(t, n, dm.change, false)
			victim := snaps[1]
			r := e.expectCode(ExitFatal, "check")
			if !strings.Contains(string(r.stdout), "snapshots/"+victim) || !strings.Contains(string(r.stdout), "rewind repair snapshots --forget "+victim[:8]) {
				t.Fatalf("check does not say what to run: %v", r)
			}

			r = e.mustRun("snapshots")
			if !strings.Contains(string(r.stderr), "rewind repair snapshots --forget "+victim[:8]) {
				t.Errorf("snapshots does not say what to do about the unreadable one: %v", r)
			}
			r = e.mustRun("forget", "--json", victim[:10])
			var groups []jsonForgetGroup
			checkDoc(t, "forget.group", r.stdout, &groups)
			if len(groups) != 1 || len(groups[0].Remove) != 1 || groups[0].Remove[0].ID != victim || groups[0].Remove[0].Unreadable == "" {
				t.Fatalf("forget --json: %s", r.stdout)
			}
			if _, err := os.Stat(e.path("repo", "snapshots", victim)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the unreadable snapshot file is still there: %v", err)
			}
			recs, err := os.ReadDir(e.path("repo", "damaged"))
			if err != nil || len(recs) != 1 {
				t.Fatalf("damage records: %v, %v", recs, err)
			}
			e.mustRun("check")
			for _, k := range []int{0, 2} {
				target := e.path(fmt.Sprintf("restore%d", k))
				e.mustRun("restore", snaps[k], "--target", target)
				sameFiles(t, srcs[k], filepath.Join(target, srcs[k]))
			}
		})
	}
}

// TestRepairUnreadableSnapshot: `repair snapshots` records an unreadable
// snapshot file and keeps it, check then names the record and forget;
// `repair snapshots --forget` removes it without a second record.
func TestRepairUnreadableSnapshot(t *testing.T) {
	for n, dm := range snapshotFileDamages {
		t.Run(dm.name, func(t *testing.T) {
			t.Parallel()
			e, snaps, _ := damagedSnapshotRepo(t, 50+n, dm.change, false)
			victim := snaps[1]
			r := e.mustRun("repair", "snapshots", "--json")
			lines := jsonLines(t, r)
			var unreadable []jsonRepairSnapshot
			for _, l := range lines[:len(lines)-1] {
				var s jsonRepairSnapshot
				checkDoc(t, "repair.snapshots.snapshot", l.raw, &s)
				if s.Status == "unreadable" {
					unreadable = append(unreadable, s)
				} else if s.Status != "intact" {
					t.Errorf("snapshot %s: status %q", s.SnapshotID, s.Status)
				}
			}
			var sum jsonRepairSnapshotsSummary
			checkDoc(t, "repair.snapshots.summary", lines[len(lines)-1].raw, &sum)
			if len(unreadable) != 1 || unreadable[0].SnapshotID != victim || unreadable[0].DamageRecord == "" ||
				unreadable[0].Error == "" || unreadable[0].Forgotten || sum.Unreadable != 1 || sum.Snapshots != 3 {
				t.Fatalf("repair snapshots: %s", r.stdout)
			}
			if _, err := os.Stat(e.path("repo", "snapshots", victim)); err != nil {
				t.Fatalf("repair without --forget removed the file: %v", err)
			}
			r = e.expectCode(ExitFatal, "check")
			if !strings.Contains(string(r.stdout), unreadable[0].DamageRecord[:8]) || !strings.Contains(string(r.stdout), "rewind forget "+victim[:8]) {
				t.Fatalf("check after the record does not say to forget it: %v", r)
			}
			r = e.mustRun("repair", "snapshots", "--forget")
			if !strings.Contains(string(r.stdout), "recorded before") || !strings.Contains(string(r.stdout), "removed") {
				t.Errorf("repair --forget: %v", r)
			}
			if recs, _ := os.ReadDir(e.path("repo", "damaged")); len(recs) != 1 {
				t.Fatalf("%d damage records, want 1", len(recs))
			}
			e.mustRun("check")
			r = e.mustRun("snapshots", "--json")
			if strings.Contains(string(r.stdout), victim) || !strings.Contains(string(r.stdout), snaps[0]) || !strings.Contains(string(r.stdout), snaps[2]) {
				t.Fatalf("snapshots after: %s", r.stdout)
			}
		})
	}
}

// TestForgetUnreadableHeld: a legal hold names a snapshot by ID, so it
// keeps an unreadable one too: forget refuses, says how to lift the hold,
// and leaves the file and the records alone.
func TestForgetUnreadableHeld(t *testing.T) {
	e, snaps, _ := damagedSnapshotRepo(t, 90, snapshotFileDamages[1].change, true)
	r := e.expectCode(ExitFatal, "forget", snaps[1][:8])
	if !strings.Contains(string(r.stderr), "legal hold") || !strings.Contains(string(r.stderr), "rewind unprotect "+snaps[1][:8]) {
		t.Fatalf("forget of a held unreadable snapshot: %v", r)
	}
	if _, err := os.Stat(e.path("repo", "snapshots", snaps[1])); err != nil {
		t.Fatalf("the held file was removed: %v", err)
	}
	if recs, _ := os.ReadDir(e.path("repo", "damaged")); len(recs) != 0 {
		t.Fatalf("%d damage records after a refused forget", len(recs))
	}
}
