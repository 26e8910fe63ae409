package repair_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// snapshotDamages are ways a snapshot file is damaged at rest. Those that
// take the repository store a file that verifies and decrypts, but whose
// content is not a snapshot.
var snapshotDamages = []struct {
	name   string
	damage func(t *testing.T, r *repository.Repository, stored []byte) []byte
}{
	{"truncated", func(_ *testing.T, _ *repository.Repository, b []byte) []byte { return b[:len(b)-7] }},
	{"bit flipped", func(_ *testing.T, _ *repository.Repository, b []byte) []byte {
		c := slices.Clone(b)
		c[len(c)/2] ^= 4
		return c
	}},
	{"zero length", func(*testing.T, *repository.Repository, []byte) []byte { return nil }},
	{"garbage", func(_ *testing.T, _ *repository.Repository, b []byte) []byte { return randomBytes(77, len(b)) }},
}

// sealedAs stores plain as a sealed snapshot file and returns its ID: a
// file that verifies and decrypts but does not decode as a snapshot.
func sealedAs(t *testing.T, r *repository.Repository, plain string) id.ID {
	t.Helper()
	i, err := r.SaveJSON(context.Background(), backend.SnapshotFile, jsonRaw(plain))
	if err != nil {
		t.Fatal(err)
	}
	return i
}

type jsonRaw string

func (j jsonRaw) MarshalJSON() ([]byte, error) { return []byte(j), nil }

// TestRecordUnreadable damages one snapshot file among three in each way:
// it is listed apart from the readable ones, RecordUnreadable stores one
// damage record saying why and keeps the file, a second run finds the
// record, and Forget removes the file; the other snapshots are untouched.
func TestRecordUnreadable(t *testing.T) {
	ctx := context.Background()
	cases := len(snapshotDamages) + 2
	for c := range cases {
		repoDir := filepath.Join(t.TempDir(), "repo")
		initRepo(t, repoDir, nil)
		r := openRepo(t, repoDir)
		var good []id.ID
		var victim id.ID
		name := ""
		for k := range 3 {
			sn := &snapshot.Snapshot{Time: fixedNow.Add(time.Duration(k) * time.Hour), Hostname: "host1", Paths: []string{"/srv"}, Tree: []id.ID{{byte(k + 1)}}}
			if err := snapshot.Save(ctx, r, sn); err != nil {
				t.Fatal(err)
			}
			if k == 1 {
				victim = sn.ID
			} else {
				good = append(good, sn.ID)
			}
		}
		file := filepath.Join(repoDir, "snapshots", victim.String())
		switch {
		case c < len(snapshotDamages):
			name = snapshotDamages[c].name
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, snapshotDamages[c].damage(t, r, b), 0o400); err != nil {
				t.Fatal(err)
			}
		case c == len(snapshotDamages):
			name = "sealed, not JSON"
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			victim = sealedAs(t, r, `"just a string"`)
		default:
			name = "sealed, no tree"
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			victim = sealedAs(t, r, `{"time":"2026-03-01T03:00:00Z","hostname":"host1"}`)
		}
		t.Run(name, func(t *testing.T) {
			sns, bad, err := repair.ListSnapshots(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if len(sns) != 2 || len(bad) != 1 || bad[0].ID != victim || !errors.Is(bad[0].Err, repository.ErrCorrupt) {
				t.Fatalf("listed %d readable and %+v unreadable, want 2 and %s", len(sns), bad, victim.Short())
			}
			dry, _, err := repair.RecordUnreadable(ctx, r, bad, repair.Options{DryRun: true, Forget: true})
			if err != nil || len(dry) != 1 || dry[0].Record != nil || dry[0].Forgotten {
				t.Fatalf("dry run: %+v, %v", dry, err)
			}
			first, _, err := repair.RecordUnreadable(ctx, r, bad, repair.Options{Now: func() time.Time { return fixedNow }})
			if err != nil {
				t.Fatal(err)
			}
			if len(first) != 1 || first[0].Record == nil || first[0].Before || first[0].Forgotten {
				t.Fatalf("first run: %+v", first)
			}
			if _, err := os.Stat(filepath.Join(repoDir, "snapshots", victim.String())); err != nil {
				t.Fatalf("the unreadable file was removed without Forget: %v", err)
			}
			recs, err := repair.ListDamaged(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			rec, ok := recs[victim]
			if !ok || len(recs) != 1 || rec.RepairedAs != nil || rec.Unreadable == "" || !rec.Time.Equal(fixedNow) {
				t.Fatalf("damage records %+v", recs)
			}
			second, _, err := repair.RecordUnreadable(ctx, r, bad, repair.Options{Forget: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(second) != 1 || !second[0].Before || *second[0].Record != rec.ID || !second[0].Forgotten {
				t.Fatalf("second run: %+v", second)
			}
			if _, err := os.Stat(filepath.Join(repoDir, "snapshots", victim.String())); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Forget left the file: %v", err)
			}
			if recs, _ := repair.ListDamaged(ctx, r); len(recs) != 1 {
				t.Fatalf("%d records after the second run, want the first one only", len(recs))
			}
			sns, bad, err = repair.ListSnapshots(ctx, r)
			if err != nil || len(bad) != 0 || len(sns) != 2 || sns[0].ID != good[0] || sns[1].ID != good[1] {
				t.Fatalf("after: %v readable, %v unreadable, %v", sns, bad, err)
			}
			if !strings.Contains(rec.Unreadable, "snapshots/"+victim.String()) {
				t.Errorf("the record's reason does not name the file: %q", rec.Unreadable)
			}
		})
	}
}
