package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/pg"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

type pgBackupOpts struct {
	dsn, pgdata, host, binDir string
	tags                      []string
	fast, waitArchive, force  bool
	amcheck, amcheckWarn      bool
	copy, stream              bool
	noWALDelta                bool
	manifestChecksums         string
}

// streamCorruptEnv names a test hook: a streamed base backup flips the
// first byte it receives of the file at this path (relative to the data
// directory), as a damaged transfer would, to check the manifest check.
const streamCorruptEnv = "REWIND_TEST_STREAM_CORRUPT"

func newPgBackupCmd(g *globals) *cobra.Command {
	o := &pgBackupOpts{}
	cmd := &cobra.Command{
		Use:   "backup [--dsn DSN] [--pgdata DIR] [--stream] [--amcheck]",
		Short: "Take an online base backup of a PostgreSQL cluster",
		Long: `Take a base backup of a running PostgreSQL server (10 or later; 15 is what
the tests run) into a new snapshot, on one session kept open: pg_backup_start,
the data directory read as any backup reads files (unchanged files are
reused from the previous base backup, and every file is cut into small
chunks so that a relation file with a few changed pages adds little),
pg_backup_stop, then backup_label (and tablespace_map) and the WAL from the
start to the stop of the backup, copied from pg_wal, are added to the
snapshot at their places in the data directory. The snapshot restores on
its own, without a WAL archive (rewind pg restore).

What PostgreSQL documents to leave out is left out: postmaster.pid,
postmaster.opts, the contents of pg_wal, pg_replslot, pg_dynshmem,
pg_notify, pg_serial, pg_snapshots, pg_stat_tmp and pg_subtrans, pgsql_tmp*
and pg_internal.init files.

The server is reached with --dsn (a libpq connection string or URL) or the
usual PG* environment variables, as a superuser (or a role with the
pg_read_all_settings role, EXECUTE on the backup functions and REPLICATION
for the temporary slot that keeps the backup's WAL). The data directory is
read at the path the server reports, or --pgdata; run rewind as the
cluster's OS user or root. A server with wal_level = minimal, a standby,
and a cluster with tablespaces are refused before anything is stored.

The snapshot is tagged postgres, has the data directory as its path, and
records the start and stop LSN, timeline, system identifier, version,
label and WAL files (rewind snapshots --json shows them under "postgres").

With --amcheck, pg_amcheck checks every database first (installing the
amcheck extension where missing) and its result is recorded; corruption
stops the backup with exit status 1 unless --amcheck-warn.

With --stream the backup is taken over the replication protocol instead
(BASE_BACKUP, PostgreSQL 15 or later), for a server on another machine or a
data directory this user cannot read: the server sends the data directory,
backup_label, tablespace_map, the WAL from start to stop and a backup
manifest as one stream, which goes straight into the repository (nothing is
written to disk here), every file cut as a local backup cuts it. Each file
is checked against the manifest's size and checksum as it arrives, and the
manifest is kept in the snapshot as backup_manifest; a difference fails the
backup and saves no snapshot. The role needs REPLICATION (or superuser) and
pg_hba.conf a "replication" line; the snapshot records the same metadata
("method": "stream") and restores with rewind pg restore as a local one
does. Its path is the server's data_directory when the role may read it,
else --pgdata, else /postgresql/SYSTEM-ID. Without --stream and --pgdata, a
data directory that cannot be read here makes pg backup stream by itself.

With --copy the backup is out of band, as a copy backup of other tools
does not truncate logs: it is recorded as a copy ("copy": true under
"postgres") and does not move the WAL retention window. prune removes
archived WAL only before the oldest retained base backup that is not a
copy (docs/POSTGRES.md, Retention).

WAL-delta: with a previous base backup of the same cluster and timeline,
the WAL from its start to this backup's start (from the repository, else
still in pg_wal) names the relation blocks that changed; of a relation file
that changed, only the chunks holding those blocks are read, the rest is
the previous backup's. A gap in that WAL (or another timeline, or a
database created or dropped) reads changed files whole, and the summary
says why. --no-wal-delta always reads changed files whole
(docs/POSTGRES.md, "Reading less: WAL-delta").`,
		Example: `  sudo -u postgres rewind pg backup
  rewind pg backup --dsn 'host=/run/postgresql user=postgres' --tag nightly
  PGHOST=db1 PGUSER=backup rewind pg backup --pgdata /srv/pg/15/main
  rewind pg backup --amcheck --fast
  rewind pg backup --copy --tag before-upgrade
  rewind pg backup --no-wal-delta
  rewind pg backup --stream --dsn 'host=db1.example.com user=replicator' --fast`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return g.pgAccess(runPgBackup(cmd, g, o)) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dsn, "dsn", "", "PostgreSQL connection `string` (libpq keywords or URL); default: the PG* environment variables")
	f.StringVar(&o.pgdata, "pgdata", "", "read the data directory at this `dir` instead of the server's data_directory")
	f.StringArrayVar(&o.tags, "tag", nil, "add a `tag` to the snapshot besides postgres (repeatable)")
	f.StringVar(&o.host, "host", "", "record this `hostname` instead of the machine's")
	f.BoolVar(&o.fast, "fast", false, "start with an immediate checkpoint instead of a spread one")
	f.BoolVar(&o.waitArchive, "wait-archive", false, "make pg_backup_stop wait until archive_command has archived the backup's WAL")
	f.BoolVar(&o.force, "force", false, "read every file, ignoring the previous base backup")
	f.BoolVar(&o.amcheck, "amcheck", false, "run pg_amcheck on every database first and record the result; corruption stops the backup")
	f.BoolVar(&o.amcheckWarn, "amcheck-warn", false, "with --amcheck: back up anyway when pg_amcheck finds corruption")
	f.BoolVar(&o.copy, "copy", false, "an out-of-band backup that does not move the WAL retention window")
	f.BoolVar(&o.noWALDelta, "no-wal-delta", false, "read changed relation files whole instead of only the blocks the WAL since the previous base backup names")
	f.BoolVar(&o.stream, "stream", false, "take the backup over the replication protocol (BASE_BACKUP), for a remote server or an unreadable data directory")
	f.StringVar(&o.manifestChecksums, "manifest-checksums", "CRC32C", "with --stream: the manifest's checksum `algorithm` each file is checked with (CRC32C, SHA224, SHA256, SHA384, SHA512)")
	f.StringVar(&o.binDir, "pg-bindir", "", "`dir` of the PostgreSQL programs (pg_amcheck); default /usr/lib/postgresql/MAJOR/bin, then PATH")
	return cmd
}

