package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestBtrfsSnapshotJob: a files job reading a subvolume through a
// btrfs_snapshot step, on a real loop-mounted btrfs, while a writer keeps
// adding files (each written whole under a temporary name, fsynced, then
// renamed to its checksum, as a crash-safe writer does: a snapshot is a
// crash-consistent image, and a file renamed before its data reached the
// disk can be in it empty, as after a power cut; docs/STEPS.md). The snapshot records the real paths, never the
// .rewind-snap one; every restored file is whole; the read-only snapshot
// is gone afterwards, as is a stale one a killed run left; and a failing
// run removes its snapshot too.
func TestBtrfsSnapshotJob(t *testing.T) {
	mnt := testutil.Btrfs(t)
	vol := filepath.Join(mnt, "vol")
	testutil.BtrfsSubvolume(t, vol)
	data := filepath.Join(vol, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	btrfsBin := testutil.RequireTool(t, "btrfs")
	stale := filepath.Join(vol, SnapshotPrefix+"www-20000101T000000Z")
	if out, err := exec.Command(btrfsBin, "subvolume", "snapshot", "-r", vol, stale).CombinedOutput(); err != nil {
		t.Fatalf("stale snapshot: %v: %s", err, out)
	}

	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			content := []byte(strings.Repeat(fmt.Sprintf("file %d ", i), 2000+i%5000))
			sum := sha256.Sum256(content)
			tmp := filepath.Join(data, fmt.Sprintf("w%d.part", i))
			if err := writeSynced(tmp, content); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tmp, filepath.Join(data, hex.EncodeToString(sum[:])+".bin")); err != nil {
				t.Error(err)
				return
			}
			written.Add(1)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for written.Load() < 20 {
		// Some files exist before the snapshot.
		runtime.Gosched()
	}

	repo := testRepo(t, "", "local")
	j := &plan.Job{Name: "www", Kind: plan.KindFiles, Paths: []string{data}, Exclude: []string{"*.part"},
		Before: []*plan.Step{{Kind: plan.StepBtrfsSnapshot, Arg: vol}}}
	r := newRunner(t, j, repo)
	r.Btrfs = btrfsBin
	rec, err := r.Run(context.Background(), j, "manual")
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{})

	sns := snapshots(t, repo)
	if len(sns) != 1 || !slices.Equal(sns[0].Paths, []string{data}) {
		t.Fatalf("snapshots %+v, want one of %s", sns, data)
	}
	ls := string(rewind(t, repo, "ls", "--recursive", rec.Snapshot))
	if strings.Contains(ls, SnapshotPrefix) || !strings.Contains(ls, data+"/") {
		t.Errorf("ls shows the snapshot's path or not the real one:\n%s", ls)
	}
	target := t.TempDir()
	rewind(t, repo, "restore", rec.Snapshot, "--target", target)
	restored := filepath.Join(target, data)
	n := 0
	err = filepath.WalkDir(restored, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if want := hex.EncodeToString(sum[:]) + ".bin"; d.Name() != want {
			t.Errorf("restored %s holds %d bytes that are not its content (checksum %s)", d.Name(), len(b), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 || int64(n) != rec.Files {
		t.Errorf("restored %d files, record says %d; want at least the 20 written before", n, rec.Files)
	}
	t.Logf("%d files in the snapshot, %d written by the end", n, written.Load())
	if left, _ := filepath.Glob(filepath.Join(vol, SnapshotPrefix+"*")); len(left) != 0 {
		t.Errorf("snapshots left in the subvolume: %q", left)
	}

	// A failing run removes its snapshot too.
	j.Before = append(j.Before, sh("exit 1"))
	if _, err := r.Run(context.Background(), j, "manual"); err == nil {
		t.Fatal("the run did not fail")
	}
	if left, _ := filepath.Glob(filepath.Join(vol, SnapshotPrefix+"*")); len(left) != 0 {
		t.Errorf("snapshots left in the subvolume after a failed run: %q", left)
	}
}

// writeSynced writes a file and flushes it to the disk.
func writeSynced(p string, b []byte) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
