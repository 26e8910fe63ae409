package restorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// ErrTargetNotEmpty: the target has content and Overwrite is off.
var ErrTargetNotEmpty = errors.New("target directory is not empty")

// ErrDiskFull: the target filesystem ran out of space.
var ErrDiskFull = errors.New("target disk is full")

// ErrIncomplete: the restore finished, and every entry it could restore
// is as the snapshot records it, but some are missing or not exact for a
// reason outside the repository: files whose content the backup could not
// read (Stats.NotBackedUp). The command line exits with status 3 for it.
var ErrIncomplete = errors.New("restore incomplete")

// ErrNotAllKept: the restore finished, but the target filesystem refused
// some metadata (Stats.Warnings lists it), such as extended attributes
// larger or more numerous than it holds on one file.
var ErrNotAllKept = errors.New("restored, but the target filesystem cannot keep some metadata")

// Restorer restores one snapshot. Use New and call Restore once.
type Restorer struct {
	repo *repository.Repository
	opt  Options
	log  *slog.Logger
	incl *filter.Matcher
	excl *filter.Matcher
	root *os.Root

	jobs  chan *fileJob
	links map[devIno]string // walker only: first restored path of an inode

	mu                                           sync.Mutex // guards stats.Errors
	planMu                                       sync.Mutex // serializes Options.Plan
	stats                                        Stats
	files, bytes, dirs, other, skipped, verified atomic.Int64
	removed                                      atomic.Int64
	full                                         atomic.Bool
	// dev is the target's filesystem: nothing on another is removed.
	dev uint64
	// inheritsACL: the target has a default ACL, so every entry created
	// below it starts with an ACL that is not the snapshot's.
	inheritsACL bool
	// skip holds Options.Skip.
	skip map[string]bool
}

type devIno struct{ dev, ino uint64 }

