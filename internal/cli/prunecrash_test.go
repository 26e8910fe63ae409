package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"golang.org/x/sys/unix"
)

// Prune kill test knobs. The default runs 50 kills; a longer soak is
// `go test ./internal/cli -run TestPruneKill -prune-kills 500
// -prune-kill-seed 7`, or REWIND_PRUNE_KILLS=500 in the environment.
var (
	pruneKillCount = flag.Int("prune-kills", 0, "number of prunes TestPruneKill kills (0: $REWIND_PRUNE_KILLS, else 50)")
	pruneKillSeed  = flag.Uint64("prune-kill-seed", 1, "seed of TestPruneKill's kill schedule, file changes and lock holding")
)

// pruneKills returns how many prunes TestPruneKill kills.
func pruneKills(t *testing.T) int {
	t.Helper()
	if *pruneKillCount > 0 {
		return *pruneKillCount
	}
	if s := os.Getenv("REWIND_PRUNE_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("REWIND_PRUNE_KILLS=%q: want a count", s)
		}
		return n
	}
	return 50
}

// pruneKillKeep is how many snapshots forget keeps in TestPruneKill.
const pruneKillKeep = 3

// pruneKillSlots is how many random files the source starts with.
const pruneKillSlots = 14

// pruneKillSource writes the source of TestPruneKill: random files of
// 32 to 352 KiB (one blob each, several to a 1 MiB pack) and a log file,
// about 2.5 MiB in all.
func pruneKillSource(t *testing.T, dir string, rng *rand.Rand) {
	t.Helper()
	files := map[string][]byte{"log.txt": crashText(rng, 40<<10)}
	for i := range pruneKillSlots {
		files[fmt.Sprintf("f/%02d.bin", i)] = randomBytes(rng.Uint64(), 32<<10+rng.IntN(320<<10))
	}
	writeFiles(t, dir, files)
}

// pruneKillMutate gives the next snapshot new data, and the one forget
// drops some that nothing else uses: two files get new content, the log
// grows, and now and then a file goes or a new one comes.
func pruneKillMutate(t *testing.T, dir string, rng *rand.Rand) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "f", "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for range 2 {
		rel, _ := filepath.Rel(dir, names[rng.IntN(len(names))])
		files[filepath.ToSlash(rel)] = randomBytes(rng.Uint64(), 32<<10+rng.IntN(320<<10))
	}
	switch rng.IntN(4) {
	case 0:
		if len(names) > pruneKillSlots/2 {
			if err := os.Remove(names[rng.IntN(len(names))]); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
	case 1:
		files[fmt.Sprintf("f/%02d.bin", pruneKillSlots+rng.IntN(40))] = randomBytes(rng.Uint64(), 32<<10+rng.IntN(320<<10))
	}
	old, err := os.ReadFile(filepath.Join(dir, "log.txt"))
	if err != nil {
		t.Fatal(err)
	}
	files["log.txt"] = append(old, crashText(rng, 4<<10)...)
	writeFiles(t, dir, files)
}

