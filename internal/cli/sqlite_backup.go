package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/sqlite"
	"github.com/rewind-backup/rewind/internal/ui"
)

type sqliteBackupOpts struct {
	tags    []string
	host    string
	timeout time.Duration
	check   string
	tempDir string
}

func newSqliteBackupCmd(g *globals) *cobra.Command {
	o := &sqliteBackupOpts{}
	cmd := &cobra.Command{
		Use:   "backup [flags] DB...",
		Short: "Take consistent copies of live SQLite databases into one snapshot",
		Long: `Copy each live SQLite database (WAL or rollback-journal mode) with SQLite's
online backup API and store the copies in one new snapshot, each as the
database file at its own absolute path with the database's mode, owner and
times. restore, dump, versions and --at then work on it as on any file; a
restored file is a whole database, with no -wal or -journal to go with it.

The copy is taken in one read transaction on the database, opened read-only:
it holds exactly the transactions committed before it began. A WAL database's
writers go on meanwhile; a rollback-journal database's writers wait for the
copy (it holds a shared lock), as they wait for any reader. Nothing is
written to the database, its journal mode is not changed and its WAL is not
checkpointed. A database locked by a writer is retried until --timeout.
Each copy must pass PRAGMA quick_check (--check integrity for the full
integrity_check) before it is stored; the copies are made one at a time in
--temp-dir and removed once stored.

The snapshot is tagged sqlite and records each capture (journal mode, page
size, pages, when it was taken) under "sqlite" in rewind snapshots --json.

A database that cannot be captured (not a database or encrypted, damaged,
a -wal given without its database, missing, unreadable, locked past
--timeout) is named with what to do, and the others are stored: the exit
status is then 3. When none can be captured nothing is stored and the exit
status is 1.`,
		Example: `  rewind sqlite backup /srv/app/db.sqlite3
  rewind sqlite backup --tag hourly /var/lib/grafana/grafana.db /srv/app/db.sqlite3
  rewind sqlite backup --timeout 2m --check integrity /srv/app/db.sqlite3
  rewind sqlite backup --json --temp-dir /var/tmp /srv/app/db.sqlite3`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runSqliteBackup(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.tags, "tag", nil, "add a `tag` to the snapshot besides sqlite (repeatable)")
	f.StringVar(&o.host, "host", "", "record this `hostname` instead of the machine's")
	f.DurationVar(&o.timeout, "timeout", sqlite.DefaultTimeout, "how long to retry a database a writer keeps locked")
	f.StringVar(&o.check, "check", "quick", "check each copy before storing it: `quick` (PRAGMA quick_check), integrity (integrity_check) or none")
	f.StringVar(&o.tempDir, "temp-dir", "", "`dir` the copies are made in (default: a private folder in $TMPDIR)")
	return cmd
}

func runSqliteBackup(cmd *cobra.Command, g *globals, o *sqliteBackupOpts, args []string) error {
	ctx := cmd.Context()
	copt := sqlite.Options{Timeout: o.timeout}
	switch o.check {
	case "quick":
	case "integrity":
		copt.Check = sqlite.CheckFull
	case "none":
		copt.Check = sqlite.CheckNone
	default:
		return fmt.Errorf("--check %q: give quick, integrity or none", o.check)
	}
	// The headers are read before the repository is opened (or created):
	// when no argument is a database, nothing is stored.
	var probeErrs []string
	for _, p := range args {
		if _, err := sqlite.Probe(p); err != nil {
			probeErrs = append(probeErrs, err.Error())
		}
	}
	if len(probeErrs) == len(args) {
		return errors.New(strings.Join(probeErrs, "\n"))
	}
	r, lk, done, err := g.openForBackup(ctx, "sqlite backup", false)
	if err != nil {
		return err
	}
	defer done()
	host := o.host
	if host == "" {
		host, _ = os.Hostname()
	}
	parent, _, err := findParent(cmd, g, r, "", host, args)
	if err != nil {
		return err
	}
	counter := &ui.Counter{}
	counter.Scanning.Store(true)
	bopt := sqlite.BackupOptions{Capture: copt, TempDir: o.tempDir, Archiver: archiver.Options{
		Hostname: host, Tags: o.tags, Parent: parent, Logger: g.log, ProgramVersion: "rewind " + Version,
		Progress:     &backupProgress{g: g, c: counter},
		BeforeCommit: lockedCommit(lk)}}
	prog := g.ui.StartProgress("sqlite backup", counter)
	res, err := sqlite.Backup(ctx, r, args, bopt)
	prog.Stop()
	if err != nil {
		if errors.Is(err, archiver.ErrNoFileCopied) {
			return errors.New(failedText(res.Failed))
		}
		return err
	}
	sn := res.Snapshot
	if err := g.extendAfterBackup(ctx, r, sn); err != nil {
		return err
	}
	if !g.json && !g.quiet {
		for _, c := range sn.SQLite {
			g.ui.Printf("%s: %s mode, %s of %s (%s), as of %s\n", c.Path, c.Mode, ui.Count(c.Pages, "page", "pages"),
				ui.Bytes(int64(c.PageSize)), ui.Bytes(c.Pages*int64(c.PageSize)), c.CapturedAt.Local().Format("2006-01-02 15:04:05.000"))
		}
	}
	printBackupSummary(g, sn, parent, res.Archiver)
	if len(res.Failed) > 0 {
		return withCode(ExitPartial, fmt.Errorf("snapshot %s saved, but %s could not be captured (listed above)", sn.ID.Short(),
			ui.Count(int64(len(res.Failed)), "database", "databases")))
	}
	return nil
}

// failedText names each database not captured and why, one a line.
func failedText(failed []sqlite.Failure) string {
	var lines []string
	for _, f := range failed {
		lines = append(lines, f.Err.Error())
	}
	return strings.Join(lines, "\n")
}
