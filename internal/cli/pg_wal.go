package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pg"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// crashHookEnv names a test hook: wal-push kills itself with SIGKILL at
// the named point (see wal.PushOptions.Hook), for the crash tests.
const crashHookEnv = "REWIND_TEST_WAL_PUSH_CRASH"

// WALPushJSON is `pg wal-push --json` (docs/JSON.md).
type WALPushJSON struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Cluster    string `json:"cluster"`
	SystemID   string `json:"system_id"`
	Stored     bool   `json:"stored"`
	Size       int64  `json:"size"`
	BlobsAdded int    `json:"blobs_added"`
	ID         string `json:"id"`
	// IndexFile is the WAL index file written, "" when nothing was.
	IndexFile string `json:"index_file"`
	// Batch lists the other ready segments stored along (or skipped).
	Batch []WALBatchJSON `json:"batch"`
}

// WALBatchJSON is one segment of a wal-push batch besides PATH.
type WALBatchJSON struct {
	Name   string `json:"name"`
	Stored bool   `json:"stored"`
	Size   int64  `json:"size"`
	Error  string `json:"error,omitempty"`
}

// defaultWALBatch is how many segments one wal-push stores at most.
const defaultWALBatch = 8

func newPgWalPushCmd(g *globals) *cobra.Command {
	var cluster, pgdata string
	batch := defaultWALBatch
	cmd := &cobra.Command{
		Use:   "wal-push PATH",
		Short: "Store one WAL file in the repository (PostgreSQL's archive_command)",
		Long: `Store the WAL segment, timeline history (.history), backup history (.backup)
or .partial file at PATH in the repository, under the cluster name given by
--cluster ("main" if not given). It exits 0 only once the file is durably
stored: its packs, their index and the WAL index entry.

Pushing a file that is stored already with the same content succeeds and
stores nothing, so PostgreSQL may retry freely. A different file under a
stored name is refused (exit 1), never overwritten. A segment whose system
identifier (from its first page header) is not the one of the WAL stored
under the cluster name is refused and nothing is stored: another cluster's
archive_command points at the repository, and needs its own --cluster.

PostgreSQL runs it as the cluster's OS user (postgres), in the data
directory: the repository and the password file must be usable by that
user. Give the repository with --repo (or REWIND_REPOSITORY) and the
password with --password-file, never on the command line. In postgresql.conf:

  archive_mode = on
  archive_command = '/usr/bin/rewind pg wal-push --repo /backup/repo --password-file /etc/rewind/pg.password %p'

Batching: when PATH is a segment in pg_wal and needs storing, wal-push also
stores the segments PostgreSQL has ready to archive next
(pg_wal/archive_status/*.ready), up to --batch segments in all, in the same
packs and one WAL index file. PostgreSQL's later calls for those find them
stored and return at once. --batch 1 stores PATH alone. A batch is bounded:
it never waits for more segments, holds one segment in memory beyond PATH,
and a repository that cannot be reached fails the call at once, so that
PostgreSQL retries rather than waits (docs/POSTGRES.md, "archive_command
batching").`,
		Example: `  rewind pg wal-push --repo /backup/repo --password-file /etc/rewind/pg.password pg_wal/000000010000000000000003
  rewind pg wal-push --batch 16 --repo /backup/repo --password-file /etc/rewind/pg.password pg_wal/000000010000000000000003
  rewind pg wal-push --cluster db2 --pgdata /var/lib/postgresql/15/db2 00000002.history`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 1 {
				return fmt.Errorf("--batch %d: give 1 or more segments", batch)
			}
			return g.pgAccess(runWALPush(cmd.Context(), g, args[0], cluster, pgdata, batch))
		},
	}
	cmd.Flags().IntVar(&batch, "batch", defaultWALBatch, "store up to `N` segments in one run: PATH and the next ones PostgreSQL has ready (1: PATH alone)")
	cmd.Flags().StringVar(&cluster, "cluster", wal.DefaultCluster, "the `name` the cluster's WAL is stored under")
	cmd.Flags().StringVar(&pgdata, "pgdata", "", "the cluster's data `directory`, read for the system identifier of .history and .backup files (default: the working directory, as under archive_command)")
	return cmd
}