// New prepares a restorer.
func New(r *repository.Repository, opt Options) (*Restorer, error) {
	if opt.Target == "" {
		return nil, errors.New("no target directory given")
	}
	if opt.Workers <= 0 {
		opt.Workers = 2 * runtime.GOMAXPROCS(0)
		if v, err := strconv.Atoi(os.Getenv("REWIND_RESTORE_WORKERS")); err == nil && v > 0 {
			opt.Workers = v
		}
	}
	rs := &Restorer{repo: r, opt: opt, log: opt.Logger, links: map[devIno]string{}, skip: map[string]bool{}}
	for _, p := range opt.Skip {
		rs.skip[path.Clean("/"+p)] = true
	}
	if rs.log == nil {
		rs.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if len(opt.Include) > 0 {
		if rs.incl, err = filter.NewMatcher(opt.Include); err != nil {
			return nil, err
		}
	}
	if rs.excl, err = filter.NewMatcher(opt.Exclude); err != nil {
		return nil, err
	}
	return rs, nil
}

// fail records an entry that could not be restored whole. A full
// filesystem (out of space or inodes, or over quota) also stops the
// restore, wherever it is met: by a worker writing a file, or by the
// walker making a folder, symlink, device or hard link.
func (r *Restorer) fail(p string, err error) {
	if (errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) && !errors.Is(err, ErrDiskFull) {
		r.full.Store(true)
		err = fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	r.mu.Lock()
	r.stats.Errors = append(r.stats.Errors, FileError{Path: p, Error: err.Error()})
	r.mu.Unlock()
	r.log.Info("restore error", "path", p, "err", err)
}

// notBackedUp records a file of the snapshot whose content the backup
// could not read, so it is not restored.
func (r *Restorer) notBackedUp(p string, n *tree.Node) {
	why := (&snapshot.NotBackedUpError{Reason: n.Error}).Error()
	r.mu.Lock()
	r.stats.NotBackedUp = append(r.stats.NotBackedUp, FileError{Path: p, Error: why})
	r.mu.Unlock()
	r.plan(plannedNode(ActNotBackedUp, p, n))
	r.log.Info("not restored: not backed up", "path", p, "reason", n.Error)
}

// warn records metadata of an entry that the target filesystem refused
// (fs.ErrNotKept); the entry is otherwise restored.
func (r *Restorer) warn(p string, err error) {
	r.mu.Lock()
	r.stats.Warnings = append(r.stats.Warnings, FileError{Path: p, Error: err.Error()})
	r.mu.Unlock()
	r.log.Info("restore warning", "path", p, "err", err)
}

// metaApplied records what setting an entry's metadata left undone: what
// the filesystem refused is a warning, and any other failure is returned.
func (r *Restorer) metaApplied(p string, err error) error {
	notKept, other := fs.SplitNotKept(err)
	if notKept != nil {
		r.warn(p, notKept)
	}
	return other
}

// rdir is a directory being restored. Its fd is opened when something is
// first restored into it; pending counts unfinished children plus one
// hold by the walker.
type rdir struct {
	parent  *rdir
	name    string
	path    string // path in the snapshot, for messages and patterns
	rel     string // path below the target, "" for the target itself
	node    *tree.Node
	fd      int
	pending atomic.Int64
	names   fs.Listing // walker only: the names met so far in its listing
	// absent: in a dry run, the directory is not in the target and the
	// restore would create it, so nothing is below it; fd is -1.
	absent bool
}

// Restore writes the snapshot's entry at snapPath ("/" for all) into the
// target. A directory's contents go into the target; a file goes into the
// target under its own name. Errors on single files are collected in the
// returned Stats; the error is non-nil if anything failed.
func (r *Restorer) Restore(ctx context.Context, sn *snapshot.Snapshot, snapPath string) (*Stats, error) {
	began := time.Now()
	base := path.Clean("/" + snapPath)
	start, err := snapshot.Lookup(ctx, r.repo, sn, snapPath)
	if err != nil {
		return nil, err
	}
	var above []*tree.Node
	if r.opt.Absolute {
		if above, err = ancestors(ctx, r.repo, sn, base); err != nil {
			return nil, err
		}
	}
	created, absent := false, r.opt.targetAbsent
	if !r.opt.targetReady {
		if created, err = r.prepareTarget(); err != nil {
			return nil, err
		}
		if absent = created && r.opt.DryRun; absent {
			at := base
			if r.opt.Absolute {
				at = "/"
			} else if start.Type != tree.Dir {
				at = path.Dir(base)
			}
			r.plan(Planned{Action: ActNew, Path: at, Type: tree.Dir.String()})
		}
	}
	top := &rdir{fd: -1, absent: true}
	if !absent {
		if top.fd, err = r.openTarget(); err != nil {
			return nil, err
		}
		top.absent = false
		defer r.root.Close()
	}

	g, gctx := errgroup.WithContext(ctx)
	r.jobs = make(chan *fileJob, 4*r.opt.Workers)
	g.Go(func() error {
		defer close(r.jobs)
		if r.opt.Absolute && base != "/" {
			return r.along(gctx, top, above, base, start)
		}
		if start.Type == tree.Dir {
			return r.walk(gctx, top, base, start.Subtree, r.incl == nil)
		}
		top.pending.Store(1)
		if err := r.entry(gctx, top, path.Dir(base), start, r.incl == nil); err != nil {
			return err
		}
		return r.childDone(top)
	})
	for range r.opt.Workers {
		g.Go(func() error { return r.worker(gctx) })
	}
	err = g.Wait()
	if err == nil && start.Type == tree.Dir && base != "/" && !r.opt.Absolute && (created || r.opt.TargetIsEntry) && !r.full.Load() && !r.opt.DryRun {
		// The target is the directory restored: it takes its mode, owner,
		// times, xattrs and ACLs, now that nothing more is written into it.
		if merr := r.metaApplied(base, r.applyTargetMeta(start)); merr != nil {
			r.fail(base, merr)
		}
	}
	r.stats.Removed = r.removed.Load()
	r.stats.Files, r.stats.Bytes, r.stats.Dirs = r.files.Load(), r.bytes.Load(), r.dirs.Load()
	r.stats.Other, r.stats.FilesSkipped, r.stats.Verified = r.other.Load(), r.skipped.Load(), r.verified.Load()
	r.stats.DryRun = r.opt.DryRun
	r.stats.DurationSeconds = time.Since(began).Seconds()
	if r.stats.DurationSeconds > 0 && !r.opt.DryRun {
		r.stats.BytesPerSecond = float64(r.stats.Bytes) / r.stats.DurationSeconds
	}
	if err == nil && r.full.Load() {
		err = fmt.Errorf("%w (files restored so far: %d, %d bytes): free space and run the restore again with --overwrite to finish it", ErrDiskFull, r.stats.Files, r.stats.Bytes)
	}
	if err == nil && len(r.stats.Errors) > 0 {
		err = fmt.Errorf("entries that could not be restored whole: %d", len(r.stats.Errors))
	}
	if err == nil {
		var errs []error
		if len(r.stats.NotBackedUp) > 0 {
			errs = append(errs, fmt.Errorf("%w: files not restored because the backup could not read them (listed above): %d; what is at their paths in the target was left as it was",
				ErrIncomplete, len(r.stats.NotBackedUp)))
		}
		if len(r.stats.Warnings) > 0 {
			errs = append(errs, fmt.Errorf("%w: entries that lack some of it: %d", ErrNotAllKept, len(r.stats.Warnings)))
		}
		err = errors.Join(errs...)
	}
	return &r.stats, err
}

// openTarget opens the existing target for the walk, and notes its
// filesystem and whether it has a default ACL.
func (r *Restorer) openTarget() (int, error) {
	rootfd, err := fs.OpenDir(r.opt.Target)
	if err != nil {
		return -1, fmt.Errorf("open target: %w", err)
	}
	var rootSt unix.Stat_t
	if err := unix.Fstat(rootfd, &rootSt); err != nil {
		unix.Close(rootfd)
		return -1, fmt.Errorf("open target: %w", err)
	}
	r.dev = rootSt.Dev
	if r.root, err = os.OpenRoot(r.opt.Target); err != nil {
		unix.Close(rootfd)
		return -1, fmt.Errorf("open target: %w", err)
	}
	if _, err := unix.Fgetxattr(rootfd, "system.posix_acl_default", nil); err == nil {
		r.inheritsACL = true
	}
	return rootfd, nil
}

// prepareTarget creates the target, or checks that it may be written to.
// It reports whether it created it (in a dry run: would create it).
func (r *Restorer) prepareTarget() (bool, error) {
	t := r.opt.Target
	if r.opt.TargetIsEntry && r.opt.Overwrite {
		// The target stands for a directory of the snapshot: a file or
		// symlink there now goes, as any entry of the other kind would.
		if fi, err := os.Lstat(t); err == nil && !fi.IsDir() {
			if r.opt.DryRun {
				var st unix.Stat_t
				if unix.Lstat(t, &st) == nil {
					r.removedDry(t, &st)
				}
				return true, nil
			}
			if err := os.Remove(t); err != nil {
				return false, fmt.Errorf("replace what is at the target: %w", err)
			}
			r.removed.Add(1)
		}
	}
	if err := checkTargetKind(t); err != nil {
		return false, err
	}
	ents, err := os.ReadDir(t)
	if errors.Is(err, os.ErrNotExist) {
		if r.opt.DryRun {
			return true, nil
		}
		if err := os.MkdirAll(t, 0o700); err != nil {
			return false, fmt.Errorf("create target: %w", err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("target %q: %w", t, err)
	}
	if len(ents) > 0 && !r.opt.Overwrite {
		return false, fmt.Errorf("%w: %q is not empty (entries: %d); restore into an empty directory, or pass --overwrite to rewrite what differs", ErrTargetNotEmpty, t, len(ents))
	}
	return false, nil
}

// checkTargetKind refuses a target that cannot become the restored
// directory, naming what it is and what to do: a symlink that leads
// nowhere (MkdirAll would fail with "file exists"), or something that is
// not a directory. A symlink to a directory is followed: the user named
// it.
func checkTargetKind(t string) error {
	lfi, err := os.Lstat(t)
	if err != nil {
		return nil // absent: created; other errors are reported by ReadDir
	}
	fi, err := os.Stat(t)
	if lfi.Mode()&os.ModeSymlink != 0 && errors.Is(err, os.ErrNotExist) {
		dest, _ := os.Readlink(t)
		return fmt.Errorf("target %q is a symlink to %q, which does not exist: create that directory first, or give --target a directory (or a path that does not exist yet)", t, dest)
	}
	if err == nil && !fi.IsDir() {
		what := "a " + fileKind(fi.Mode())
		if lfi.Mode()&os.ModeSymlink != 0 {
			what = "a symlink to " + what
		}
		return fmt.Errorf("target %q is %s, not a directory: give --target a directory (or a path that does not exist yet); `rewind dump SNAPSHOT:PATH` writes a single file", t, what)
	}
	return nil
}

// fileKind names the type of a file for messages.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	}
	return "file of another type"
}

// applyTargetMeta gives the target the metadata of the snapshot's
// directory n. The target "/" is left as it is.
func (r *Restorer) applyTargetMeta(n *tree.Node) error {
	t := filepath.Clean(r.opt.Target)
	if t == "/" {
		return nil
	}
	parent, err := fs.OpenDir(filepath.Dir(t))
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	return fs.ApplyMeta(parent, filepath.Base(t), n, r.applyOpts())
}

// ensure creates and opens d and its parents. Walker only.
func (r *Restorer) ensure(d *rdir) error {
	if d.fd >= 0 || d.absent {
		return nil
	}
	if err := r.ensure(d.parent); err != nil {
		return err
	}
	if r.opt.DryRun {
		return r.ensureDry(d)
	}
	if _, err := r.makeWay(d.parent.fd, d.name, d.path, true); err != nil {
		return err
	}
	if err := fs.Mkdirat(d.parent.fd, d.name, 0o700); err != nil {
		return err
	}
	fd, err := fs.OpenDirAt(d.parent.fd, d.name)
	if err != nil {
		return err
	}
	if r.opt.Overwrite {
		// An earlier restore may have made it immutable; its metadata,
		// flags included, is set again once its entries are restored.
		if err := fs.ClearFixedFlags(fd); err != nil {
			unix.Close(fd)
			return err
		}
	}
	d.fd = fd
	r.dirs.Add(1)
	return nil
}

// childDone releases one hold on d; the last one sets the directory's
// metadata and closes it, then releases its parent.
func (r *Restorer) childDone(d *rdir) error {
	for d != nil {
		if d.pending.Add(-1) != 0 {
			return nil
		}
		if d.fd >= 0 && d.parent != nil && r.opt.DryRun {
			unix.Close(d.fd)
		} else if d.fd >= 0 && d.parent != nil {
			unix.Close(d.fd)
			err := fs.ApplyMeta(d.parent.fd, d.name, d.node, r.applyOpts())
			if err := r.metaApplied(d.rel, err); err != nil {
				r.fail(d.rel, err)
			}
		} else if d.fd >= 0 {
			unix.Close(d.fd)
		}
		d = d.parent
	}
	return nil
}

func (r *Restorer) applyOpts() fs.ApplyOptions { return fs.ApplyOptions{Owner: r.opt.Owner} }

// walk restores the directory listing ids into d. all is true when d is
// inside an included directory (or no includes were given).
func (r *Restorer) walk(ctx context.Context, d *rdir, snapPath string, ids []id.ID, all bool) error {
	d.pending.Store(1)
	// With Delete, the names the snapshot lists here, so that what else
	// the target holds can go once they are restored.
	var names map[string]bool
	if r.opt.Delete && all {
		names = map[string]bool{}
	}
	err := snapshot.EachNode(ctx, r.repo, ids, func(n *tree.Node) error {
		if ctx.Err() != nil || r.full.Load() {
			return ctx.Err()
		}
		if names != nil {
			names[n.Name] = true
		}
		return r.entry(ctx, d, snapPath, n, all)
	})
	if err != nil {
		// A damaged listing loses what is below it, not the restore; and
		// since what it listed is unknown, nothing here is deleted.
		if ctx.Err() != nil {
			return err
		}
		r.fail(path.Join("/", snapPath), err)
		names = nil
	}
	if names != nil && d.fd >= 0 && !r.full.Load() {
		r.deleteExtra(d, path.Join("/", snapPath), names)
	}
	return r.childDone(d)
}

// entry restores one node into d.
func (r *Restorer) entry(ctx context.Context, d *rdir, dirPath string, n *tree.Node, all bool) error {
	if err := d.names.Check(n.Name); err != nil {
		r.fail(snapshot.JoinName(dirPath, strconv.Quote(n.Name)), fmt.Errorf("refusing entry from snapshot: %w", err))
		return nil
	}
	p := path.Join(dirPath, n.Name)
	rel := path.Join(d.rel, n.Name)
	if r.leftAlone(p, n.Name) {
		return nil
	}
	inc := all || r.incl.Match(p, n.Name)
	if n.Type == tree.Dir {
		c := *n
		child := &rdir{parent: d, name: n.Name, path: p, rel: rel, node: &c, fd: -1}
		d.pending.Add(1)
		if inc {
			if err := r.ensure(child); err != nil {
				r.fail(p, err)
				child.pending.Store(1)
				return r.childDone(child)
			}
		}
		return r.walk(ctx, child, p, n.Subtree, inc)
	}
	if !inc {
		return nil
	}
	if err := r.ensure(d); err != nil {
		r.fail(p, err)
		return nil
	}
	if snapshot.NotBackedUp(n) {
		// Nothing to write: the content is unknown. Whatever is at the
		// path in the target now is left alone.
		r.notBackedUp(p, n)
		return nil
	}
	gone := false
	if !d.absent {
		var err error
		if gone, err = r.makeWay(d.fd, n.Name, p, false); err != nil {
			r.fail(p, err)
			return nil
		}
	}
	if n.Type == tree.File {
		return r.queueFile(ctx, d, p, rel, n, gone)
	}
	special := r.special
	if r.opt.DryRun {
		special = func(d *rdir, p string, n *tree.Node) error { return r.specialDry(d, p, n, gone) }
	}
	if err := special(d, p, n); err != nil {
		r.fail(p, err)
		return nil
	}
	r.other.Add(1)
	return nil
}

// special creates a symlink, device or FIFO at p and sets its metadata.
func (r *Restorer) special(d *rdir, p string, n *tree.Node) error {
	if r.opt.Overwrite {
		var st unix.Stat_t
		if unix.Fstatat(d.fd, n.Name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Unlinkat(d.fd, n.Name, 0); err != nil {
				return fmt.Errorf("replace: %w", err)
			}
		}
	}
	var err error
	switch n.Type {
	case tree.Symlink:
		err = fs.SymlinkAt(n.LinkTarget, d.fd, n.Name)
	case tree.BlockDev, tree.CharDev, tree.FIFO:
		err = fs.MknodAt(d.fd, n.Name, n)
	default:
		return fmt.Errorf("cannot restore a %s", n.Type)
	}
	if err != nil {
		return err
	}
	return r.metaApplied(p, fs.ApplyMeta(d.fd, n.Name, n, r.applyOpts()))
}

// queueFile hands a regular file to the workers, or links it to an inode
// already restored. gone: makeWay removed what was at its path.
func (r *Restorer) queueFile(ctx context.Context, d *rdir, p, rel string, n *tree.Node, gone bool) error {
	c := *n
	job := &fileJob{dir: d, path: p, rel: rel, node: &c, absent: gone || d.absent}
	if n.Links > 1 {
		key := devIno{n.DeviceID, n.Inode}
		if first, ok := r.links[key]; ok {
			if r.opt.DryRun {
				if err := r.linkDry(d, p, first, n, gone); err != nil {
					r.fail(p, err)
				} else {
					r.other.Add(1)
				}
				return nil
			}
			if r.opt.Overwrite {
				_ = r.root.Remove(rel)
			}
			if err := r.root.Link(first, rel); err != nil {
				r.fail(p, fmt.Errorf("hard link to %s: %w", first, err))
			} else {
				r.other.Add(1)
			}
			return nil
		}
		// Create the first name now, so later names can link to it before
		// a worker has written it.
		if !r.opt.DryRun {
			f, err := r.createFile(d, n.Name)
			if err != nil {
				r.fail(p, err)
				return nil
			}
			job.f = f
		}
		r.links[key] = rel
	}
	d.pending.Add(1)
	select {
	case r.jobs <- job:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
