package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestMountBigDir lists a directory of 3,000 entries through the mount:
// the kernel reads it in many READDIRPLUS requests, each from the offset
// the last ended at, on a listing the mount opens for each (it answers no
// OPENDIR); every name comes once, and twice-read listings agree.
func TestMountBigDir(t *testing.T) {
	testutil.RequireFUSE(t)
	e := newRepo(t, 0)
	src := e.path("big")
	files := map[string][]byte{}
	for i := range 3000 {
		files[fmt.Sprintf("entry-with-a-longish-name-%05d", i)] = nil
	}
	files["sub/x"] = []byte("x")
	writeFiles(t, src, files)
	e.mustRun("backup", src)
	mnt := e.path("mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	startMount(t, e, mnt)
	for _, p := range []string{filepath.Join(mnt, "latest", hostname(t), src), filepath.Join(mnt, "at", "now", src), filepath.Join(mnt, "latest", hostname(t), src)} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		// Small batches: many getdents calls, each continuing where the
		// last stopped.
		var names []string
		for {
			batch, err := f.Readdirnames(7)
			names = append(names, batch...)
			if err != nil || len(batch) == 0 || len(names) > 10000 {
				break
			}
		}
		f.Close()
		sort.Strings(names)
		if len(names) != 3001 || names[0] != "entry-with-a-longish-name-00000" || names[3000] != "sub" {
			t.Errorf("%s: %d names (%v ... %v), want 3001", p, len(names), names[:min(2, len(names))], names[max(0, len(names)-2):])
		}
		for i := 1; i < len(names); i++ {
			if names[i] == names[i-1] {
				t.Errorf("%s: %q listed twice", p, names[i])
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "at", "now", src, "sub", "x")); err != nil || string(b) != "x" {
		t.Errorf("sub/x through at/: %q %v", b, err)
	}
}
