package cli

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// TestFindFolderRuns: a run goes on only through consecutive snapshots of
// the same host in which the entry is the same; a gap (a snapshot of the
// host without it), a change, or another host begins a new run, and
// snapshots of other hosts in between do not break it.
func TestFindFolderRuns(t *testing.T) {
	sn := func(i int, host string) *snapshot.Snapshot {
		s := &snapshot.Snapshot{Hostname: host}
		s.ID[0] = byte(i)
		return s
	}
	v1 := &tree.Node{Name: "f", Type: tree.File, Size: 1}
	v2 := &tree.Node{Name: "f", Type: tree.File, Size: 2}
	same := func(a, b *tree.Node) (bool, error) { return a.Size == b.Size, nil }
	type step struct {
		sn *snapshot.Snapshot
		n  *tree.Node // nil: the snapshot lacks the path
	}
	steps := []step{
		{sn(1, "h"), v1}, {sn(2, "h"), v1}, // one run of 2
		{sn(3, "h"), nil},    // gap
		{sn(4, "h"), v1},     // same as before the gap: a new run
		{sn(5, "other"), v1}, // another host: its own run
		{sn(6, "h"), v1},     // continues 4 across the other host
		{sn(7, "h"), v2},     // changed: a new run
	}
	f := newFindFolder()
	for _, s := range steps {
		f.next(s.sn)
		if s.n != nil {
			if err := f.add(same, "/f", s.n, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	for _, r := range f.runs {
		got = append(got, fmt.Sprintf("%s %d-%d x%d", r.first.Hostname, r.first.ID[0], r.last.ID[0], r.snapshots))
	}
	want := []string{"h 1-2 x2", "h 4-6 x2", "other 5-5 x1", "h 7-7 x1"}
	if !slices.Equal(got, want) {
		t.Errorf("runs %q, want %q", got, want)
	}
	if f.found != 6 {
		t.Errorf("found %d matches, want 6", f.found)
	}
}
