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
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/prune"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Shape of TestConcurrentBackupPrune: concurrentLoops backup loops of
// -concurrent-backups backups each, and forget keeps concurrentKeep
// snapshots of each loop. A longer soak is `go test ./internal/cli -run
// TestConcurrentBackupPrune -concurrent-backups 300`.
const (
	concurrentLoops = 3
	concurrentKeep  = 2
)

var concurrentBackups = flag.Int("concurrent-backups", 30, "backups made by each loop of TestConcurrentBackupPrune")

// concurrentPool returns shared file k: the same bytes in every loop that
// has it, 64 to 256 KiB, one blob.
func concurrentPool(k int) []byte {
	return randomBytes(uint64(7000+k), 64<<10+(k*37%5)*48<<10)
}

// concurrentFiles returns the source of loop l's backup i. Every loop has
// a file of its own that changes each time and one that never does, a
// growing log, a window of shared files that slides with i (so that old
// shared data falls out of every snapshot and is pruned), and sometimes
// an old shared file that comes back, maybe while a prune condemns it.
func concurrentFiles(l, i int, rng *rand.Rand, log []byte) map[string][]byte {
	files := map[string][]byte{
		"own/stable.bin":   randomBytes(uint64(100+l), 160<<10),
		"own/changing.bin": randomBytes(rng.Uint64(), 96<<10+rng.IntN(160<<10)),
		"log.txt":          log,
	}
	first := i + l%2
	for k := first; k < first+4; k++ {
		files[fmt.Sprintf("shared/%03d.bin", k)] = concurrentPool(k)
	}
	if first > 0 && rng.IntN(2) == 0 {
		files["back.bin"] = concurrentPool(rng.IntN(first))
	}
	return files
}

