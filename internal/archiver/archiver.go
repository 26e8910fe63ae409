package archiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sync/errgroup"
)

// Archiver makes one snapshot. Create it with New and call Snapshot once.
type Archiver struct {
	repo *repository.Repository
	// store takes the new blobs: repoStore, or dryStore for DryRun.
	store blobStore
	opt   Options
	log   *slog.Logger
	prog  Progress
	names *fs.IDNames
	match *filter.Matcher
	// markers are the files whose presence excludes their directory's
	// content (ExcludeIfPresent, ExcludeCaches).
	markers []marker
	part    *partialState // partial backups and in-flux marking; nil if neither
	sq      *sqliteState  // SQLite captures; nil without Options.SQLite

	// walkers runs extra directory walkers beside the first one.
	walkers *errgroup.Group
	files   chan *fileJob
	saves   chan saveJob
	zeroIDs sync.Map // chunk length → ID of that many zero bytes

	links   sync.Map // devIno → *linkState, hard links seen in this run
	errMu   sync.Mutex
	errs    []snapshot.FileError
	skipped []snapshot.FileError
	// boundaries: directories OneFileSystem did not go into.
	boundaries []Boundary
	// large: files ExcludeLargerThan left out.
	large []LargeFile
	st    counters
	delta deltaCounters
	bufs  sync.Pool
	// streamBuf is storeStream's read buffer, reused from stream to
	// stream (storeStream runs one at a time).
	streamBuf []byte
}

type counters struct {
	filesNew, filesChanged, filesUnchanged atomic.Int64
	dirsNew, dirsChanged, dirsUnchanged    atomic.Int64
	totalFiles, totalBytes, bytesRead      atomic.Int64
	vanished                               atomic.Int64
	// filesReread counts files read more than once because they changed
	// while read, bytesReread the bytes of those extra reads, filesTorn
	// the files still changing on the last attempt (FlagChanged).
	filesReread, bytesReread, filesTorn atomic.Int64
}

// New prepares an archiver.
func New(r *repository.Repository, opt Options) (*Archiver, error) {
	m, err := filter.NewMatcher(opt.Excludes)
	if err != nil {
		return nil, err
	}
	markers, err := parseMarkers(opt.ExcludeIfPresent, opt.ExcludeCaches)
	if err != nil {
		return nil, err
	}
	names, err := fs.LoadIDNames()
	if err != nil {
		names, _ = fs.LoadIDNamesFrom("/dev/null", "/dev/null")
	}
	if opt.FileWorkers <= 0 {
		opt.FileWorkers = envInt("REWIND_FILE_WORKERS", max(2, runtime.GOMAXPROCS(0)))
	}
	if opt.Savers <= 0 {
		opt.Savers = envInt("REWIND_SAVERS", runtime.GOMAXPROCS(0))
	}
	if opt.Walkers <= 0 {
		opt.Walkers = envInt("REWIND_WALKERS", runtime.GOMAXPROCS(0))
	}
	if opt.LargeFile <= 0 {
		opt.LargeFile = DefaultLargeFile
	}
	if opt.Hostname == "" {
		opt.Hostname, _ = os.Hostname()
	}
	if opt.DryRun && opt.AfterWalk != nil {
		return nil, errors.New("internal error: late files (AfterWalk) cannot be added in a dry run")
	}
	if opt.ReadFrom, err = checkReadFrom(opt.ReadFrom); err != nil {
		return nil, err
	}
	if err := applySystemRoot(&opt); err != nil {
		return nil, err
	}
	var store blobStore = repoStore{r}
	if opt.DryRun {
		store = newDryStore(r)
	}
	sq, err := newSQLiteState(opt)
	if err != nil {
		return nil, err
	}
	a := &Archiver{repo: r, store: store, opt: opt, log: opt.Logger, prog: opt.Progress, names: names, match: m, markers: markers, part: newPartial(opt), sq: sq}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.prog == nil {
		a.prog = nopProgress{}
	}
	return a, nil
}