// scratchDir returns a temporary folder on a tmpfs (/dev/shm) when one is
// mounted with room to spare, else t.TempDir(). The kill and concurrency
// tests need no disk there: SIGKILL keeps what a process wrote, so the
// fsyncs of a disk would only cost time, hundreds of them per run.
func scratchDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC && st.Bavail*uint64(st.Bsize) >= 1<<30 {
		if d, err := os.MkdirTemp("/dev/shm", "rewind-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// openRepoDir opens the repository in dir in process; withIndex loads
// its index (and prune marks). The caller closes it.
func openRepoDir(t *testing.T, dir string, withIndex bool) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	if withIndex {
		if err := r.LoadIndex(ctx); err != nil {
			r.Close()
			t.Fatalf("load index: %v", err)
		}
	}
	return r
}

// checkReadData runs `check --read-data` in process on a repository
// opened with its index, and returns its result and every problem.
func checkReadData(t *testing.T, r *repository.Repository) (*checker.Result, []string) {
	t.Helper()
	res, err := checker.Check(context.Background(), r, checker.Options{ReadData: true})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	var problems []string
	for _, p := range res.Problems {
		problems = append(problems, p.Object+": "+p.Error)
	}
	return res, problems
}

// restoreMismatch restores snapshot sn of r into a fresh folder below
// scratch and compares the files restored from src (the path that was
// backed up) with want, byte for byte. It returns what differs, nil when
// everything does not.
func restoreMismatch(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, scratch, src string, want map[string][]byte) error {
	target, err := os.MkdirTemp(scratch, "restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(target)
	rs, err := restorer.New(r, restorer.Options{Target: target})
	if err != nil {
		return err
	}
	if _, err := rs.Restore(ctx, sn, "/"); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	got := map[string][]byte{}
	root := filepath.Join(target, src)
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		got[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return fmt.Errorf("read restored files: %w", err)
	}
	var diffs []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		switch g, ok := got[name]; {
		case !ok:
			diffs = append(diffs, name+" not restored")
		case !bytes.Equal(g, want[name]):
			diffs = append(diffs, fmt.Sprintf("%s differs (%d bytes, want %d)", name, len(g), len(want[name])))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, name+" restored but not in the source")
		}
	}
	if len(diffs) > 0 {
		return errors.New(strings.Join(diffs, "; "))
	}
	return nil
}

// listSnapshotsIn lists the snapshots of r, failing the test on any that
// cannot be read.
func listSnapshotsIn(t *testing.T, r *repository.Repository) []*snapshot.Snapshot {
	t.Helper()
	sns, err := snapshot.List(context.Background(), r, func(i id.ID, err error) {
		t.Errorf("snapshot %s cannot be read: %v", i.Short(), err)
	})
	if err != nil {
		t.Fatalf("list snapshots: %v", err)
	}
	return sns
}

