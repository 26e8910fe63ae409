package cli

// Power loss on the local backend, with the real kernel: the repository
// lives on an ext4 filesystem in a loop-mounted image, and the test cuts
// its power (EXT4_IOC_SHUTDOWN without flushing the journal) while rewind
// writes, so that every write rewind did not sync is lost. The filesystem
// is then checked with e2fsck and mounted again, as a reboot would, and
// the repository must be consistent: docs/GUARANTEES.md, "The local
// backend's fsync order".

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// Power cut knobs. A longer run is `go test ./internal/cli -run
// TestPowerLoss -rewind.powercuts 50 -rewind.powercut-seed 7`. The
// filesystem is 256 MiB: keep -rewind.powercut-mib below about 100.
var (
	powerCuts    = flag.Int("rewind.powercuts", 5, "number of backups, and of forgets, TestPowerLoss* cut the power of")
	powerCutSeed = flag.Uint64("rewind.powercut-seed", 1, "seed of the power cut moments and data of TestPowerLoss*")
	powerCutMiB  = flag.Int("rewind.powercut-mib", 48, "size in MiB of the data set TestPowerLossBackup starts with")
)

// powerCutData writes about mib MiB below dir: 4 MiB and 256 KiB random
// files for half of it, and compressible text files for the other half.
func powerCutData(t *testing.T, dir string, rng *rand.Rand, mib int) {
	t.Helper()
	files := map[string][]byte{}
	for i := range max(mib/16, 1) {
		files[fmt.Sprintf("big/%d.bin", i)] = randomBytes(rng.Uint64(), 4<<20)
	}
	for i := range mib * 4 / 8 {
		files[fmt.Sprintf("small/%02d/%d.bin", i%8, i)] = randomBytes(rng.Uint64(), 256<<10)
	}
	for i := range mib * 32 / 2 {
		files[fmt.Sprintf("text/%02d/%d.txt", i%16, i)] = crashText(rng, 32<<10)
	}
	writeFiles(t, dir, files)
}

