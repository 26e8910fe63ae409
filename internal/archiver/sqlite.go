package archiver

// SQLite databases inside a backup (docs/SQLITE.md, "Inside backup and
// watch").
//
// A plain read of a live SQLite database can be torn: a writer commits
// between two reads of its pages, or a WAL-mode database's latest commits
// sit in its -wal, which is read at another moment. So each regular file
// that is read anyway (new or changed) has its first 100 bytes looked at;
// one with a SQLite header is not read as bytes but captured by the hook
// (Options.SQLite): a consistent version, read in place inside a read
// transaction or copied with SQLite's online backup API into a private
// temporary folder, is what the snapshot stores at the database's path,
// with the database's own metadata. Its -wal, -shm and -journal are then
// left out: restored beside the version, a -wal would replay stale frames
// onto it. Each capture is recorded in the snapshot's sqlite list, with
// the size and times the database and its -wal had before it: the next
// backup keeps the stored version while both are unchanged, since the
// version's own size is not the file's.
//
// A database whose lock cannot be had within the timeout is not stored
// at all (an unreadable file, exit 3); one that SQLite cannot read
// (corrupt, encrypted, not really a database) is stored as plain bytes
// with a warning, its siblings too, so nothing is lost.
//
// The archiver knows SQLite only through Options.SQLite, a SQLiteHook
// the sqlite package makes (sqlite.Hook): that package is a source above
// this one, and stores its own snapshots through it.
//
// The siblings are decided per directory: before a listing's files are
// dispatched, each file that has a -wal, -shm or -journal beside it gets
// a gate, closed once the file is captured or known not to be; the
// sibling's job waits on it (the database sorts before its siblings, so
// it is always dispatched first).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// SQLiteHeaderLen is how much of a file SQLiteHook.IsDatabase is given.
const SQLiteHeaderLen = 100

// SQLiteHook recognises and captures SQLite databases for the archiver.
type SQLiteHook struct {
	// IsDatabase reports whether a file whose first SQLiteHeaderLen bytes
	// are header is a SQLite database.
	IsDatabase func(header []byte) bool
	// Capture takes a consistent version of the database src, in place
	// or copied into the folder tmpDir.
	Capture func(ctx context.Context, src, tmpDir string) (SQLiteVersion, error)
	// Unreadable reports whether a Capture error means that SQLite
	// cannot read the file as a database (corrupt, encrypted): it is then
	// stored as plain bytes. Any other error leaves it out, unreadable.
	Unreadable func(err error) bool
}

// sqliteSuffixes are the files SQLite keeps beside a database.
var sqliteSuffixes = []string{"-wal", "-shm", "-journal"}

// sqliteBase returns the database a sibling's name belongs to.
func sqliteBase(name string) (string, bool) {
	for _, s := range sqliteSuffixes {
		if b, ok := strings.CutSuffix(name, s); ok && b != "" {
			return b, true
		}
	}
	return "", false
}

// SQLiteVersion is a consistent version of a database.
type SQLiteVersion struct {
	// Data holds the version's Size bytes until Close.
	Data io.ReaderAt
	Size int64
	// Record describes it; the archiver fills in Path, Source,
	// CapturedAt and Delta.
	Record snapshot.SQLiteCapture
	Close  func()
	// Delta, when set, names the byte ranges of this version that can
	// differ from prev's, the parent's version of the same database
	// file; a non-empty fallback says why they are not known. The
	// archiver then builds the version from the parent's chunks and
	// those ranges (buildDelta), else reads it whole.
	Delta func(prev *snapshot.SQLiteCapture) (ranges []ByteRange, fallback string)
}

// sqliteState is an archiver's bookkeeping of databases; nil without
// Options.SQLite.
type sqliteState struct {
	// parent holds the parent snapshot's captures by path.
	parent map[string]*snapshot.SQLiteCapture

	mu       sync.Mutex
	tmp      string // the private temporary folder, once made
	ownTmp   bool   // made by this archiver: removed by it
	captures []snapshot.SQLiteCapture
	// kept are parent captures whose stored copy this snapshot keeps;
	// seen are paths whose record this run decided (captured, kept, or
	// read as plain bytes).
	kept []snapshot.SQLiteCapture
	seen map[string]bool
	// raw are files with a SQLite header that SQLite could not read,
	// stored as plain bytes.
	raw []snapshot.FileError
	// siblings counts the -wal, -shm and -journal files left out.
	siblings int64
}

