package archiver

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestExcludeNodump: with ExcludeNodump, files and directories flagged
// nodump (chattr +d, on a real ext4) are left out and named, a file below
// a flagged directory with them; without it they are backed up.
func TestExcludeNodump(t *testing.T) {
	root := testutil.Ext4(t)
	chattr := testutil.RequireTool(t, "chattr")
	src := filepath.Join(root, "src")
	writeFile(t, filepath.Join(src, "keep.txt"), []byte("kept"))
	writeFile(t, filepath.Join(src, "scratch.bin"), randomBytes(1, 5000))
	writeFile(t, filepath.Join(src, "cache", "blob"), randomBytes(2, 5000))
	writeFile(t, filepath.Join(src, "sub", "also-kept"), []byte("kept too"))
	for _, p := range []string{"scratch.bin", "cache"} {
		if out, err := exec.Command(chattr, "+d", filepath.Join(src, p)).CombinedOutput(); err != nil {
			t.Fatalf("chattr +d %s: %v: %s", p, err, out)
		}
	}
	r := newTestRepo(t, "")
	sn, a := backup(t, r, Options{ExcludeNodump: true}, src)
	for _, p := range []string{"keep.txt", "sub/also-kept"} {
		lookup(t, r, sn, filepath.Join(src, p))
	}
	for _, p := range []string{"scratch.bin", "cache", "cache/blob"} {
		if _, err := lookupErr(r, sn, filepath.Join(src, p)); err == nil {
			t.Errorf("%s is flagged nodump (or below such a folder) but was backed up", p)
		}
	}
	skipped := map[string]string{}
	for _, s := range a.Skipped() {
		skipped[s.Path] = s.Error
	}
	for _, p := range []string{"scratch.bin", "cache"} {
		if skipped[filepath.Join(src, p)] != "nodump flag" {
			t.Errorf("%s not named among the skipped: %v", p, skipped)
		}
	}
	// Without the option, everything is there.
	sn, _ = backup(t, r, Options{}, src)
	lookup(t, r, sn, filepath.Join(src, "cache", "blob"))
	lookup(t, r, sn, filepath.Join(src, "scratch.bin"))
}