// syncTree makes the regular files below dir exactly want: files whose
// content changed are rewritten, others left alone (so that backup finds
// them unchanged from the parent snapshot), and files not in want removed.
func syncTree(dir string, want map[string][]byte) error {
	have := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		have[filepath.ToSlash(rel)] = true
		if _, ok := want[filepath.ToSlash(rel)]; !ok {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for name, data := range want {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if have[name] {
			if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readTree returns every regular file below dir by relative path.
func readTree(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	return out, err
}

// runNoFatal runs rewind with args; unlike env.run it may be called from
// any goroutine. A run that could not start is an error.
func runNoFatal(e *env, args ...string) (result, error) {
	c := e.cmd(args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	res := result{args: args, stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		return res, err
	}
	return res, nil
}

// summaryLine decodes the line of r's stdout whose message_type is
// "summary" into v.
func summaryLine(r result, v any) error {
	for _, line := range bytes.Split(r.stdout, []byte("\n")) {
		var m struct {
			Type string `json:"message_type"`
		}
		if json.Unmarshal(line, &m) == nil && m.Type == "summary" {
			return json.Unmarshal(line, v)
		}
	}
	return fmt.Errorf("no summary line in the output of %v", r)
}

// concurrentRef is what a snapshot of TestConcurrentBackupPrune was taken
// from.
type concurrentRef struct {
	src   string
	files map[string][]byte
}

// lostBlobs lists the snapshots of the repository in dir, then loads its
// index and marks, then lists its packs (in that order, so that a backup
// storing a snapshot meanwhile is no false alarm), and returns every blob
// that a listed snapshot references and that is in no stored pack: neither
// in an indexed one nor in a condemned one that is not deleted yet. No
// prune may run meanwhile.
func lostBlobs(ctx context.Context, t *testing.T, dir string) (sns []*snapshot.Snapshot, lost []string) {
	t.Helper()
	r := openRepoDir(t, dir, false)
	defer r.Close()
	sns = listSnapshotsIn(t, r)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatalf("load index: %v", err)
	}
	condemned := map[id.ID][]id.ID{} // blob -> condemned packs holding it
	for _, m := range r.Marks() {
		for _, p := range m.Packs {
			for _, b := range p.Blobs {
				condemned[b.ID] = append(condemned[b.ID], p.ID)
			}
		}
	}
	stored := map[id.ID]bool{}
	err := r.Backend().List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		if p, err := id.Parse(fi.Name); err == nil {
			stored[p] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[id.ID]bool{}
	have := func(b id.ID) bool {
		if loc, ok := r.Index().Lookup(b); ok && stored[loc.Pack] {
			return true
		}
		return slices.ContainsFunc(condemned[b], func(p id.ID) bool { return stored[p] })
	}
	for _, sn := range sns {
		check := func(b id.ID, what string) bool {
			if seen[b] {
				return true
			}
			seen[b] = true
			if !have(b) {
				lost = append(lost, fmt.Sprintf("%s %s of snapshot %s", what, b.Short(), sn.ID.Short()))
				return false
			}
			return true
		}
		var walk func(ids []id.ID, p string)
		walk = func(ids []id.ID, p string) {
			for _, tr := range ids {
				if !check(tr, "tree "+p) {
					continue
				}
				err := snapshot.EachNode(ctx, r, []id.ID{tr}, func(n *tree.Node) error {
					name := path.Join(p, n.Name)
					for _, l := range n.ContentLists {
						check(l, "content list of "+name)
					}
					chunks, err := snapshot.LoadContent(ctx, r, n)
					if err != nil {
						return err
					}
					for _, c := range chunks {
						if !c.IsHole() {
							check(c.ID, "data of "+name)
						}
					}
					if n.Type == tree.Dir {
						walk(n.Subtree, name)
					}
					return nil
				})
				if err != nil {
					lost = append(lost, fmt.Sprintf("tree %s of snapshot %s: %v", tr.Short(), sn.ID.Short(), err))
				}
			}
		}
		walk(sn.Tree, "/")
	}
	return sns, lost
}

// TestConcurrentBackupPrune runs three loops of `rewind backup`, each on
// its own changing source, into one repository, while the test loops
// `rewind forget --keep-last 2 --group-by tags --prune`. The sources share
// files, so backups deduplicate against each other and against data that
// forget has just made unused and prune is condemning. After every prune
// no snapshot then present references a blob that is not stored. No backup
// may fail (exit 11 would mean prune blocked it). At the end check
// --read-data is clean, no mark is left, and every snapshot restores
// bit-exactly against a copy of its source taken before its backup.
func TestConcurrentBackupPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := scratchDir(t)
	repo := filepath.Join(mem, "repo")
	initRepo(t, repo, testPassword, 1<<20)
	e := newEnv(t).with("REWIND_REPOSITORY", repo, "REWIND_PASSWORD", testPassword)

	var (
		mu      sync.Mutex
		refs    = map[string]concurrentRef{} // every snapshot ever stored, by ID; mu
		failed  atomic.Bool
		running atomic.Int32
		wg      sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		failed.Store(true)
		t.Errorf(format, args...)
	}
	// However the test ends, the loops stop before it does.
	defer func() {
		failed.Store(true)
		wg.Wait()
	}()
	running.Store(concurrentLoops)
	for l := range concurrentLoops {
		wg.Go(func() {
			defer running.Add(-1)
			rng := rand.New(rand.NewPCG(uint64(l), 0xbac0))
			src := filepath.Join(mem, fmt.Sprintf("src%d", l))
			var log []byte
			for i := range *concurrentBackups {
				if failed.Load() {
					return
				}
				log = append(log, crashText(rng, 6<<10)...)
				if err := syncTree(src, concurrentFiles(l, i, rng, log)); err != nil {
					fail("loop %d: write source: %v", l, err)
					return
				}
				// The copy taken now is what the snapshot must restore:
				// nothing changes src until the backup has finished.
				files, err := readTree(src)
				if err != nil {
					fail("loop %d: read source: %v", l, err)
					return
				}
				r, err := runNoFatal(e, "backup", "--json", "--tag", fmt.Sprintf("loop%d", l), src)
				if err != nil || r.code != 0 {
					fail("loop %d, backup %d failed (%v): %v", l, i, err, r)
					return
				}
				var sum jsonBackupSummary
				if err := summaryLine(r, &sum); err != nil || sum.SnapshotID == "" {
					fail("loop %d, backup %d: no snapshot ID (%v): %v", l, i, err, r)
					return
				}
				mu.Lock()
				refs[sum.SnapshotID] = concurrentRef{src: src, files: files}
				mu.Unlock()
			}
		})
	}

	// The forget --prune loop runs in the test's goroutine until the
	// backups are done, and once more after.
	var prunes, deleted, revived, condemned, repacked, pending int
	var concurrentDeleted int
	forgetPrune := func(last bool) {
		t.Helper()
		args := []string{"forget", "--json", "--keep-last", fmt.Sprint(concurrentKeep), "--group-by", "tags", "--prune"}
		if prunes%2 == 0 {
			args = append(args, "--max-unused", "0%")
		}
		r, err := runNoFatal(e, args...)
		if err != nil || r.code != 0 {
			fail("forget --prune %d failed (%v): %v", prunes, err, r)
			return
		}
		var sum jsonPruneSummary
		if err := summaryLine(r, &sum); err != nil {
			fail("forget --prune %d: %v", prunes, err)
			return
		}
		prunes++
		deleted += sum.PacksDeleted
		revived += sum.PacksRevived
		condemned += sum.PacksCondemned
		repacked += sum.PacksRepacked
		if !last {
			concurrentDeleted += sum.PacksDeleted
			pending = max(pending, sum.PacksPending)
		}
		if len(sum.Damaged) > 0 || len(sum.BadMarks) > 0 || len(sum.MissingPacks) > 0 {
			fail("forget --prune %d reports damage %v, unreadable marks %v, missing packs %v", prunes, sum.Damaged, sum.BadMarks, sum.MissingPacks)
		}
		if sns, lost := lostBlobs(ctx, t, repo); len(lost) > 0 {
			fail("after forget --prune %d, %d snapshots reference %d blobs that are not stored, e.g. %s", prunes, len(sns), len(lost), lost[0])
		}
	}
	for running.Load() > 0 && !failed.Load() {
		forgetPrune(false)
	}
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}
	forgetPrune(true)
	if failed.Load() {
		t.FailNow()
	}

	r := e.mustRun("check", "--read-data", "--json")
	var chk struct {
		Unindexed []string `json:"unindexed_packs"`
		Condemned int      `json:"condemned_packs"`
	}
	if err := summaryLine(r, &chk); err != nil {
		t.Fatal(err)
	}
	if len(chk.Unindexed) != 0 || chk.Condemned != 0 {
		t.Errorf("after the last prune: unindexed packs %v, %d condemned packs", chk.Unindexed, chk.Condemned)
	}
	if ents, err := os.ReadDir(filepath.Join(repo, "gc")); err != nil || len(ents) != 0 {
		t.Errorf("after the last prune with nothing running, gc/ holds %d marks (%v)", len(ents), err)
	}

	rp := openRepoDir(t, repo, true)
	defer rp.Close()
	sns := listSnapshotsIn(t, rp)
	if want := concurrentLoops * concurrentKeep; len(sns) != want {
		t.Errorf("%d snapshots left, want %d: the newest %d of each loop", len(sns), want, concurrentKeep)
	}
	for _, sn := range sns {
		ref, ok := refs[sn.ID.String()]
		if !ok {
			t.Errorf("snapshot %s was not stored by any backup of the test", sn.ID.Short())
			continue
		}
		if err := restoreMismatch(ctx, rp, sn, mem, ref.src, ref.files); err != nil {
			t.Errorf("snapshot %s of %s does not restore its source: %v", sn.ID.Short(), ref.src, err)
		}
	}
	// gc/ is empty, so this also says that every blob is indexed.
	if _, lost := lostBlobs(ctx, t, repo); len(lost) > 0 {
		t.Errorf("%d blobs lost, e.g. %s", len(lost), lost[0])
	}
	t.Logf("%d snapshots stored by %d backup loops, %d kept; %d forget --prune runs (%d while backups ran): condemned %d packs, repacked %d, revived %d, deleted %d (%d while backups ran), up to %d pending",
		len(refs), concurrentLoops, len(sns), prunes, prunes-1, condemned, repacked, revived, deleted, concurrentDeleted, pending)
	if deleted == 0 {
		t.Errorf("no pack was ever deleted: the test does not exercise prune")
	}
	if want := concurrentLoops * *concurrentBackups; len(refs) != want {
		t.Errorf("%d snapshots stored, want %d", len(refs), want)
	}
}

// The tests below put one step of another process at an exact point of a
// prune, or of a command loading the index, where the loop above only
// lands now and then. They run prune in process with a lock table of
// their own (prune.Options.Locks), as internal/prune's tests do.

// hookBackend calls functions around every listing, to run another
// process's work at an exact point of a command: before listing n
// (1-based) of a file type reads anything, and after it has read the names
// but before it reports them.
type hookBackend struct {
	backend.Backend
	before func(t backend.FileType, n int)
	after  func(t backend.FileType, n int)

	mu sync.Mutex
	n  map[backend.FileType]int // mu
}

func (b *hookBackend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	b.mu.Lock()
	if b.n == nil {
		b.n = map[backend.FileType]int{}
	}
	b.n[t]++
	n := b.n[t]
	b.mu.Unlock()
	if b.before != nil {
		b.before(t, n)
	}
	var infos []backend.FileInfo
	err := b.Backend.List(ctx, t, func(fi backend.FileInfo) error {
		infos = append(infos, fi)
		return nil
	})
	if err != nil {
		return err
	}
	if b.after != nil {
		b.after(t, n)
	}
	for _, fi := range infos {
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// listings returns how many listings of type t were made.
func (b *hookBackend) listings(t backend.FileType) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[t]
}

// openHooked opens the repository in dir in process through h, whose
// Backend it sets.
func openHooked(t *testing.T, dir string, h *hookBackend) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	h.Backend = be
	r, err := repository.Open(ctx, h, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// backupWith backs up src in process with r, whose index is loaded: a
// backup that read the index when r loaded it. It must not fail the test
// from outside its goroutine, so it returns errors.
func backupWith(ctx context.Context, r *repository.Repository, src string) (*snapshot.Snapshot, error) {
	a, err := archiver.New(r, archiver.Options{})
	if err != nil {
		return nil, err
	}
	return a.Snapshot(ctx, []string{src})
}

// sweepScene makes a repository holding snapshots of two sources, x
// (three files) and y, and forgets x's, so that a prune condemns x's
// data. It returns the repository's folder and the sources.
func sweepScene(t *testing.T) (dir, x, y string) {
	t.Helper()
	ctx := context.Background()
	mem := scratchDir(t)
	dir = filepath.Join(mem, "repo")
	initRepo(t, dir, testPassword, 1<<20)
	x, y = filepath.Join(mem, "x"), filepath.Join(mem, "y")
	writeFiles(t, x, map[string][]byte{"a.bin": randomBytes(31, 200<<10), "b.bin": randomBytes(32, 150<<10), "c.txt": []byte("only in x")})
	writeFiles(t, y, map[string][]byte{"d.bin": randomBytes(33, 300<<10)})
	var snX *snapshot.Snapshot
	for _, src := range []string{x, y} {
		r := openRepoDir(t, dir, true)
		sn, err := backupWith(ctx, r, src)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if src == x {
			snX = sn
		}
	}
	if err := os.Remove(filepath.Join(dir, "snapshots", snX.ID.String())); err != nil {
		t.Fatal(err)
	}
	return dir, x, y
}

// verifyRestores checks dir with --read-data and restores each snapshot
// in srcs (by ID, the folder it was taken of), failing the test on any
// problem or difference.
func verifyRestores(t *testing.T, dir string, srcs map[id.ID]string) {
	t.Helper()
	ctx := context.Background()
	r := openRepoDir(t, dir, true)
	defer r.Close()
	if _, problems := checkReadData(t, r); len(problems) > 0 {
		t.Errorf("check --read-data: %s", strings.Join(problems, "; "))
	}
	for sn, src := range srcs {
		s, err := snapshot.Load(ctx, r, sn)
		if err != nil {
			t.Errorf("load snapshot %s: %v", sn.Short(), err)
			continue
		}
		want, err := readTree(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := restoreMismatch(ctx, r, s, filepath.Dir(dir), src, want); err != nil {
			t.Errorf("snapshot %s of %s: %v", sn.Short(), src, err)
		}
	}
}

// TestConcurrentSweepAfterBackupEnds: a backup B loads the index, which
// still lists x's data; a prune condemns that data while B's lock is held,
// so its mark is fenced by B. B deduplicates against x's data and stores
// its snapshot right after the prune's sweep has listed the snapshots,
// then releases its lock. The sweep must not delete the data B uses: it
// may only trust a snapshot listing made after it saw B's lock gone.
func TestConcurrentSweepAfterBackupEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, x, _ := sweepScene(t)
	rb := openRepoDir(t, dir, true) // B has locked and loaded the index
	defer rb.Close()

	var bDone atomic.Bool
	var snB *snapshot.Snapshot
	var bErr error
	locks := func(context.Context) ([]prune.LockRef, error) {
		if bDone.Load() {
			return nil, nil
		}
		return []prune.LockRef{{ID: "backup-b", Desc: "backup B"}}, nil
	}
	// Prune lists snapshots first in phase one, then again in the sweep.
	h := &hookBackend{after: func(ft backend.FileType, n int) {
		if ft == backend.SnapshotFile && n == 2 {
			snB, bErr = backupWith(ctx, rb, x)
			bDone.Store(true)
		}
	}}
	res, err := prune.Run(ctx, openHooked(t, dir, h), prune.Options{Host: "test", Locks: locks})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if bErr != nil || snB == nil {
		t.Fatalf("backup B did not run at the sweep (%d snapshot listings): %v", h.listings(backend.SnapshotFile), bErr)
	}
	t.Logf("prune while B ran: condemned %d packs, deleted %d, revived %d, pending %d", res.PacksCondemned, res.PacksDeleted, res.PacksRevived, res.PacksPending)
	if res.PacksCondemned == 0 {
		t.Fatal("prune condemned nothing: the scene does not test the race")
	}
	verifyRestores(t, dir, map[id.ID]string{snB.ID: x})

	// With B gone, the next prune keeps what B uses and check is clean.
	r2 := openRepoDir(t, dir, false)
	defer r2.Close()
	again, err := prune.Run(ctx, r2, prune.Options{Host: "test", Locks: locks})
	if err != nil {
		t.Fatalf("second prune: %v", err)
	}
	t.Logf("prune after B: deleted %d, revived %d, pending %d", again.PacksDeleted, again.PacksRevived, again.PacksPending)
	verifyRestores(t, dir, map[id.ID]string{snB.ID: x})
}

// TestConcurrentSweepSeesNewSnapshot: a backup C that starts after the
// mark stores new data, its index file and its snapshot between the moment
// the prune's sweep starts and the moment it lists the snapshots. The
// sweep must read the index after listing the snapshots, or it finds
// C's new blobs nowhere and fails, calling the repository damaged.
func TestConcurrentSweepSeesNewSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, _, y := sweepScene(t)
	z := filepath.Join(filepath.Dir(dir), "z")
	writeFiles(t, z, map[string][]byte{"e.bin": randomBytes(34, 100<<10)})

	var snC *snapshot.Snapshot
	var cErr error
	h := &hookBackend{before: func(ft backend.FileType, n int) {
		if ft == backend.SnapshotFile && n == 2 {
			rc := openRepoDir(t, dir, true)
			defer rc.Close()
			snC, cErr = backupWith(ctx, rc, z)
		}
	}}
	res, err := prune.Run(ctx, openHooked(t, dir, h), prune.Options{Host: "test", Locks: func(context.Context) ([]prune.LockRef, error) { return nil, nil }})
	if cErr != nil || snC == nil {
		t.Fatalf("backup C did not run at the sweep (%d snapshot listings): %v", h.listings(backend.SnapshotFile), cErr)
	}
	if err != nil {
		t.Fatalf("prune failed on a sound repository because a backup ended during its sweep: %v", err)
	}
	if res.PacksCondemned == 0 {
		t.Fatal("prune condemned nothing: the scene does not test the race")
	}
	srcs := map[id.ID]string{snC.ID: z}
	r := openRepoDir(t, dir, false)
	for _, sn := range listSnapshotsIn(t, r) {
		if sn.ID != snC.ID {
			srcs[sn.ID] = y
		}
	}
	r.Close()
	verifyRestores(t, dir, srcs)
}

// TestConcurrentLoadIndexDuringPrune: a command lists the index files,
// then a prune supersedes and removes them, then the command reads them.
// Backups, restores and checks run while prunes do, so loading the index
// must not fail then, and must still find every pack in use.
func TestConcurrentLoadIndexDuringPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, _, y := sweepScene(t)
	var pruned *prune.Result
	var pruneErr error
	h := &hookBackend{after: func(ft backend.FileType, n int) {
		if ft == backend.IndexFile && n == 1 {
			rp := openRepoDir(t, dir, false)
			defer rp.Close()
			pruned, pruneErr = prune.Run(ctx, rp, prune.Options{Host: "test", Locks: func(context.Context) ([]prune.LockRef, error) { return nil, nil }})
		}
	}}
	r := openHooked(t, dir, h)
	err := r.LoadIndex(ctx)
	if pruneErr != nil || pruned == nil {
		t.Fatalf("prune did not run while the index was loaded: %v", pruneErr)
	}
	if pruned.PacksCondemned == 0 {
		t.Fatal("prune condemned nothing: the scene does not test the race")
	}
	if err != nil {
		t.Fatalf("loading the index while a prune replaced it failed: %v", err)
	}
	sns := listSnapshotsIn(t, r)
	if len(sns) != 1 {
		t.Fatalf("%d snapshots, want 1", len(sns))
	}
	want, err := readTree(y)
	if err != nil {
		t.Fatal(err)
	}
	if err := restoreMismatch(ctx, r, sns[0], filepath.Dir(dir), y, want); err != nil {
		t.Errorf("restore with the index loaded during the prune: %v", err)
	}
}

// TestConcurrentMarkReplacedWhileLoading: a backup B locks just after a
// prune recorded its fence (so the fence does not name B), reads the
// index, which no longer lists x's data, and lists the marks while only
// the unfenced one exists; the prune then stores the fenced copy and
// removes the first, before B reads it. B must still learn that x's
// packs are condemned. If it does not, it takes them for packs a killed
// backup left unindexed, indexes them and deduplicates against them, and
// the sweep, which listed the index before B's index file was stored,
// deletes what B's snapshot uses.
func TestConcurrentMarkReplacedWhileLoading(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, x, _ := sweepScene(t)

	bListed, gate := make(chan struct{}), make(chan struct{})
	listed, openGate := sync.OnceFunc(func() { close(bListed) }), sync.OnceFunc(func() { close(gate) })
	defer openGate() // B never waits past the test
	hb := &hookBackend{after: func(ft backend.FileType, n int) {
		if ft == backend.GCFile && n == 1 {
			listed()
			<-gate
		}
	}}
	rb := openHooked(t, dir, hb)
	bLoaded := make(chan error, 1)

	var calls atomic.Int32
	locks := func(context.Context) ([]prune.LockRef, error) {
		if calls.Add(1) == 1 {
			// The fence: B has not locked yet, and starts now.
			go func() {
				err := rb.LoadIndex(ctx)
				listed()
				bLoaded <- err
			}()
			<-bListed
			return nil, nil
		}
		return []prune.LockRef{{ID: "backup-b", Desc: "backup B"}}, nil
	}
	var snB *snapshot.Snapshot
	var bErr error
	sweeping := false
	// The sweep lists the snapshots (their second listing), then the
	// index files.
	hp := &hookBackend{
		before: func(ft backend.FileType, n int) {
			if ft == backend.SnapshotFile && n == 2 {
				// The first mark is gone now; B reads the marks.
				openGate()
				bErr = <-bLoaded
				sweeping = true
			}
		},
		after: func(ft backend.FileType, _ int) {
			if ft != backend.IndexFile || !sweeping || snB != nil || bErr != nil {
				return
			}
			// The sweep has listed the index files; B indexes what it
			// takes for leftovers, backs up x and stores its snapshot now.
			if _, _, bErr = rb.IndexUnindexedPacks(ctx); bErr == nil {
				snB, bErr = backupWith(ctx, rb, x)
			}
		},
	}
	rp := openHooked(t, dir, hp)
	res, err := prune.Run(ctx, rp, prune.Options{Host: "test", Locks: locks})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if bErr != nil || snB == nil {
		t.Fatalf("backup B did not run at the sweep (%d lock listings): %v", calls.Load(), bErr)
	}
	t.Logf("prune: condemned %d packs, deleted %d, revived %d, pending %d", res.PacksCondemned, res.PacksDeleted, res.PacksRevived, res.PacksPending)
	verifyRestores(t, dir, map[id.ID]string{snB.ID: x})
}