// shortID shortens a hex snapshot ID for display.
func shortID(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func runPgBackup(cmd *cobra.Command, g *globals, o *pgBackupOpts) error {
	ctx := cmd.Context()
	if o.amcheckWarn && !o.amcheck {
		return errors.New("--amcheck-warn goes with --amcheck")
	}
	popt := pg.BackupOptions{DSN: o.dsn, DataDir: o.pgdata, Fast: o.fast, WaitArchive: o.waitArchive,
		Amcheck: o.amcheck, AmcheckWarn: o.amcheckWarn, BinDir: o.binDir, Logger: g.log, Copy: o.copy, NoDelta: o.noWALDelta}
	if o.manifestChecksums != "CRC32C" && !o.stream {
		return errors.New("--manifest-checksums goes with --stream")
	}
	// The server is checked before the repository is opened or created:
	// a wrong DSN stores nothing.
	var (
		dataDir string
		take    func(*repository.Repository, pg.BackupOptions) (*pg.BackupResult, error)
	)
	stream := o.stream
	if !stream {
		conn, srv, dir, err := pg.Prepare(ctx, popt)
		switch {
		case errors.Is(err, pg.ErrDataDirUnreadable) && o.pgdata == "":
			g.log.Info("the data directory cannot be read here: taking a streamed base backup", "err", err)
			if !g.json && !g.quiet {
				g.ui.Printf("The data directory cannot be read here: taking the base backup over the replication protocol (--stream).\n")
			}
			stream = true
		case err != nil:
			return err
		default:
			defer conn.Close(context.WithoutCancel(ctx))
			dataDir = dir
			take = func(r *repository.Repository, popt pg.BackupOptions) (*pg.BackupResult, error) {
				return pg.BaseBackup(ctx, r, conn, srv, dataDir, popt)
			}
		}
	}
	if stream {
		rc, srv, root, err := pg.PrepareStream(ctx, popt)
		if err != nil {
			return err
		}
		defer rc.Close(context.WithoutCancel(ctx))
		dataDir = root
		sopt := pg.StreamOptions{Checksums: o.manifestChecksums}
		if bad := os.Getenv(streamCorruptEnv); bad != "" {
			done := false
			sopt.Corrupt = func(rel string, b []byte) {
				if rel == bad && !done && len(b) > 0 {
					b[0] ^= 0xff
					done = true
				}
			}
		}
		take = func(r *repository.Repository, popt pg.BackupOptions) (*pg.BackupResult, error) {
			return pg.StreamBackup(ctx, r, rc, srv, root, popt, sopt)
		}
	}
	r, lk, done, err := g.openForBackup(ctx, "pg backup", false)
	if err != nil {
		return err
	}
	defer done()
	host := o.host
	if host == "" {
		host, _ = os.Hostname()
	}
	parent, _, err := findParent(cmd, g, r, "", host, []string{dataDir})
	if err != nil {
		return err
	}
	if o.force {
		parent = nil
	}
	counter := &ui.Counter{}
	counter.Scanning.Store(true)
	popt.Archiver = archiver.Options{Hostname: host, Tags: o.tags, Parent: parent, Logger: g.log,
		ProgramVersion: "rewind " + Version, Progress: &backupProgress{g: g, c: counter},
		BeforeCommit: lockedCommit(lk)}
	prog := g.ui.StartProgress("pg backup", counter)
	res, err := take(r, popt)
	prog.Stop()
	if err != nil {
		return err
	}
	sn := res.Snapshot
	if err := g.extendAfterBackup(ctx, r, sn); err != nil {
		return err
	}
	printBackupSummary(g, sn, parent, res.Archiver)
	if !g.json && !g.quiet {
		p := sn.Postgres
		g.ui.Printf("PostgreSQL %s, system %s, timeline %d: WAL %s to %s (%s)\n", p.VersionText, p.SystemID, p.Timeline,
			p.StartLSN, p.StopLSN, ui.Count(int64(len(p.WALFiles)), "segment", "segments"))
		if d := p.Delta; d != nil && d.Used {
			g.ui.Printf("WAL-delta since %s (%s to %s): %s changed; read %s of %s, %s reused from the parent\n", shortID(d.Parent), d.FromLSN, d.ToLSN,
				ui.Count(d.ChangedBlocks, "block", "blocks"), ui.Bytes(d.BytesRead), ui.Count(d.Files, "relation file", "relation files"), ui.Bytes(d.BytesReused))
		} else if d != nil {
			g.ui.Printf("WAL-delta not used, changed relation files were read whole: %s\n", d.Fallback)
		}
		if p.Manifest {
			g.ui.Printf("Streamed with BASE_BACKUP: every file matched the backup manifest (kept as backup_manifest)\n")
		}
		if p.Amcheck != nil {
			state := "passed"
			if !p.Amcheck.OK {
				state = "FOUND CORRUPTION (recorded in the snapshot)"
			}
			g.ui.Printf("pg_amcheck: %s\n", state)
		}
	}
	if len(sn.Summary.Errors) > 0 {
		return withCode(ExitPartial, fmt.Errorf("snapshot %s saved, but %s could not be read (listed above): the base backup is incomplete", sn.ID.Short(), countErrors(sn.Summary.Errors)))
	}
	return nil
}