func newSQLiteState(opt Options) (*sqliteState, error) {
	if opt.SQLite == nil {
		return nil, nil
	}
	if opt.SQLite.IsDatabase == nil || opt.SQLite.Capture == nil || opt.SQLite.Unreadable == nil {
		return nil, errors.New("internal error: incomplete SQLite hook")
	}
	s := &sqliteState{seen: map[string]bool{}, tmp: opt.SQLiteTempDir}
	if opt.Parent != nil {
		for i := range opt.Parent.SQLite {
			c := &opt.Parent.SQLite[i]
			if c.Source != nil {
				if s.parent == nil {
					s.parent = map[string]*snapshot.SQLiteCapture{}
				}
				s.parent[c.Path] = c
			}
		}
	}
	return s, nil
}

// dbGate tells a database's siblings whether it was captured.
type dbGate struct {
	done     chan struct{}
	captured bool
}

func (g *dbGate) close(captured bool) {
	g.captured = captured
	close(g.done)
}

// sqliteGates gives a gate to each regular file of d's final listing that
// has a regular -wal, -shm or -journal beside it.
func (a *Archiver) sqliteGates(d *dirState) {
	if a.sq == nil {
		return
	}
	for i := range d.nodes {
		n := &d.nodes[i]
		if n.Type != tree.File {
			continue
		}
		base, ok := sqliteBase(n.Name)
		if !ok {
			continue
		}
		j, found := slices.BinarySearchFunc(d.nodes, base, func(x tree.Node, name string) int { return strings.Compare(x.Name, name) })
		if !found || d.nodes[j].Type != tree.File {
			continue
		}
		if d.gates == nil {
			d.gates = map[string]*dbGate{}
		}
		if d.gates[base] == nil {
			d.gates[base] = &dbGate{done: make(chan struct{})}
		}
	}
}

// sqliteSibling returns the gate of the database whose sibling the file
// n of d is, nil when it is none.
func (d *dirState) sqliteSibling(n *tree.Node) *dbGate {
	if d.gates == nil || n.Type != tree.File {
		return nil
	}
	if base, ok := sqliteBase(n.Name); ok {
		return d.gates[base]
	}
	return nil
}

// statSibling returns the -wal's size and times beside the database p,
// nil when it has none.
func (a *Archiver) statWAL(p string) *snapshot.SQLiteFileStat {
	var st unix.Stat_t
	if err := unix.Lstat(a.src(p)+"-wal", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	return &snapshot.SQLiteFileStat{Size: st.Size, MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano()}
}

// sqliteUnchanged reports whether the database p, captured into prev by
// the parent, can keep that copy: the file and its -wal have the size and
// times they had before that capture.
func (a *Archiver) sqliteUnchanged(p string, prev, n *tree.Node) (*snapshot.SQLiteCapture, bool) {
	if a.sq == nil || a.sq.parent == nil {
		return nil, false
	}
	c := a.sq.parent[p]
	if c == nil {
		return nil, false
	}
	src := c.Source
	same := prev != nil && prev.Type == tree.File && prev.Flags&^tree.FlagInFlux == 0 &&
		prev.Inode == n.Inode && prev.DeviceID == n.DeviceID &&
		src.DB.Size == int64(n.Size) && src.DB.MTime == n.MTime && src.DB.CTime == n.CTime &&
		sameWAL(src.WAL, a.statWAL(p))
	if !same {
		a.log.Debug("SQLite database changed since its capture", "path", p, "recorded", src, "wal", src.WAL, "now_wal", a.statWAL(p), "size", n.Size, "mtime", n.MTime, "ctime", n.CTime)
	}
	return c, same
}

// sameWAL compares a -wal's size and mtime. Its ctime is not compared:
// SQLite, run as root, gives a -wal it opens the database's owner, which
// moves its ctime, so every capture would see it changed by the one
// before. Every write to a -wal moves its mtime.
func sameWAL(a, b *snapshot.SQLiteFileStat) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Size == b.Size && a.MTime == b.MTime
}

// keepSQLite records that the snapshot keeps the parent's capture c.
func (a *Archiver) keepSQLite(c *snapshot.SQLiteCapture) {
	a.sq.mu.Lock()
	a.sq.kept = append(a.sq.kept, *c)
	a.sq.seen[c.Path] = true
	a.sq.mu.Unlock()
}

// isSQLite reads the header of the open file fd, recorded at p, and
// reports whether it is a SQLite database to capture. A file read from a
// frozen copy (Options.ReadFrom: a btrfs or LVM snapshot) is not: the
// copy is crash-consistent with its -wal or -journal beside it, which
// are stored with it and replayed when the restored database is opened,
// as after a power cut, and SQLite could not open a WAL database on a
// read-only snapshot anyway.
func (a *Archiver) isSQLite(p string, fd int, size int64) bool {
	if a.sq == nil || size < SQLiteHeaderLen || a.src(p) != p {
		return false
	}
	var h [SQLiteHeaderLen]byte
	if k, err := fdFile(fd).ReadAt(h[:], 0); err != nil || k != len(h) {
		return false
	}
	return a.opt.SQLite.IsDatabase(h[:])
}

