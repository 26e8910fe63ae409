package snapshot_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// snapshotIDs lists the snapshot files of r.
func snapshotIDs(t *testing.T, r *repository.Repository) []id.ID {
	t.Helper()
	ids, err := r.List(context.Background(), backend.SnapshotFile)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestReplace: the new snapshot is saved and the old one removed; when
// the old one cannot be removed (as under an S3 object lock), the new one
// is removed again and the error says the snapshot is unchanged; when
// even that fails, the error names both, so that the repository never
// holds both silently.
func TestReplace(t *testing.T) {
	ctx := context.Background()
	base, be := newRepo(t)
	root := rootTree(t, base)
	fb := fault.New(be)
	r, err := repository.Open(ctx, fb, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	a := save(t, r, root, 1, "h", []string{"/x"}, "old")
	b := save(t, r, root, 2, "h", []string{"/x"}, "keep")

	// Success: one file less, one more.
	na := *a
	na.Tags = []string{"new"}
	if err := snapshot.Replace(ctx, r, a, &na); err != nil {
		t.Fatal(err)
	}
	got := snapshotIDs(t, r)
	if len(got) != 2 || !slices.Contains(got, na.ID) || !slices.Contains(got, b.ID) || slices.Contains(got, a.ID) {
		t.Fatalf("after Replace: %v", got)
	}
	loaded, err := snapshot.Load(ctx, r, na.ID)
	if err != nil || !slices.Equal(loaded.Tags, []string{"new"}) || !loaded.Time.Equal(a.Time) {
		t.Fatalf("replacement: %+v, %v", loaded, err)
	}

	// The old one cannot be removed: the new one goes again.
	locked := errors.New("object is WORM protected")
	nb := *b
	nb.Tags = []string{"changed"}
	fb.FailNth(fault.Remove, 1, locked)
	err = snapshot.Replace(ctx, r, b, &nb)
	if !errors.Is(err, snapshot.ErrReplace) || !errors.Is(err, locked) || !strings.Contains(err.Error(), "unchanged") {
		t.Fatalf("Replace with a locked old snapshot: %v", err)
	}
	if got := snapshotIDs(t, r); len(got) != 2 || !slices.Contains(got, b.ID) || !slices.Contains(got, na.ID) {
		t.Fatalf("after a failed Replace: %v, want the old snapshot and nothing new", got)
	}
	if !nb.ID.IsNull() {
		t.Errorf("a failed Replace left the new ID set")
	}

	// Neither can be removed: both stay, and the error names both.
	nb = *b
	nb.Tags = []string{"changed again"}
	fb.FailNth(fault.Remove, fault.Every, locked)
	err = snapshot.Replace(ctx, r, b, &nb)
	fb.Reset()
	var re *snapshot.ReplaceError
	if !errors.As(err, &re) || re.NewLeft == "" || !strings.Contains(err.Error(), b.ID.Short()) || !strings.Contains(err.Error(), re.NewLeft) {
		t.Fatalf("Replace with nothing removable: %v", err)
	}
	if got := snapshotIDs(t, r); len(got) != 3 {
		t.Fatalf("%d snapshots, want the old, its replacement and the first one", len(got))
	}

	// A failed save changes nothing.
	fb.FailNth(fault.Save, 1, nil)
	nc := *a
	nc.Time = nc.Time.Add(time.Hour)
	if err := snapshot.Replace(ctx, r, &na, &nc); !errors.Is(err, snapshot.ErrReplace) {
		t.Fatalf("Replace with a failing save: %v", err)
	}
	if got := snapshotIDs(t, r); len(got) != 3 || !slices.Contains(got, na.ID) {
		t.Fatalf("after a failed save: %v", got)
	}
}

// TestGuardRefuse names every kept snapshot and nothing else.
func TestGuardRefuse(t *testing.T) {
	r, _ := newRepo(t)
	root := rootTree(t, r)
	a := save(t, r, root, 1, "h", []string{"/x"})
	b := save(t, r, root, 2, "h", []string{"/x"})
	now := a.Time.Add(time.Hour)
	g := snapshot.Guard{Holds: map[id.ID][]string{b.ID: {"audit"}}}
	err := g.Refuse([]*snapshot.Snapshot{a, b}, now, "change the tags of", "nothing was changed")
	var ge *snapshot.GuardedError
	if !errors.As(err, &ge) || len(ge.Kept) != 1 || ge.Kept[0] != b {
		t.Fatalf("Refuse: %v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "refusing to change the tags of 1 of the 2 snapshots named; nothing was changed:") ||
		!strings.Contains(msg, b.ID.Short()) || !strings.Contains(msg, "protected: audit") || strings.Contains(msg, a.ID.Short()) {
		t.Errorf("Refuse message:\n%s", msg)
	}
	if err := g.Refuse([]*snapshot.Snapshot{a}, now, "forget", "nothing was removed"); err != nil {
		t.Errorf("Refuse of an unguarded snapshot: %v", err)
	}
	g.MinRetention = 2 * time.Hour
	if err := g.Refuse([]*snapshot.Snapshot{a}, now, "forget", "nothing was removed"); err == nil || !strings.Contains(err.Error(), "minimum retention") {
		t.Errorf("Refuse under minimum retention: %v", err)
	}
}