// repoNames lists the stored files of the kinds prune writes and
// removes (data/, index/, gc/), as "kind/name", temporary files aside.
func repoNames(t *testing.T, repo string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, kind := range []string{"data", "index", "gc"} {
		err := filepath.WalkDir(filepath.Join(repo, kind), func(p string, d os.DirEntry, err error) error {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return err
			}
			out[kind+"/"+d.Name()] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// tempFiles counts the temporary files (".tmp-*") below repo that killed
// processes left behind.
func tempFiles(t *testing.T, repo string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".tmp-") {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// repoWatch counts, with inotify, the files stored in and removed from a
// repository's data/, index/ and gc/ folders (temporary files aside), and
// calls its function at each, with the count so far.
type repoWatch struct {
	f    *os.File
	done chan struct{}
}

// watchRepo starts watching repo. fn is called from the watch's own
// goroutine, which stop ends.
func watchRepo(repo string, fn func(n int)) (*repoWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	dirs := []string{filepath.Join(repo, "index"), filepath.Join(repo, "gc")}
	for i := range 256 {
		dirs = append(dirs, filepath.Join(repo, "data", fmt.Sprintf("%02x", i)))
	}
	for _, d := range dirs {
		if _, err := unix.InotifyAddWatch(fd, d, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_DELETE); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("inotify watch %s: %w", d, err)
		}
	}
	// A non-blocking descriptor goes to the runtime's poller, so that
	// Close ends a Read in progress.
	w := &repoWatch{f: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		buf := make([]byte, 64<<10)
		n := 0
		for {
			k, err := w.f.Read(buf)
			if err != nil {
				return
			}
			// struct inotify_event: wd, mask, cookie, len (4 bytes
			// each), then len bytes of NUL-padded name.
			for off := 0; off+unix.SizeofInotifyEvent <= k; {
				l := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+l], "\x00")
				off += unix.SizeofInotifyEvent + l
				if len(name) > 0 && name[0] != '.' {
					n++
					fn(n)
				}
			}
		}
	}()
	return w, nil
}

// stop ends the watch and waits for its goroutine.
func (w *repoWatch) stop() {
	w.f.Close()
	<-w.done
}

// prunePhase names what a killed prune had got to, told by what it left
// changed in the repository: nothing written yet (listing, walking,
// planning), leftover packs indexed, packs repacked, a mark stored, or
// condemned packs or marks removed by the sweep.
func prunePhase(before, after map[string]bool) string {
	count := func(from, to map[string]bool, kind string) (n int) {
		for f := range from {
			if strings.HasPrefix(f, kind+"/") && !to[f] {
				n++
			}
		}
		return n
	}
	switch {
	case count(before, after, "data") > 0:
		return "sweep: deleting"
	case count(after, before, "gc") > 0:
		return "mark"
	case count(before, after, "gc") > 0:
		return "sweep: marks"
	case count(after, before, "data") > 0:
		return "repack"
	case count(after, before, "index") > 0:
		return "index leftovers"
	}
	return "read and plan"
}

// pruneKillState is TestPruneKill's repository and what it knows about it.
type pruneKillState struct {
	t         *testing.T
	e         *env
	repo, src string
	scratch   string // for restores
	// refs holds the source files of every snapshot in the repository,
	// by snapshot ID.
	refs map[string]map[string][]byte

	// holder is a Shared lock held by the test process, as a backup on
	// another host would hold one: marks made meanwhile stay pending.
	holder     *lock.Lock
	holderRepo *repository.Repository
	holdFor    int
}

// snapshot mutates the source, backs it up and forgets the snapshots
// beyond the newest pruneKillKeep.
func (s *pruneKillState) snapshot(rng *rand.Rand) {
	t := s.t
	t.Helper()
	pruneKillMutate(t, s.src, rng)
	files := readFiles(t, s.src)
	sum := backupSummary(t, s.e, s.src)
	s.refs[sum.SnapshotID] = files
	s.e.mustRun("forget", "--keep-last", strconv.Itoa(pruneKillKeep))
	ents, err := os.ReadDir(filepath.Join(s.repo, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, d := range ents {
		if !strings.HasPrefix(d.Name(), ".") {
			present[d.Name()] = true
		}
	}
	if !present[sum.SnapshotID] {
		t.Fatalf("forget --keep-last %d removed the newest snapshot %s", pruneKillKeep, sum.SnapshotID)
	}
	for sn := range s.refs {
		if !present[sn] {
			delete(s.refs, sn)
		}
	}
	if len(present) != len(s.refs) || len(present) > pruneKillKeep {
		t.Fatalf("after forget: %d snapshots stored, %d known", len(present), len(s.refs))
	}
}

// hold takes the test process's Shared lock.
func (s *pruneKillState) hold(n int) {
	t := s.t
	t.Helper()
	s.holderRepo = openRepoDir(t, s.repo, false)
	l, err := lock.Acquire(context.Background(), s.holderRepo, lock.Shared, lock.Options{Command: "prune kill test"})
	if err != nil {
		t.Fatalf("take a shared lock: %v", err)
	}
	s.holder, s.holdFor = l, n
}

// release releases the test process's lock, if held.
func (s *pruneKillState) release() {
	t := s.t
	t.Helper()
	if s.holder == nil {
		return
	}
	if err := s.holder.Release(context.Background()); err != nil {
		t.Fatalf("release the shared lock: %v", err)
	}
	s.holderRepo.Close()
	s.holder, s.holderRepo = nil, nil
}

// verify checks the repository with --read-data and restores every
// snapshot, comparing it with its source. It returns the check's result.
func (s *pruneKillState) verify(when string) *checker.Result {
	t := s.t
	t.Helper()
	ctx := context.Background()
	r := openRepoDir(t, s.repo, true)
	defer r.Close()
	res, problems := checkReadData(t, r)
	if len(problems) > 0 {
		t.Fatalf("%s: check --read-data finds %d problems:\n%s", when, len(problems), strings.Join(problems, "\n"))
	}
	sns := listSnapshotsIn(t, r)
	if len(sns) != len(s.refs) {
		t.Fatalf("%s: %d snapshots stored, want the %d that forget kept", when, len(sns), len(s.refs))
	}
	for _, sn := range sns {
		want, ok := s.refs[sn.ID.String()]
		if !ok {
			t.Fatalf("%s: unknown snapshot %s", when, sn.ID.Short())
		}
		if err := restoreMismatch(ctx, r, sn, s.scratch, s.src, want); err != nil {
			t.Fatalf("%s: snapshot %s does not restore its source: %v", when, sn.ID.Short(), err)
		}
	}
	return res
}

// marks counts the prune marks in gc/, and how many of them are fenced.
func (s *pruneKillState) marks() (n, fenced int) {
	t := s.t
	t.Helper()
	r := openRepoDir(t, s.repo, false)
	defer r.Close()
	ms, bad, err := r.LoadMarks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range bad {
		t.Fatalf("prune mark gc/%s cannot be read: %v", name, err)
	}
	for _, m := range ms {
		if m.Fenced {
			fenced++
		}
	}
	return len(ms), fenced
}

// pruneRun is how one prune of TestPruneKill ended.
type pruneRun struct {
	killed  bool
	changes int // files stored or removed in data/, index/ and gc/
	res     jsonPruneSummary
}

// runPrune runs rewind with args (a prune with --json), and kills it
// with SIGKILL after delay, or once it has stored or removed afterChanges
// files (0: no such trigger). A prune that ends by itself must succeed.
func (s *pruneKillState) runPrune(args []string, delay time.Duration, afterChanges int) pruneRun {
	t := s.t
	t.Helper()
	c := s.e.cmd(args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	var changes atomic.Int64
	started := make(chan struct{})
	w, err := watchRepo(s.repo, func(n int) {
		changes.Store(int64(n))
		if n == afterChanges {
			<-started
			c.Process.Signal(syscall.SIGKILL)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		w.stop()
		t.Fatal(err)
	}
	close(started)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	if delay <= 0 {
		delay = time.Hour
	}
	select {
	case err = <-done:
	case <-time.After(delay):
		if err := c.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		err = <-done
	}
	w.stop()
	run := pruneRun{changes: int(changes.Load())}
	switch ee, ok := err.(*exec.ExitError); {
	case err == nil:
		run.res = pruneSummary(t, result{args: args, stdout: stdout.Bytes(), stderr: stderr.Bytes()})
	case ok && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
		run.killed = true
	default:
		t.Fatalf("rewind %s failed by itself: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return run
}

// TestPruneKill kills `rewind prune` with SIGKILL at seeded random
// moments, after giving it work each time: a new snapshot, the oldest one
// forgotten, and on most runs --max-unused 0% so that mixed packs are
// repacked. Half the kills come after a random delay, scaled by how long
// a prune takes; the others right after the prune stored or removed its
// Nth file, which spreads them over the repack, the mark and the sweep,
// the phases that write. For stretches of runs the test process holds a
// Shared lock, as a backup elsewhere would, so that marks stay pending
// and later prunes, killed or not, sweep them. After every kill, check
// --read-data has no problem and every snapshot restores bit-exactly. At
// the end an uninterrupted prune leaves no mark, no condemned and no
// unindexed pack.
func TestPruneKill(t *testing.T) {
	t.Parallel()
	kills := pruneKills(t)
	if testing.Short() {
		kills = min(kills, 5)
	}
	rng := rand.New(rand.NewPCG(*pruneKillSeed, 0x9e3779b9))
	mem := scratchDir(t)
	s := &pruneKillState{t: t, repo: filepath.Join(mem, "repo"), src: filepath.Join(mem, "src"), scratch: mem, refs: map[string]map[string][]byte{}}
	initRepo(t, s.repo, testPassword, 1<<20)
	s.e = newEnv(t).with("REWIND_REPOSITORY", s.repo, "REWIND_PASSWORD", testPassword)
	t.Cleanup(s.release)
	pruneKillSource(t, s.src, rng)
	for range pruneKillKeep + 1 {
		s.snapshot(rng)
	}

	// An uninterrupted prune with repacking gives how long a prune takes
	// here and how many files it changes, which scale the kill schedule;
	// both estimates then follow the prunes that finish.
	args := []string{"prune", "--json", "--max-unused", "0%"}
	start := time.Now()
	ref := s.runPrune(args, 0, 0)
	est, estChanges := time.Since(start), max(ref.changes, 4)
	t.Logf("reference prune: %.3fs, %d files stored or removed; %d packs, repacked %d, deleted %d",
		est.Seconds(), ref.changes, ref.res.Packs, ref.res.PacksRepacked, ref.res.PacksDeleted)
	s.verify("after the reference prune")

	phases := map[string]int{}
	var completed, deleted, repacked, revived, heldRuns, maxMarks, unindexedSeen int
	for i := range kills {
		s.snapshot(rng)
		switch {
		case s.holder != nil:
			if s.holdFor--; s.holdFor <= 0 {
				s.release()
			}
		case rng.IntN(4) == 0:
			s.hold(1 + rng.IntN(4))
		}
		if s.holder != nil {
			heldRuns++
		}
		args := []string{"prune", "--json"}
		switch rng.IntN(6) {
		case 0, 1, 2:
			args = append(args, "--max-unused", "0%")
		case 3:
			args = append(args, "--max-unused", "0%", "--max-repack-size", "300K")
		}
		var delay time.Duration
		var after int
		var when string
		if rng.IntN(2) == 0 {
			// Over the whole run and a little past it: most of these
			// land while the prune reads and plans.
			delay = time.Duration(rng.Int64N(int64(est) * 6 / 5))
			when = fmt.Sprintf("run %d (rewind %s, kill after %v)", i, strings.Join(args, " "), delay)
		} else {
			after = 1 + rng.IntN(estChanges*6/5)
			when = fmt.Sprintf("run %d (rewind %s, kill after %d files changed)", i, strings.Join(args, " "), after)
		}
		before := repoNames(t, s.repo)
		begin := time.Now()
		run := s.runPrune(args, delay, after)
		if run.killed {
			phases[prunePhase(before, repoNames(t, s.repo))]++
		} else {
			completed++
			phases["completed"]++
			est = (est + time.Since(begin)) / 2
			estChanges = max((estChanges+run.changes)/2, 4)
			deleted += run.res.PacksDeleted
			repacked += run.res.PacksRepacked
			revived += run.res.PacksRevived
			if s.holder != nil && run.res.PacksDeleted > 0 && len(run.res.WaitingFor) == 0 {
				t.Errorf("%s: deleted %d packs while a lock was held, and waits for no one", when, run.res.PacksDeleted)
			}
		}
		res := s.verify(when)
		unindexedSeen += len(res.Unindexed)
		n, _ := s.marks()
		maxMarks = max(maxMarks, n)
	}
	t.Logf("%d runs, %d while a lock was held; by the phase each kill had reached: %v", kills, heldRuns, phases)
	t.Logf("completed prunes deleted %d packs, repacked %d, revived %d; up to %d marks pending at once; %d unindexed packs seen after kills",
		deleted, repacked, revived, maxMarks, unindexedSeen)
	if interrupted := kills - completed - phases["read and plan"]; kills >= 20 && interrupted == 0 {
		t.Errorf("no kill interrupted a prune that had started writing: the schedule does not test recovery")
	}

	// With no lock held, an uninterrupted prune finishes what the killed
	// ones left: every mark swept, every pack indexed.
	s.release()
	final := s.runPrune(args, 0, 0).res
	res := s.verify("after the final prune")
	n, fenced := s.marks()
	t.Logf("final prune: %d packs, deleted %d, repacked %d, revived %d, condemned %d; %d temporary files left by kills",
		final.Packs, final.PacksDeleted, final.PacksRepacked, final.PacksRevived, final.PacksCondemned, tempFiles(t, s.repo))
	if n != 0 || final.PacksPending != 0 || len(final.WaitingFor) != 0 {
		t.Errorf("after the final prune: %d marks left (%d fenced), %d packs pending, waiting for %v", n, fenced, final.PacksPending, final.WaitingFor)
	}
	if len(res.Unindexed) != 0 || res.Condemned != 0 {
		t.Errorf("after the final prune: unindexed packs %v, %d condemned packs", res.Unindexed, res.Condemned)
	}
	if len(final.Damaged) != 0 || len(final.BadMarks) != 0 {
		t.Errorf("final prune reports damage %v, unreadable marks %v", final.Damaged, final.BadMarks)
	}
	again := pruneSummary(t, s.e.mustRun("prune", "--json", "--max-unused", "0%"))
	if again.PacksCondemned != 0 || again.PacksDeleted != 0 || again.PacksRepacked != 0 {
		t.Errorf("a prune after the final one still did work: %+v", again)
	}
	s.e.mustRun("check", "--read-data")
}