// errSQLiteRaw: SQLite could not read the file; it is read as bytes.
var errSQLiteRaw = errors.New("stored as plain bytes")

// tempDir returns the private folder for copies, making it on first use.
func (s *sqliteState) tempDir() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tmp != "" {
		return s.tmp, nil
	}
	d, err := os.MkdirTemp("", "rewind-sqlite-")
	if err != nil {
		return "", fmt.Errorf("temporary folder for SQLite copies: %w", err)
	}
	s.tmp, s.ownTmp = d, true
	return d, nil
}

// cleanup removes the temporary folder the archiver made.
func (s *sqliteState) cleanup() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ownTmp {
		os.RemoveAll(s.tmp)
		s.tmp, s.ownTmp = "", false
	}
}

// captureSQLite stores a consistent copy of the database p (open as fd,
// whose lstat before the copy is st) into n; prev is its node in the
// parent snapshot. It returns errSQLiteRaw when
// SQLite cannot read the file, which is then read as bytes, and another
// error when the database cannot be captured now: it is not stored.
func (a *Archiver) captureSQLite(ctx context.Context, rd *fileReader, p string, n, prev *tree.Node, st *unix.Stat_t) error {
	wal := a.statWAL(p)
	dir, err := a.sq.tempDir()
	if err != nil {
		return err
	}
	at := time.Now()
	v, err := a.opt.SQLite.Capture(ctx, a.src(p), dir)
	if err != nil {
		if ctx.Err() != nil {
			return &repoError{ctx.Err()}
		}
		if a.opt.SQLite.Unreadable(err) {
			a.log.Warn("file has a SQLite header but SQLite cannot read it; stored as plain bytes", "path", p, "err", err)
			a.sq.mu.Lock()
			a.sq.raw = append(a.sq.raw, snapshot.FileError{Path: p, Error: err.Error()})
			a.sq.seen[p] = true
			a.sq.mu.Unlock()
			return errSQLiteRaw
		}
		// Locked past the timeout, or not readable by this user: its
		// bytes may be torn, so they are not stored.
		return fmt.Errorf("SQLite database not captured, so not stored: %w", err)
	}
	defer v.Close()
	rd.read = 0
	rd.chunks = rd.chunks[:0]
	built, drec, err := a.sqliteDelta(ctx, rd, p, n, prev, v)
	if err != nil {
		return fmt.Errorf("SQLite database: %w", err)
	}
	if !built && v.Size > 0 {
		rd.chunks = rd.chunks[:0]
		profile := repository.ProfileDefault
		if v.Size >= a.opt.LargeFile {
			profile = repository.ProfileSmall
		}
		got, err := rd.chunkRegion(ctx, a.repo.Chunker(profile), io.NewSectionReader(v.Data, 0, v.Size), v.Size)
		if err != nil {
			return fmt.Errorf("SQLite database: %w", err)
		}
		if got != v.Size {
			return fmt.Errorf("SQLite database: read %d bytes of %d", got, v.Size)
		}
	}
	if err := a.setContent(ctx, n, rd.chunks, v.Size); err != nil {
		return err
	}
	// The copy is consistent whatever the writers did meanwhile.
	n.Flags &^= tree.FlagInFlux | tree.FlagChanged
	rec := v.Record
	rec.Path, rec.CapturedAt, rec.Delta = p, at.UTC(), drec
	rec.Source = &snapshot.SQLiteSource{
		DB:  snapshot.SQLiteFileStat{Size: st.Size, MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano()},
		WAL: wal,
	}
	a.sq.mu.Lock()
	a.sq.captures = append(a.sq.captures, rec)
	a.sq.seen[p] = true
	a.sq.mu.Unlock()
	a.log.Info("SQLite database captured", "path", p, "mode", rec.Mode, "method", rec.Method, "size", v.Size, "took", time.Since(at))
	return nil
}