// fileError records a regular file that was not backed up whole.
func (a *Archiver) fileError(p string, err error) { a.entryError(p, tree.File, err) }

// entryError records an entry of type t (0 when its type could not be
// read) that was not backed up whole.
func (a *Archiver) entryError(p string, t tree.Type, err error) {
	kind := snapshot.ErrorKind(t)
	a.errMu.Lock()
	a.errs = append(a.errs, snapshot.FileError{Path: p, Error: err.Error(), Kind: kind})
	a.errMu.Unlock()
	a.log.Info("entry not backed up whole", "path", p, "kind", kind, "err", err)
	a.prog.Error(p, kind, err)
}

func (a *Archiver) skip(p, why string) {
	a.errMu.Lock()
	a.skipped = append(a.skipped, snapshot.FileError{Path: p, Error: why})
	a.errMu.Unlock()
	a.log.Info("skipped", "path", p, "reason", why)
}

// CleanTargets makes the paths absolute and clean, drops duplicates and
// paths inside other given paths, and sorts them.
func CleanTargets(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		out = append(out, filepath.Clean(abs))
	}
	slices.Sort(out)
	out = slices.Compact(out)
	var kept []string
	for _, p := range out {
		inside := false
		for _, k := range kept {
			if k == "/" || strings.HasPrefix(p, k+"/") {
				inside = true
				break
			}
		}
		if !inside {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// Snapshot backs up paths and stores a snapshot. When some files could not
// be read the snapshot is still stored and lists them in its summary.
func (a *Archiver) Snapshot(ctx context.Context, paths []string) (*snapshot.Snapshot, error) {
	start := time.Now()
	targets, err := CleanTargets(paths)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("nothing to back up: no paths given")
	}
	for _, t := range targets {
		if _, err := os.Lstat(a.src(t)); err != nil {
			return nil, fmt.Errorf("backup path %q: %w", t, err)
		}
	}
	defer a.sq.cleanup()
	statsBefore := a.store.stats()
	a.store.start(ctx)
	rootIDs, err := a.run(ctx, targets)
	if err == nil && a.opt.AfterWalk != nil {
		var late []LateFile
		if late, err = a.opt.AfterWalk(ctx); err == nil && len(late) > 0 {
			rootIDs, err = a.graftLate(ctx, rootIDs, targets, late)
		}
	}
	if ferr := a.store.flush(ctx); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	u := a.names.User(uint32(os.Getuid()))
	sn := &snapshot.Snapshot{
		Time:           start.UTC(),
		Tree:           rootIDs,
		Paths:          targets,
		Hostname:       a.opt.Hostname,
		Username:       u,
		UID:            uint32(os.Getuid()),
		GID:            uint32(os.Getgid()),
		Tags:           a.opt.Tags,
		Excludes:       a.opt.Excludes,
		ProgramVersion: a.opt.ProgramVersion,
	}
	if a.opt.Parent != nil {
		p := a.opt.Parent.ID
		sn.Parent = &p
	}
	after := a.store.stats()
	sn.Summary = &snapshot.Summary{
		BackupStart:    start.UTC(),
		BackupEnd:      time.Now().UTC(),
		FilesNew:       a.st.filesNew.Load(),
		FilesChanged:   a.st.filesChanged.Load(),
		FilesUnchanged: a.st.filesUnchanged.Load(),
		DirsNew:        a.st.dirsNew.Load(),
		DirsChanged:    a.st.dirsChanged.Load(),
		DirsUnchanged:  a.st.dirsUnchanged.Load(),
		TotalFiles:     a.st.totalFiles.Load(),
		TotalBytes:     a.st.totalBytes.Load(),
		BytesRead:      a.st.bytesRead.Load(),
		FilesReread:    a.st.filesReread.Load(),
		BytesReread:    a.st.bytesReread.Load(),
		FilesTorn:      a.st.filesTorn.Load(),
		DataBlobs:      after.dataBlobs - statsBefore.dataBlobs,
		TreeBlobs:      after.treeBlobs - statsBefore.treeBlobs,
		DataAdded:      after.added - statsBefore.added,
		DataStored:     after.stored - statsBefore.stored,
		Errors:         a.errs,
	}
	a.finishPartialSummary(sn.Summary)
	if a.opt.SkipUnchanged && !a.opt.DryRun && a.sameAsParent(ctx, rootIDs, targets) {
		return nil, ErrUnchanged
	}
	a.finishSQLite(ctx, sn)
	// Skipped entries (sockets) are named in the log and the summary's
	// errors are reserved for files whose content is missing.
	return a.commit(ctx, sn)
}

// commit runs the BeforeCommit hook, then saves sn, unless this is a dry
// run. Every snapshot the archiver makes ends here.
func (a *Archiver) commit(ctx context.Context, sn *snapshot.Snapshot) (*snapshot.Snapshot, error) {
	if a.opt.BeforeCommit != nil {
		if err := a.opt.BeforeCommit(ctx); err != nil {
			return nil, err
		}
	}
	if a.opt.DryRun {
		return sn, nil
	}
	if a.opt.BeforeSave != nil {
		if err := a.opt.BeforeSave(ctx, sn); err != nil {
			return nil, err
		}
	}
	if err := snapshot.Save(ctx, a.repo, sn); err != nil {
		return nil, err
	}
	return sn, nil
}

// Skipped returns the entries deliberately left out (sockets).
func (a *Archiver) Skipped() []snapshot.FileError { return a.skipped }

// Vanished returns how many entries disappeared between listing and reading.
func (a *Archiver) Vanished() int64 { return a.st.vanished.Load() }

type repoStats struct{ dataBlobs, treeBlobs, added, stored int64 }

func snapshotRepoStats(r *repository.Repository) repoStats {
	s := r.Stats()
	return repoStats{s.DataBlobs.Load(), s.TreeBlobs.Load(), s.DataAdded.Load() + s.TreeAdded.Load(), s.BlobsStored.Load()}
}

// run drives the walker, file workers and savers, and returns the root
// tree's blob IDs.
func (a *Archiver) run(ctx context.Context, targets []string) ([]id.ID, error) {
	g, gctx := errgroup.WithContext(ctx)
	a.files = make(chan *fileJob, 4*a.opt.FileWorkers)
	a.saves = make(chan saveJob, a.opt.Savers)
	var rootIDs []id.ID
	root := &dirState{path: "/", onDone: func(ids []id.ID) { rootIDs = ids }}
	var parentRoot []id.ID
	if a.opt.Parent != nil {
		parentRoot = a.opt.Parent.Tree
	}
	g.Go(func() error {
		defer close(a.files)
		wg, wctx := errgroup.WithContext(gctx)
		wg.SetLimit(a.opt.Walkers)
		a.walkers = wg
		err := a.walkVirtual(wctx, root, "/", buildVTree(targets), newParentDir(a.repo, parentRoot))
		if werr := wg.Wait(); err == nil {
			err = werr
		}
		return err
	})
	var workers sync.WaitGroup
	for range a.opt.FileWorkers {
		workers.Add(1)
		g.Go(func() error {
			defer workers.Done()
			return a.fileWorker(gctx)
		})
	}
	g.Go(func() error {
		workers.Wait()
		close(a.saves)
		return nil
	})
	for range a.opt.Savers {
		g.Go(func() error { return a.saver(gctx) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if rootIDs == nil {
		return nil, errors.New("internal error: root tree was not finished")
	}
	return rootIDs, nil
}

// saveJob is a new chunk on its way to a pack.
type saveJob struct {
	id  id.ID
	buf *[]byte
}

func (a *Archiver) saver(ctx context.Context) error {
	for j := range a.saves {
		err := a.store.saveReserved(ctx, pack.DataBlob, j.id, *j.buf)
		a.bufs.Put(j.buf)
		if err != nil {
			for range a.saves {
			}
			return err
		}
	}
	return nil
}

// envInt reads a tuning override from the environment (docs/CLI.md lists
// them; they exist for benchmarking).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