func runWALPush(ctx context.Context, g *globals, path, cluster, pgdata string, batch int) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "pg wal-push", true)
	if err != nil {
		return err
	}
	defer done()
	host, _ := os.Hostname()
	opt := wal.PushOptions{Cluster: cluster, PGData: pgdata, Host: host, Extra: readySegments(path, batch-1)}
	if point := os.Getenv(crashHookEnv); point != "" {
		opt.Hook = func(p string) {
			if p == point {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	res, err := wal.Push(ctx, r, path, opt)
	if err != nil {
		return err
	}
	if g.json {
		doc := WALPushJSON{Name: res.Entry.Name, Kind: string(res.Entry.Kind), Cluster: res.Cluster,
			SystemID: strconv.FormatUint(res.SystemID, 10), Stored: res.Stored, Size: res.Entry.Size,
			BlobsAdded: res.BlobsAdded, ID: res.Entry.ID.String(), Batch: []WALBatchJSON{}}
		if res.Stored {
			doc.IndexFile = res.IndexFile.String()
		}
		for _, x := range res.Extra {
			b := WALBatchJSON{Name: x.Name, Stored: x.Stored, Size: x.Size}
			if x.Err != nil {
				b.Error = x.Err.Error()
			}
			doc.Batch = append(doc.Batch, b)
		}
		return g.ui.JSONDoc(doc)
	}
	if res.Stored {
		g.ui.Printf("stored %s of cluster %q (%s, %s)\n", res.Entry.Name, res.Cluster, ui.Bytes(res.Entry.Size), ui.Count(int64(res.BlobsAdded), "new blob", "new blobs"))
		for _, x := range res.Extra {
			if x.Err != nil {
				g.ui.Warnf("not batched: %s: %v\n", x.Name, x.Err)
			} else {
				g.ui.Printf("stored %s too (ready next, %s)\n", x.Name, ui.Bytes(x.Size))
			}
		}
	} else {
		g.ui.Printf("%s of cluster %q is stored already with the same content; nothing to do\n", res.Entry.Name, res.Cluster)
	}
	return nil
}

// readySegments returns the paths of up to n segments other than path's
// that PostgreSQL has ready to archive (a .ready file in
// archive_status next to path), oldest first; none when path is not in a
// pg_wal folder or is not a segment.
func readySegments(path string, n int) []string {
	if n <= 0 {
		return nil
	}
	base := filepath.Base(path)
	if nm, err := wal.ParseName(base); err != nil || nm.Kind != wal.KindSegment {
		return nil
	}
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(filepath.Join(dir, "archive_status"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || name == base {
			continue
		}
		if nm, err := wal.ParseName(name); err == nil && nm.Kind == wal.KindSegment {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var out []string
	for _, name := range names[:min(n, len(names))] {
		out = append(out, filepath.Join(dir, name))
	}
	return out
}

// WALFetchJSON is `pg wal-fetch --json` (docs/JSON.md).
type WALFetchJSON struct {
	Name string `json:"name"`
	// Source is where the file came from: "repository" or "spool".
	Source     string `json:"source"`
	Size       int64  `json:"size"`
	Prefetched int    `json:"prefetched"`
	Spool      string `json:"spool,omitempty"`
}

func newPgWalFetchCmd(g *globals) *cobra.Command {
	var cluster, spool string
	prefetch := 8
	cmd := &cobra.Command{
		Use:   "wal-fetch NAME DEST",
		Short: "Write one stored WAL file to DEST (PostgreSQL's restore_command)",
		Long: `Read the WAL file NAME of the cluster (--cluster, "main" if not given) from
the repository, check it against its content hash, and write it to DEST
(through a temporary file renamed into place, so DEST is whole or absent).

When NAME is not stored it exits 1 and writes nothing: PostgreSQL takes
that as the end of the archive. Every other failure exits 1 too, with the
reason on stderr, which PostgreSQL writes to its log. As restore_command:

  restore_command = '/usr/bin/rewind pg wal-fetch --repo /backup/repo --password-file /etc/rewind/pg.password %f %p'

Prefetch: when NAME is a segment, the next --prefetch segments (default 8;
0 turns it off) of its timeline that are stored are read too, in
parallel, checked against their content hash and written to a spool
folder (--spool, default .rewind-prefetch beside DEST, in pg_wal): the
next calls find them there and serve them without opening the
repository. A spooled file is complete or absent (written under a
temporary name and renamed), carries the SHA-256 of its bytes in its name
and is checked against it before it is served (a damaged one is removed
and fetched from the repository); a served one stays until a later
segment is asked for (PostgreSQL may ask for a segment again), and stale
ones (before the segment asked for, or older than an hour) are removed by
the next call. pg restore --start removes the spool once recovery has
ended. A line on stderr (in the server's log) says where each file came
from and how many segments a fetch from the repository prefetched.

pg restore pre-spools (--prespool): it fills the spool with the segments
and history files recovery will need before the server starts, and
writes a marker naming the history files the repository held; a request
for a history file the marker does not list (PostgreSQL probes for newer
timelines) is answered "not stored" without opening the repository,
while the marker is less than an hour old (docs/POSTGRES.md, Pre-spool).`,
		Example: `  rewind pg wal-fetch --repo /backup/repo --password-file /etc/rewind/pg.password 000000010000000000000003 pg_wal/RECOVERYXLOG
  rewind pg wal-fetch --prefetch 16 --spool /var/spool/rewind/main %f %p
  rewind pg wal-fetch --prefetch 0 000000010000000000000003 /tmp/seg --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if prefetch < 0 || prefetch > 256 {
				return fmt.Errorf("--prefetch %d: give 0 (off) to 256 segments", prefetch)
			}
			return g.pgAccess(runWALFetch(cmd.Context(), g, args[0], args[1], cluster, prefetch, spool))
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", wal.DefaultCluster, "the `name` the cluster's WAL is stored under")
	cmd.Flags().IntVar(&prefetch, "prefetch", prefetch, "also fetch the next `count` segments into the spool, in parallel (0: off)")
	cmd.Flags().StringVar(&spool, "spool", "", "prefetch spool `folder` (default: "+wal.SpoolDirName+" beside DEST)")
	return cmd
}

func runWALFetch(ctx context.Context, g *globals, name, dest, cluster string, prefetch int, spoolDir string) error {
	n, err := wal.ParseName(name)
	if err != nil {
		return err
	}
	out := WALFetchJSON{Name: name, Source: "repository"}
	if spoolDir == "" {
		spoolDir = filepath.Join(filepath.Dir(dest), wal.SpoolDirName)
	}
	if n.Kind == wal.KindHistory {
		// A history file: pg restore's pre-spool may hold it, or know
		// from its marker that the repository did not (PostgreSQL probes
		// for newer timelines at the start and end of recovery). The
		// spool is only read here, never made.
		if fi, err := os.Stat(spoolDir); err == nil && fi.IsDir() {
			hs := &wal.Spool{Dir: spoolDir}
			hs.Clean(name, time.Now())
			if ok, err := hs.Copy(name, dest); err != nil {
				return err
			} else if ok {
				out.Source, out.Spool = "spool", spoolDir
				if fi, err := os.Stat(dest); err == nil {
					out.Size = fi.Size()
				}
				g.ui.Infof("rewind pg wal-fetch: %s%s\n", name, pg.FetchLineSpool)
				g.log.Info("WAL file fetched", "name", name, "dest", dest, "source", "spool")
				if g.json {
					g.ui.JSONLine(out)
				}
				return nil
			}
			if hs.HistoryKnownAbsent(cluster, name, time.Now()) {
				return fmt.Errorf("pg wal-fetch: %s of cluster %q%s %s, written when the restore began",
					name, cluster, pg.FetchLineNotStored, pg.FetchLineMarker)
			}
		}
	}
	var sp *wal.Spool
	if prefetch > 0 && n.Kind == wal.KindSegment {
		if sp, err = wal.OpenSpool(spoolDir); err != nil {
			g.ui.Warnf("warning: %v; fetching without prefetch\n", err)
			sp = nil
		} else {
			out.Spool = spoolDir
			sp.Clean(name, time.Now())
			// Served from the spool: no repository opened.
			if ok, err := sp.Take(name, dest); err != nil {
				return err
			} else if ok {
				out.Source = "spool"
				if fi, err := os.Stat(dest); err == nil {
					out.Size = fi.Size()
				}
				g.ui.Infof("rewind pg wal-fetch: %s%s\n", name, pg.FetchLineSpool)
				g.log.Info("WAL file fetched", "name", name, "dest", dest, "source", "spool")
				if g.json {
					g.ui.JSONLine(out)
				}
				return nil
			}
		}
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "pg wal-fetch", true)
	if err != nil {
		return err
	}
	defer done()
	cat, err := wal.Load(ctx, r)
	if err != nil {
		return err
	}
	cl := cat.Cluster(cluster)
	if cl == nil {
		return fmt.Errorf("no WAL of cluster %q is stored (clusters: %v)", cluster, cat.Names())
	}
	e, padTo := cl.ForFetch(name)
	if e == nil {
		return fmt.Errorf("pg wal-fetch: %s of cluster %q%s", name, cluster, pg.FetchLineNotStored)
	}
	data, err := wal.Read(ctx, r, &e.Entry)
	if err != nil {
		return err
	}
	if int64(len(data)) < padTo {
		// Only a partial of the segment is stored (pg receive): its
		// records, then zeros where recovery stops.
		data = append(data, make([]byte, padTo-int64(len(data)))...)
	}
	if err := wal.WriteFile(dest, data); err != nil {
		return err
	}
	out.Size = int64(len(data))
	if sp != nil && e.Kind == wal.KindSegment {
		out.Prefetched = prefetchWAL(ctx, g, r, cl, sp, &e.Entry, prefetch)
		g.ui.Infof("rewind pg wal-fetch: %s%s; prefetched %s into %s\n",
			name, pg.FetchLineRepository, ui.Count(int64(out.Prefetched), "segment", "segments"), spoolDir)
	} else {
		g.ui.Infof("rewind pg wal-fetch: %s%s\n", name, pg.FetchLineRepository)
	}
	g.log.Info("WAL file fetched", "name", name, "dest", dest, "bytes", len(data), "source", "repository", "prefetched", out.Prefetched)
	if g.json {
		g.ui.JSONLine(out)
	}
	return nil
}

// lookupWAL finds a stored file by name for the prefetch (which takes
// whole segments only; the fetch itself also serves a partial segment,
// through Cluster.ForFetch).
func lookupWAL(cl *wal.Cluster, name string) *wal.StoredEntry {
	return cl.Find(name)
}

// prefetchWAL reads the up to k segments after e on its timeline that
// are stored as whole segments and not spooled yet, at most 4 at a time,
// each checked against its content hash, into the spool. A segment that
// cannot be read is left to the fetch that needs it (which then fails
// with the reason). It returns how many it spooled.
func prefetchWAL(ctx context.Context, g *globals, r *repository.Repository, cl *wal.Cluster, sp *wal.Spool, e *wal.Entry, k int) int {
	var todo []*wal.StoredEntry
	for i := 1; i <= k; i++ {
		next := wal.SegmentName(e.Timeline, e.SegNo+uint64(i), e.SegSize)
		ne := lookupWAL(cl, next)
		if ne == nil || ne.Kind != wal.KindSegment {
			break // the end of what is stored (or a partial segment, which may still grow)
		}
		if !sp.Has(next) {
			todo = append(todo, ne)
		}
	}
	var wg sync.WaitGroup
	var done atomic.Int64
	sem := make(chan struct{}, 4)
	for _, ne := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			data, err := wal.Read(ctx, r, &ne.Entry)
			if err == nil {
				err = sp.Put(ne.Name, data)
			}
			if err != nil {
				g.log.Warn("prefetch", "name", ne.Name, "err", err)
				return
			}
			done.Add(1)
		}()
	}
	wg.Wait()
	return int(done.Load())
}

// pgAccess adds to a permission error that the PostgreSQL commands run as
// the cluster's OS user, who needs the repository and password file: it
// names the path refused, its owner and mode, and what to run.
func (g *globals) pgAccess(err error) error {
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return fmt.Errorf("%w\n%s", err, accessHint(err, g.repo, g.passwordFile))
}

// accessHint explains a permission error on a repository or password file
// and says how to share them with the user running rewind.
func accessHint(err error, repo, pwFile string) string {
	who, group := strconv.Itoa(os.Geteuid()), strconv.Itoa(os.Getegid())
	if u, uerr := user.Current(); uerr == nil {
		who = u.Username + " (uid " + u.Uid + ")"
		if gr, gerr := user.LookupGroupId(u.Gid); gerr == nil {
			group = gr.Name
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rewind runs as OS user %s here; under archive_command or restore_command that is the cluster's user (postgres).", who)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if desc := describePath(pe.Path); desc != "" {
			fmt.Fprintf(&b, " %s.", desc)
		}
	}
	if repo == "" {
		repo = "REPO"
	}
	fmt.Fprintf(&b, " To share the repository with group %s, run as root or its owner: `rewind chmod --repo %s --group-access --group %s`"+
		" (or by hand: chgrp -R %s %s && chmod -R g+rX %s && find %s -type d -exec chmod g+ws {} +)", group, repo, group, group, repo, repo, repo)
	if pwFile == "" {
		pwFile = "PASSWORD-FILE"
	}
	fmt.Fprintf(&b, ", and let it read the password file: chgrp %s %s && chmod 0440 %s. See docs/POSTGRES.md, \"Running as the postgres user\".", group, pwFile, pwFile)
	return b.String()
}

// describePath says who owns path (or the nearest existing folder above
// it, for a file that could not be made) and its mode; "" if unknown.
func describePath(path string) string {
	for p := path; p != "" && p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return ""
		}
		owner := strconv.FormatUint(uint64(st.Uid), 10)
		if u, err := user.LookupId(owner); err == nil {
			owner = u.Username
		}
		grp := strconv.FormatUint(uint64(st.Gid), 10)
		if g, err := user.LookupGroupId(grp); err == nil {
			grp = g.Name
		}
		return fmt.Sprintf("%s is owned by %s:%s with mode %04o", p, owner, grp, uint32(fi.Mode().Perm())|modeExtra(fi.Mode()))
	}
	return ""
}

// modeExtra returns the set-group-ID and sticky bits of m as octal bits.
func modeExtra(m fs.FileMode) uint32 {
	var x uint32
	if m&fs.ModeSetgid != 0 {
		x |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		x |= 0o1000
	}
	return x
}

// WALListJSON is `pg wal-list --json` (docs/JSON.md).
type WALListJSON struct {
	Clusters []WALClusterJSON `json:"clusters"`
}

// WALClusterJSON is one cluster in WALListJSON.
type WALClusterJSON struct {
	Name        string         `json:"name"`
	SystemID    string         `json:"system_id"`
	SegmentSize uint32         `json:"segment_size"`
	Ranges      []WALRangeJSON `json:"ranges"`
	Files       []WALFileJSON  `json:"files"`
}

// WALRangeJSON is a run of consecutive segments of one timeline.
type WALRangeJSON struct {
	Timeline uint32    `json:"timeline"`
	First    string    `json:"first"`
	Last     string    `json:"last"`
	StartLSN string    `json:"start_lsn"`
	EndLSN   string    `json:"end_lsn"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Segments int       `json:"segments"`
}

// WALFileJSON is one stored WAL file.
type WALFileJSON struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	Timeline uint32    `json:"timeline"`
	Size     int64     `json:"size"`
	ID       string    `json:"id"`
	Archived time.Time `json:"archived"`
}

func newPgWalListCmd(g *globals) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "wal-list",
		Short: "List the WAL stored in the repository",
		Long: `List the WAL files stored by wal-push, per cluster name: the runs of
consecutive segments of each timeline (what a restore can replay, with the
gaps between runs), then every file. --cluster shows one cluster.`,
		Example: `  rewind pg wal-list
  rewind pg wal-list --cluster main --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			g.ui.Listing = true
			return g.pgAccess(runWALList(cmd.Context(), g, cluster))
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "show only the cluster stored under this `name`")
	return cmd
}

func runWALList(ctx context.Context, g *globals, only string) error {
	r, done, err := g.openLocked(ctx, lock.Shared, "pg wal-list", false)
	if err != nil {
		return err
	}
	defer done()
	cat, err := wal.Load(ctx, r)
	if err != nil {
		return err
	}
	for _, u := range cat.Unreadable {
		g.ui.Warnf("warning: WAL index file wal/%s cannot be read: %v\n", u.File, u.Err)
	}
	for _, c := range cat.Conflicts {
		g.ui.Warnf("warning: wal/%s: %s\n", c.File, c.What)
	}
	out := WALListJSON{Clusters: []WALClusterJSON{}}
	for _, name := range cat.Names() {
		if only != "" && name != only {
			continue
		}
		cl := cat.Cluster(name)
		cj := WALClusterJSON{Name: name, SystemID: strconv.FormatUint(cl.SystemID, 10), SegmentSize: cl.SegSize(), Ranges: []WALRangeJSON{}, Files: []WALFileJSON{}}
		for _, rg := range cl.Ranges() {
			cj.Ranges = append(cj.Ranges, WALRangeJSON{Timeline: rg.Timeline, First: rg.First, Last: rg.Last,
				StartLSN: rg.Start.String(), EndLSN: rg.End.String(), From: rg.From, To: rg.To, Segments: rg.Segments})
		}
		for _, e := range cl.Entries() {
			cj.Files = append(cj.Files, WALFileJSON{Name: e.Name, Kind: string(e.Kind), Timeline: e.Timeline, Size: e.Size, ID: e.ID.String(), Archived: e.Archived})
		}
		out.Clusters = append(out.Clusters, cj)
	}
	if only != "" && len(out.Clusters) == 0 {
		return fmt.Errorf("no WAL of cluster %q is stored (clusters: %v)", only, cat.Names())
	}
	if g.json {
		return g.ui.JSONDoc(out)
	}
	if len(out.Clusters) == 0 {
		g.ui.Infof("no WAL stored (rewind pg wal-push stores it, as archive_command)\n")
	}
	for i, cj := range out.Clusters {
		if i > 0 {
			g.ui.Printf("\n")
		}
		g.ui.Printf("cluster %q, system identifier %s, %s\n", cj.Name, cj.SystemID, ui.Count(int64(len(cj.Files)), "file", "files"))
		for _, rg := range cj.Ranges {
			g.ui.Printf("  timeline %d: %s .. %s (%s to %s, %d segments, archived %s to %s)\n", rg.Timeline, rg.First, rg.Last,
				rg.StartLSN, rg.EndLSN, rg.Segments, rg.From.Local().Format(timeFormat), rg.To.Local().Format(timeFormat))
		}
		t := ui.NewTable("Name", "Kind", "Size", "Archived").Right(2)
		for _, f := range cj.Files {
			t.Row(f.Name, f.Kind, strconv.FormatInt(f.Size, 10), f.Archived.Local().Format(timeFormat))
		}
		g.ui.Table(t)
	}
	return nil
}
