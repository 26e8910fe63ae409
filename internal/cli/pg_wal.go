package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pg/wal"
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
}

func newPgWalPushCmd(g *globals) *cobra.Command {
	var cluster, pgdata string
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
  archive_command = '/usr/bin/rewind pg wal-push --repo /backup/repo --password-file /etc/rewind/pg.password %p'`,
		Example: `  rewind pg wal-push --repo /backup/repo --password-file /etc/rewind/pg.password pg_wal/000000010000000000000003
  rewind pg wal-push --cluster db2 --pgdata /var/lib/postgresql/15/db2 00000002.history`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return pgAccess(runWALPush(cmd.Context(), g, args[0], cluster, pgdata))
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", wal.DefaultCluster, "the `name` the cluster's WAL is stored under")
	cmd.Flags().StringVar(&pgdata, "pgdata", "", "the cluster's data `directory`, read for the system identifier of .history and .backup files (default: the working directory, as under archive_command)")
	return cmd
}

func runWALPush(ctx context.Context, g *globals, path, cluster, pgdata string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "pg wal-push", true)
	if err != nil {
		return err
	}
	defer done()
	host, _ := os.Hostname()
	opt := wal.PushOptions{Cluster: cluster, PGData: pgdata, Host: host}
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
		return g.ui.JSONDoc(WALPushJSON{Name: res.Entry.Name, Kind: string(res.Entry.Kind), Cluster: res.Cluster,
			SystemID: strconv.FormatUint(res.SystemID, 10), Stored: res.Stored, Size: res.Entry.Size,
			BlobsAdded: res.BlobsAdded, ID: res.Entry.ID.String()})
	}
	if res.Stored {
		g.ui.Printf("stored %s of cluster %q (%s, %s)\n", res.Entry.Name, res.Cluster, ui.Bytes(res.Entry.Size), ui.Count(int64(res.BlobsAdded), "new blob", "new blobs"))
	} else {
		g.ui.Printf("%s of cluster %q is stored already with the same content; nothing to do\n", res.Entry.Name, res.Cluster)
	}
	return nil
}

func newPgWalFetchCmd(g *globals) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "wal-fetch NAME DEST",
		Short: "Write one stored WAL file to DEST (PostgreSQL's restore_command)",
		Long: `Read the WAL file NAME of the cluster (--cluster, "main" if not given) from
the repository, check it against its content hash, and write it to DEST
(through a temporary file renamed into place, so DEST is whole or absent).

When NAME is not stored it exits 1 and writes nothing: PostgreSQL takes
that as the end of the archive. Every other failure exits 1 too, with the
reason on stderr, which PostgreSQL writes to its log. As restore_command:

  restore_command = '/usr/bin/rewind pg wal-fetch --repo /backup/repo --password-file /etc/rewind/pg.password %f %p'`,
		Example: `  rewind pg wal-fetch --repo /backup/repo --password-file /etc/rewind/pg.password 000000010000000000000003 pg_wal/RECOVERYXLOG`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return pgAccess(runWALFetch(cmd.Context(), g, args[0], args[1], cluster))
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", wal.DefaultCluster, "the `name` the cluster's WAL is stored under")
	return cmd
}

func runWALFetch(ctx context.Context, g *globals, name, dest, cluster string) error {
	if _, err := wal.ParseName(name); err != nil {
		return err
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
		return fmt.Errorf("%s of cluster %q is not stored", name, cluster)
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
	g.log.Info("WAL file fetched", "name", name, "dest", dest, "bytes", len(data))
	return nil
}

// pgAccess adds to a permission error that the PostgreSQL commands run as
// the cluster's OS user, who needs the repository and password file.
func pgAccess(err error) error {
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	who := strconv.Itoa(os.Geteuid())
	if u, uerr := user.Current(); uerr == nil {
		who = u.Username + " (uid " + u.Uid + ")"
	}
	return fmt.Errorf("%w\nrewind runs as OS user %s here; under archive_command or restore_command that is the cluster's user (postgres): give it read and write access to the repository and read access to its password file (e.g. chown -R postgres: REPO PASSWORD-FILE)", err, who)
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
			return pgAccess(runWALList(cmd.Context(), g, cluster))
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
