package restorer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// mountTmpfs mounts a tmpfs with the given options on a new folder and
// unmounts it when the test ends. It needs root: the test is skipped
// otherwise, and fails if the mount fails under CI=true.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	testutil.RequireRoot(t)
	mount := testutil.RequireTool(t, "mount")
	dir := filepath.Join(t.TempDir(), "small")
	must(t, os.Mkdir(dir, 0o755))
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		if testutil.CI() {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// TestRestoreDiskFull restores 8 MiB onto a 4 MiB tmpfs. The restore
// must stop with ErrDiskFull and advice, leave the repository intact, and
// following the advice (make room, restore again with Overwrite) must
// finish the job.
func TestRestoreDiskFull(t *testing.T) {
	small := mountTmpfs(t, "size=4m")
	src := filepath.Join(t.TempDir(), "src")
	files := map[string][]byte{}
	for i := range 8 {
		name := fmt.Sprintf("d%d/file%02d", i%2, i)
		files[name] = randomBytes(uint64(i), 1<<20)
		writeFile(t, filepath.Join(src, name), files[name])
	}
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)

	target := filepath.Join(small, "target")
	st, err := restore(t, r, sn, src, restorer.Options{Target: target})
	if !errors.Is(err, restorer.ErrDiskFull) {
		t.Fatalf("restore onto a full disk: %v, want ErrDiskFull", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "free space") || !strings.Contains(msg, "--overwrite") {
		t.Errorf("error %q does not say what to do", msg)
	}
	if st == nil || st.Files >= int64(len(files)) {
		t.Errorf("stats %+v: a full disk cannot have taken every file", st)
	}
	checkRepo(t, r)

	// Make room, as the message says, and finish with Overwrite.
	runTool(t, "mount", "-o", "remount,size=64m", small)
	if st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true}); err != nil {
		t.Fatalf("restore after making room: %v\n%s", err, errorsText(st))
	}
	for name, want := range files {
		if got, err := os.ReadFile(filepath.Join(target, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after the second restore: %d bytes, %v", name, len(got), err)
		}
	}
}

// TestRestoreOutOfInodes restores a snapshot of folders and symlinks only
// onto a tmpfs with room for 50 inodes: running out of inodes is a full
// disk too, even when no regular file is being written.
func TestRestoreOutOfInodes(t *testing.T) {
	small := mountTmpfs(t, "size=16m,nr_inodes=50")
	src := filepath.Join(t.TempDir(), "src")
	for i := range 40 {
		d := filepath.Join(src, fmt.Sprintf("dir%02d", i))
		must(t, os.MkdirAll(filepath.Join(d, "sub"), 0o755))
		must(t, os.Symlink("target", filepath.Join(d, "link")))
	}
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)

	st, err := restore(t, r, sn, src, restorer.Options{Target: filepath.Join(small, "target")})
	if !errors.Is(err, restorer.ErrDiskFull) {
		t.Fatalf("restore onto a filesystem out of inodes: %v, want ErrDiskFull (%d errors)", err, len(st.Errors))
	}
	checkRepo(t, r)
}

// checkRepo runs a full check, data included, and fails on any problem.
func checkRepo(t *testing.T, r *repository.Repository) {
	t.Helper()
	res, err := checker.Check(context.Background(), r, checker.Options{ReadData: true})
	must(t, err)
	if len(res.Problems) != 0 {
		t.Errorf("repository check after the failed restore: %v", res.Problems)
	}
}
