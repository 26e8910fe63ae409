package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Crash test knobs. The defaults run 50 kills in well under a minute; a
// longer soak is `go test ./internal/cli -run TestBackupSIGKILL
// -rewind.crashes 500 -rewind.crash-seed 7`.
var (
	crashCount = flag.Int("rewind.crashes", 50, "number of backups TestBackupSIGKILL kills")
	crashSeed  = flag.Uint64("rewind.crash-seed", 1, "seed of TestBackupSIGKILL's kill schedule and file changes")
)

// crashPackSize keeps packs small so that a killed backup has stored
// several of them, and the first index file (every 32 packs) comes late.
const crashPackSize = 1 << 20

// crashSource writes a tree of about 40 MiB: large and small random files
// and compressible text files.
func crashSource(t *testing.T, dir string, rng *rand.Rand) {
	t.Helper()
	files := map[string][]byte{}
	for i := range 6 {
		files[fmt.Sprintf("big/%d.bin", i)] = randomBytes(rng.Uint64(), 4<<20)
	}
	for i := range 40 {
		files[fmt.Sprintf("small/%02d/%d.bin", i%8, i)] = randomBytes(rng.Uint64(), 256<<10)
	}
	for i := range 200 {
		files[fmt.Sprintf("text/%02d/%d.txt", i%10, i)] = crashText(rng, 30<<10)
	}
	writeFiles(t, dir, files)
}

// crashText returns n bytes of log-like text unique to rng's state.
func crashText(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%06d level=info req=%08x msg=\"request served\" ms=%d\n", i, rng.Uint32(), rng.IntN(900))
	}
	return b.Bytes()[:n]
}

// crashMutate changes a few files: one large file gets new content, one
// small file is replaced, one text file grows.
func crashMutate(t *testing.T, dir string, rng *rand.Rand) {
	t.Helper()
	files := map[string][]byte{
		fmt.Sprintf("big/%d.bin", rng.IntN(6)):                            randomBytes(rng.Uint64(), 1<<20+rng.IntN(3<<20)),
		fmt.Sprintf("small/%02d/%d.bin", rng.IntN(8), 100+rng.IntN(1000)): randomBytes(rng.Uint64(), 256<<10),
	}
	txt := filepath.Join(dir, fmt.Sprintf("text/%02d/%d.txt", 3, 3+10*rng.IntN(20)))
	old, err := os.ReadFile(txt)
	if err != nil {
		t.Fatal(err)
	}
	files[fmt.Sprintf("text/%02d/%d.txt", 3, 0)] = append(old, crashText(rng, 8<<10)...)
	writeFiles(t, dir, files)
}

// packBytes sums the sizes of the stored packs (not data/.tmp-* spools).
func packBytes(t *testing.T, repo string) (total int64, n int) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(repo, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += fi.Size()
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total, n
}

// duplicateBlobBytes reads every pack header and sums the stored size of
// blobs that are in more than one pack (beyond their first copy): the
// bytes that some backup stored again although they were stored already.
func duplicateBlobBytes(t *testing.T, repo string) (dupBytes int64, dupBlobs int) {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	packs, err := r.List(ctx, backend.PackFile)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[id.ID]bool{}
	for _, p := range packs {
		blobs, err := r.ReadPackHeader(ctx, p)
		if err != nil {
			t.Fatalf("pack %s: %v", p.Short(), err)
		}
		for _, b := range blobs {
			if seen[b.ID] {
				dupBytes += int64(b.Length)
				dupBlobs++
			}
			seen[b.ID] = true
		}
	}
	return dupBytes, dupBlobs
}