// sqliteDelta builds the content of the version v of the database p
// from the parent's version (node prev) and the ranges v.Delta names,
// when the parent captured the same file: built reports that it did, and
// the record says how, or why the version must be read whole (nil when
// the parent has no capture of it to start from).
func (a *Archiver) sqliteDelta(ctx context.Context, rd *fileReader, p string, n, prev *tree.Node, v SQLiteVersion) (built bool, rec *snapshot.SQLiteDelta, err error) {
	pc := a.sq.parent[p]
	if pc == nil || v.Delta == nil {
		return false, nil, nil
	}
	rec = &snapshot.SQLiteDelta{}
	switch {
	case prev == nil || prev.Type != tree.File || prev.Inode != n.Inode || prev.DeviceID != n.DeviceID:
		rec.Fallback = "database file replaced since the parent's capture"
	case int64(prev.Size) != pc.Pages*int64(pc.PageSize):
		rec.Fallback = "the parent's stored version is not the size its record says"
	default:
		ranges, why := v.Delta(pc)
		if why != "" {
			rec.Fallback = why
			break
		}
		pages := int64(len(ranges))
		ok, ds, err := a.buildDelta(ctx, rd, v.Data, prev, v.Size, ranges)
		if err != nil {
			return false, nil, err
		}
		if !ok {
			rec.Fallback = "the parent's stored version cannot be used"
			break
		}
		rec.Used, rec.ChangedPages, rec.BytesRead, rec.BytesReused = true, pages, ds.BytesRead, ds.BytesReused
		return true, rec, nil
	}
	a.log.Debug("SQLite database read whole", "path", p, "reason", rec.Fallback)
	return false, rec, nil
}

// finishSQLite puts the captures into sn: this run's, and the parent's
// whose copies the snapshot keeps. A partial walk does not visit most
// databases: the parent's record of each one it did not decide is kept
// when the new tree holds the same node as the parent's at its path.
func (a *Archiver) finishSQLite(ctx context.Context, sn *snapshot.Snapshot) {
	s := a.sq
	if s == nil {
		return
	}
	out := append(slices.Clone(s.captures), s.kept...)
	if a.part != nil && a.part.root != nil && a.opt.Parent != nil {
		for _, c := range a.opt.Parent.SQLite {
			if s.seen[c.Path] {
				continue
			}
			o, err := snapshot.Lookup(ctx, a.repo, a.opt.Parent, c.Path)
			if err != nil {
				continue
			}
			n, err := snapshot.Lookup(ctx, a.repo, sn, c.Path)
			if err != nil || n.Type != tree.File || n.Inode != o.Inode || n.CTime != o.CTime ||
				!slices.Equal(n.Content, o.Content) || !slices.Equal(n.ContentLists, o.ContentLists) {
				continue
			}
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(x, y snapshot.SQLiteCapture) int { return strings.Compare(x.Path, y.Path) })
	sn.SQLite = out
	sn.Summary.SQLiteCaptured = int64(len(s.captures))
}

// SQLiteCaptured returns how many databases this run captured (not those
// kept from the parent).
func (a *Archiver) SQLiteCaptured() int {
	if a.sq == nil {
		return 0
	}
	return len(a.sq.captures)
}

// SQLiteRawFiles returns the files with a SQLite header that SQLite could
// not read, stored as plain bytes.
func (a *Archiver) SQLiteRawFiles() []snapshot.FileError {
	if a.sq == nil {
		return nil
	}
	return a.sq.raw
}

// SQLiteSiblingsLeftOut returns how many -wal, -shm and -journal files of
// captured databases were left out.
func (a *Archiver) SQLiteSiblingsLeftOut() int64 {
	if a.sq == nil {
		return 0
	}
	a.sq.mu.Lock()
	defer a.sq.mu.Unlock()
	return a.sq.siblings
}

// sqliteSiblingDone waits for the database whose sibling job's file is:
// when it was captured, the sibling is left out. Otherwise the sibling is
// an ordinary file, kept from the parent when unchanged. done reports
// that nothing is left to do.
func (a *Archiver) sqliteSiblingDone(ctx context.Context, job *fileJob, n *tree.Node) (done bool, err error) {
	select {
	case <-job.sibOf.done:
	case <-ctx.Done():
		return true, ctx.Err()
	}
	switch {
	case job.sibOf.captured:
		a.st.totalFiles.Add(-1)
		a.st.totalBytes.Add(-int64(n.Size))
		a.prog.Done(1, int64(n.Size))
		n.Type = removed
		a.sq.mu.Lock()
		a.sq.siblings++
		a.sq.mu.Unlock()
		a.log.Debug("left out beside its captured SQLite database", "path", job.path)
		return true, nil
	case unchanged(job.prev, n) && a.contentIndexed(ctx, job.prev):
		a.keepFile(n, job.prev, job.path)
		return true, nil
	}
	return false, nil
}

// sqliteBasesOf returns the databases beside the changed -wal, -shm and
// -journal files of a partial backup: a commit in WAL mode writes only
// the -wal, and the database must be looked at again to be captured.
func sqliteBasesOf(opt Options) []string {
	if opt.SQLite == nil || opt.Changes == nil {
		return nil
	}
	var out []string
	for _, p := range opt.Changes.Paths {
		i := strings.LastIndexByte(p, '/')
		if b, ok := sqliteBase(p[i+1:]); ok {
			out = append(out, p[:i+1]+b)
		}
	}
	return out
}
