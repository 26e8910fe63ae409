package cli

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestMountMeasure measures, on the standard bench datasets (go run
// ../shared/bench/mkdata.go, or go run ./bench -prepare), what issue 14
// sets targets for, and logs it; it asserts no timing. It runs only with
// REWIND_MOUNT_BENCH=1 (it backs up 1.5 GB):
//
//		REWIND_MOUNT_BENCH=1 go test ./internal/cli -run TestMountMeasure -v
//
//	  - a sequential read of the image set's 2 GiB disk.img through at/,
//	    against restore of the same file into tmpfs (target: the read at
//	    least 0.8x as fast);
//	  - find over the tree set through at/, against find on the source
//	    (target: at most 2x the time).
func TestMountMeasure(t *testing.T) {
	if os.Getenv("REWIND_MOUNT_BENCH") == "" {
		t.Skip("a measurement: set REWIND_MOUNT_BENCH=1 to run it")
	}
	data := os.Getenv("REWIND_BENCH_DATA")
	if data == "" {
		data = "/var/tmp/rwbench-data"
	}
	img := filepath.Join(data, "pristine/image/disk.img")
	treeSet := filepath.Join(data, "pristine/tree")
	for _, p := range []string{img, treeSet} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("dataset missing (go run ./bench -prepare): %v", err)
		}
	}
	e := newRepo(t, 0)
	e.mustRun("backup", filepath.Dir(img), treeSet)
	mnt := e.path("mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	startMount(t, e, mnt)
	moments := lastMoments(t, mnt)
	view := filepath.Join(mnt, "at", moments[len(moments)-1])

	// Sequential read, 1 MiB at a time, as cp does.
	// Each read goes through a view of its own, so that the kernel's
	// page cache of the one before does not answer it.
	views := 0
	read := func() time.Duration {
		views++
		f, err := os.Open(filepath.Join(mnt, "at", []string{"", "now", "-0s"}[views], img))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		start := time.Now()
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
		if err != nil || n != 2<<30 {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		return time.Since(start)
	}
	restore := func() time.Duration {
		target, err := os.MkdirTemp("/dev/shm", "rewind-mount-measure-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(target)
		start := time.Now()
		e.mustRun("restore", "latest", "--include", img, "--target", target)
		return time.Since(start)
	}
	findIn := func(dir string) time.Duration {
		start := time.Now()
		if out, err := exec.Command("find", dir).CombinedOutput(); err != nil {
			t.Fatalf("find %s: %v: %s", dir, err, out)
		}
		return time.Since(start)
	}
	// Each measure twice, alternating, reporting the faster: the machine
	// is shared.
	best := func(a, b time.Duration) time.Duration { return min(a, b) }
	r1, s1 := read(), restore()
	s2, r2 := restore(), read()
	mountRead, restoreTime := best(r1, r2), best(s1, s2)
	t.Logf("mount: sequential read of disk.img (2 GiB) through at/: %.2f s (%.0f MiB/s); restore of it into tmpfs: %.2f s; speed ratio %.2f (target >= 0.8)",
		mountRead.Seconds(), 2048/mountRead.Seconds(), restoreTime.Seconds(), restoreTime.Seconds()/mountRead.Seconds())

	srcFind := findIn(treeSet)
	srcFind = best(srcFind, findIn(treeSet))
	cold := findIn(filepath.Join(view, treeSet))
	warm := findIn(filepath.Join(view, treeSet))
	cold2 := findIn(filepath.Join(mnt, "at", "-0m", treeSet)) // a new view: nothing cached by the kernel
	t.Logf("mount: find over the tree set through at/: %.2f s first, %.2f s on a second view, %.2f s again (kernel-cached); on the source %.2f s; ratio %.1fx first (target <= 2x)",
		cold.Seconds(), cold2.Seconds(), warm.Seconds(), srcFind.Seconds(), best(cold, cold2).Seconds()/srcFind.Seconds())
}