// runUntilPowerCut starts rewind with args and cuts the power of fs after
// delay, or as soon as rewind exits if that is sooner, then kills rewind
// with SIGKILL. It reports whether rewind had exited with status 0 before
// the cut; any other exit before the cut fails the test.
func runUntilPowerCut(t *testing.T, e *env, fs *testutil.PowerCutFS, delay time.Duration, args ...string) (completed bool, took time.Duration) {
	t.Helper()
	c := e.cmd(args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	begin := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	exited := false
	select {
	case err := <-done:
		exited, took = true, time.Since(begin)
		if err != nil {
			t.Fatalf("rewind %v failed by itself before the power cut: %v\n%s", args, err, out.Bytes())
		}
	case <-time.After(delay):
	}
	if err := fs.CutPower(); err != nil {
		t.Fatal(err)
	}
	if !exited {
		if err := c.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		// After the cut rewind may also stop by itself on I/O errors.
		err := <-done
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
	}
	return exited, took
}

// checkAfterPowerCut requires check --read-data to pass, and returns the
// number of unindexed packs it noted (which an interrupted write may
// leave, and the format allows).
func checkAfterPowerCut(t *testing.T, e *env) int {
	t.Helper()
	r := e.run("check", "--read-data", "--json")
	if r.code != 0 {
		t.Fatalf("check after the power cut: %v", r)
	}
	var chk struct {
		Unindexed []string `json:"unindexed_packs"`
	}
	if err := json.Unmarshal(jsonLines(t, r)[0].raw, &chk); err != nil {
		t.Fatal(err)
	}
	return len(chk.Unindexed)
}

// restoreSame restores snapshot sn and requires it to hold exactly the
// files of the folders want (absolute paths, backed up as they are now),
// and no other file.
func restoreSame(t *testing.T, e *env, sn string, want ...string) {
	t.Helper()
	target := e.path("restore-" + sn[:8])
	defer os.RemoveAll(target)
	if r := e.run("restore", sn, "--target", target); r.code != 0 {
		t.Fatalf("restore %s: %v", sn[:8], r)
	}
	n := 0
	for _, w := range want {
		sameFiles(t, w, target+w)
		n += len(readFiles(t, w))
	}
	if got := readFiles(t, target); len(got) != n {
		t.Errorf("snapshot %s restores %d files, want the %d of %v", sn[:8], len(got), n, want)
	}
}

// TestPowerLossBackup cuts the power during `rewind backup` at seeded
// moments. Each round has a fresh filesystem holding a repository with
// one complete snapshot of src/base; a second backup adds src/new and
// has its power cut. After e2fsck and a new mount, check --read-data
// passes, every snapshot on disk (the first one, and the second if it
// was stored before the cut) restores byte for byte, and the next backup
// and check succeed.
func TestPowerLossBackup(t *testing.T) {
	testutil.RequireRootOrCI(t)
	t.Parallel()
	rng := rand.New(rand.NewPCG(*powerCutSeed, 0x90e7c07))
	e := newEnv(t)
	src := e.path("src")
	base, incoming := filepath.Join(src, "base"), filepath.Join(src, "new")
	powerCutData(t, base, rng, *powerCutMiB)

	var est time.Duration
	for round := range *powerCuts {
		t.Run(fmt.Sprintf("cut%d", round), func(t *testing.T) {
			fs := testutil.NewPowerCutFS(t)
			repo := filepath.Join(fs.Dir, "repo")
			initRepo(t, repo, testPassword, crashPackSize)
			e := e.with("REWIND_REPOSITORY", repo, "REWIND_PASSWORD", testPassword)

			if err := os.RemoveAll(incoming); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(incoming, 0o755); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			first := backupSummary(t, e, src).SnapshotID
			if est == 0 {
				// The second backup writes about half as much, and
				// delays up to 1.2 times this land anywhere in it or
				// after it.
				est = time.Since(start)
			}
			powerCutData(t, incoming, rng, *powerCutMiB/2)

			delay := time.Duration(rng.Int64N(int64(est)*6/5 + 1))
			completed, took := runUntilPowerCut(t, e, fs, delay, "backup", src)
			if completed {
				est = (est + took) / 2
			}
			fsck := fs.Remount(t)
			if fsck.Code > 1 {
				t.Logf("e2fsck:\n%s", fsck.Output)
			}
			unindexed := checkAfterPowerCut(t, e)
			sns := repoFileNames(t, repo, "snapshots")
			t.Logf("cut after %v (backup completed before: %v); e2fsck exit %d; %d unindexed packs; %d snapshots",
				delay, completed, fsck.Code, unindexed, len(sns))

			if !slices.Contains(sns, first) {
				t.Fatalf("snapshot %s, stored before the cut, is gone: %v", first[:8], sns)
			}
			if completed && len(sns) != 2 {
				t.Fatalf("the backup completed before the cut, but %d snapshots are left", len(sns))
			}
			for _, sn := range sns {
				if sn == first {
					restoreSame(t, e, sn, base)
				} else {
					restoreSame(t, e, sn, base, incoming)
				}
			}

			last := backupSummary(t, e, src).SnapshotID
			if n := checkAfterPowerCut(t, e); n != 0 {
				t.Errorf("%d packs unindexed after a complete backup", n)
			}
			restoreSame(t, e, last, base, incoming)
		})
		if t.Failed() {
			break
		}
	}
}

// TestPowerLossForget cuts the power during `rewind forget` of two of
// three snapshots. Afterwards check --read-data passes, the snapshot
// kept restores byte for byte, each forgotten one is either gone or
// restores byte for byte, and both are gone if forget had finished
// before the cut.
func TestPowerLossForget(t *testing.T) {
	testutil.RequireRootOrCI(t)
	t.Parallel()
	rng := rand.New(rand.NewPCG(*powerCutSeed, 0xf0e9e7))
	e := newEnv(t)
	var dirs []string
	for i := range 3 {
		d := e.path("src", fmt.Sprint(i))
		powerCutData(t, d, rng, 2)
		dirs = append(dirs, d)
	}

	var est time.Duration
	for round := range *powerCuts {
		t.Run(fmt.Sprintf("cut%d", round), func(t *testing.T) {
			fs := testutil.NewPowerCutFS(t)
			repo := filepath.Join(fs.Dir, "repo")
			initRepo(t, repo, testPassword, crashPackSize)
			e := e.with("REWIND_REPOSITORY", repo, "REWIND_PASSWORD", testPassword)
			var sns []string
			for _, d := range dirs {
				sns = append(sns, backupSummary(t, e, d).SnapshotID)
			}
			if est == 0 {
				// Opening the repository and listing its snapshots is
				// most of what forget does.
				start := time.Now()
				e.mustRun("snapshots")
				est = 2 * time.Since(start)
			}

			delay := time.Duration(rng.Int64N(int64(est)*6/5 + 1))
			completed, took := runUntilPowerCut(t, e, fs, delay, "forget", sns[0], sns[1])
			if completed {
				est = (est + took) / 2
			}
			fsck := fs.Remount(t)
			if fsck.Code > 1 {
				t.Logf("e2fsck:\n%s", fsck.Output)
			}
			unindexed := checkAfterPowerCut(t, e)
			left := repoFileNames(t, repo, "snapshots")
			t.Logf("cut after %v (forget completed before: %v); e2fsck exit %d; %d unindexed packs; snapshots left: %d",
				delay, completed, fsck.Code, unindexed, len(left))

			if !slices.Contains(left, sns[2]) {
				t.Fatalf("snapshot %s, not forgotten, is gone", sns[2][:8])
			}
			for i, sn := range sns {
				if !slices.Contains(left, sn) {
					continue
				}
				if i < 2 && completed {
					t.Errorf("snapshot %s is back after the power cut, although forget had removed it", sn[:8])
				}
				restoreSame(t, e, sn, dirs[i])
			}

			e.mustRun("backup", dirs[0])
			if n := checkAfterPowerCut(t, e); n != 0 {
				t.Errorf("%d packs unindexed after a complete backup", n)
			}
		})
		if t.Failed() {
			break
		}
	}
}
