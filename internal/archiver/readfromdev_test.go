package archiver

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestReadFromNewSnapshotUnchanged backs up a btrfs subvolume twice, each
// time from a new read-only snapshot of it. Every snapshot has its own
// device number, yet the second backup must find every file unchanged
// against the first instead of reading them all again: entries read from
// the copy are recorded on the real folder's device.
func TestReadFromNewSnapshotUnchanged(t *testing.T) {
	mnt := testutil.Btrfs(t)
	real := filepath.Join(mnt, "data")
	testutil.BtrfsSubvolume(t, real)
	const files = 20
	for i := range files {
		writeFile(t, filepath.Join(real, "d", fmt.Sprintf("f%02d", i)), randomBytes(uint64(i), 40_000))
	}
	snap := func(name string) string {
		p := filepath.Join(mnt, name)
		if out, err := exec.Command("btrfs", "-q", "subvolume", "snapshot", "-r", real, p).CombinedOutput(); err != nil {
			t.Fatalf("btrfs snapshot: %v: %s", err, out)
		}
		return p
	}
	r := newTestRepo(t, "")
	first, _ := backup(t, r, Options{ReadFrom: []ReadFrom{{Real: real, Source: snap("s1")}}}, real)
	if first.Summary.FilesNew != files {
		t.Fatalf("first backup: %d new files, want %d", first.Summary.FilesNew, files)
	}
	second, _ := backup(t, r, Options{Parent: first, ReadFrom: []ReadFrom{{Real: real, Source: snap("s2")}}}, real)
	if got := second.Summary.FilesUnchanged; got != files {
		t.Errorf("second backup from a new snapshot: %d of %d files unchanged (new %d, changed %d), want all",
			got, files, second.Summary.FilesNew, second.Summary.FilesChanged)
	}
	if n := lookup(t, r, second, filepath.Join(real, "d", "f03")); string(content(t, r, n)) != string(randomBytes(3, 40_000)) {
		t.Error("f03's content differs")
	}
}