// backupSummary runs a complete backup with --json and returns its summary.
func backupSummary(t *testing.T, e *env, src string) jsonBackupSummary {
	t.Helper()
	r := e.mustRun("backup", "--json", src)
	var sum jsonBackupSummary
	for _, l := range jsonLines(t, r) {
		if l.obj["message_type"] == "summary" {
			if err := json.Unmarshal(l.raw, &sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sum.SnapshotID == "" {
		t.Fatalf("no summary: %v", r)
	}
	return sum
}

// TestBackupSIGKILL kills `rewind backup` with SIGKILL at seeded random
// moments. After every kill `check --read-data` passes; at the end a
// backup completes, restores byte for byte, and no blob was ever stored
// twice: what a killed backup had stored is reused by the next one, so
// the bytes written again are only those that were in flight (spooled or
// being renamed) at the kill, and those never reached the repository.
func TestBackupSIGKILL(t *testing.T) {
	t.Parallel()
	kills := *crashCount
	if testing.Short() {
		kills = min(kills, 5)
	}
	rng := rand.New(rand.NewPCG(*crashSeed, 0xc0ffee))
	e := newRepo(t, crashPackSize)
	repo := e.path("repo")
	src := e.path("src")
	crashSource(t, src, rng)

	// A clean backup into a separate repository gives the full stored
	// size of the data set and how long a backup takes here, which scales
	// the kill delays.
	ref := e.path("ref")
	initRepo(t, ref, testPassword, crashPackSize)
	start := time.Now()
	full := backupSummary(t, e.with("REWIND_REPOSITORY", ref), src)
	took := time.Since(start)
	t.Logf("reference backup: %d bytes stored in packs, %.2fs", full.DataAddedPacked, took.Seconds())

	completed, leftUnindexed, unindexedSeen := 0, 0, 0
	est := took
	for i := range kills {
		// Every backup has new data to store: a changed large file (1-4
		// MiB), a new small one, a longer text file.
		crashMutate(t, src, rng)
		// A seeded fraction of how long a backup takes now: est starts as
		// a full backup's time and follows the backups that finish before
		// their kill, which are quicker once a parent snapshot exists.
		// Most kills land while packs are written, some in the finishing
		// steps (last packs, index, snapshot), and some backups complete.
		delay := time.Duration(rng.Int64N(int64(est) * 6 / 5))
		c := e.cmd("backup", src)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		begin := time.Now()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		var err error
		select {
		case err = <-done:
			est = (est + time.Since(begin)) / 2
		case <-time.After(delay):
			if err := c.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Fatal(err)
			}
			err = <-done
		}
		if err == nil {
			completed++
		} else if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d after %v: backup failed by itself: %v\n%s", i, delay, err, out.Bytes())
		}
		r := e.run("check", "--read-data", "--json")
		if r.code != 0 {
			t.Fatalf("kill %d after %v: check fails: %v", i, delay, r)
		}
		var chk struct {
			Unindexed []string `json:"unindexed_packs"`
		}
		if err := json.Unmarshal(jsonLines(t, r)[0].raw, &chk); err != nil {
			t.Fatal(err)
		}
		if len(chk.Unindexed) > 0 {
			leftUnindexed++
			unindexedSeen += len(chk.Unindexed)
		}
	}
	t.Logf("%d kills: %d left unindexed packs (%d in all, each reused by the next backup), %d backups completed before their kill",
		kills, leftUnindexed, unindexedSeen, completed)
	if kills >= 20 && leftUnindexed == 0 {
		t.Errorf("no kill left an unindexed pack: the schedule does not test recovery")
	}

	crashMutate(t, src, rng)
	before, _ := packBytes(t, repo)
	sum := backupSummary(t, e, src)
	after, npacks := packBytes(t, repo)
	dupBytes, dupBlobs := duplicateBlobBytes(t, repo)
	t.Logf("final backup stored %d bytes in packs (repository %d -> %d bytes, %d packs) against %d for the whole data set; blobs stored twice: %d (%d bytes)",
		sum.DataAddedPacked, before, after, npacks, full.DataAddedPacked, dupBlobs, dupBytes)
	if dupBlobs > 0 {
		t.Errorf("%d blobs (%d bytes) were stored again although a killed backup had stored them", dupBlobs, dupBytes)
	}
	if kills > 0 && sum.DataAddedPacked >= full.DataAddedPacked {
		t.Errorf("the backup after %d kills stored %d bytes, as much as the whole data set (%d)", kills, sum.DataAddedPacked, full.DataAddedPacked)
	}

	r := e.mustRun("check", "--read-data", "--json")
	var chk struct {
		Unindexed []string `json:"unindexed_packs"`
	}
	if err := json.Unmarshal(jsonLines(t, r)[0].raw, &chk); err != nil {
		t.Fatal(err)
	}
	if len(chk.Unindexed) != 0 {
		t.Errorf("%d packs still unindexed after a complete backup, e.g. %s", len(chk.Unindexed), chk.Unindexed[0])
	}
	target := e.path("restore")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, src, target+src)
}
