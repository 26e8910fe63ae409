package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/ui"
)

type mysqlBackupOpts struct {
	conn        mysqlConnFlags
	logical     bool
	tags        []string
	hostname    string
	mariabackup string
	force       bool
}

func newMysqlBackupCmd(g *globals) *cobra.Command {
	o := &mysqlBackupOpts{}
	cmd := &cobra.Command{
		Use:   "backup [--logical] [connection flags]",
		Short: "Take a hot backup of a MariaDB server: physical (mariabackup) or logical (mariadb-dump)",
		Long: `Take a hot physical backup of a running MariaDB server into a new snapshot:
mariabackup --backup --stream=xbstream runs here, and its output is read as it
comes, each file stored at its place under the server's data directory
(nothing but mariabackup's own small files is written to disk, and no copy
of the data). Every chunk's checksum is checked; damage in the stream, or
mariabackup failing, saves no snapshot. Files are cut into small
content-defined chunks, so that a second backup of a server that changed
little adds little. Run it on the server's machine, as root or as a user
that may run mariabackup (it reads the data directory); Debian's package is
mariadb-backup.

The snapshot is tagged mysql, has the data directory as its path, and
records the server (version, server_id, datadir, the datadir's owner) and
the consistent point: the binlog file, position and GTID
(rewind snapshots --json shows them under "mysql"). A server without a
binary log is backed up all the same, with no position recorded: such a
backup restores to its own moment only. The snapshot holds the backup as
mariabackup made it, not yet prepared; rewind mysql restore prepares it.

With --logical the backup is mariadb-dump --single-transaction of every
database (with routines, events and triggers), stored as one file,
/mysql/dump.sql, of the snapshot, for small databases and moves between
versions; the binlog position and GTID of the dump's transaction are read
from its comments. A logical backup works over TCP from another machine.

The server is reached as the mariadb client reaches it: --socket,
--host/--port, --user, and the password from --mysql-password-file or an option
file (--defaults-file, else the client's own files); the password goes to
mariabackup and mariadb-dump in their environment, never on a command line.
A refused login or a server that is not running stops the command with exit
status 1 before the repository is touched (status 12 is the repository's
password). docs/MYSQL.md explains the setup.`,
		Example: `  rewind mysql backup
  rewind mysql backup --user backup --mysql-password-file /etc/rewind/mysql.pw --tag nightly
  rewind mysql backup --defaults-file /etc/mysql/debian.cnf
  rewind mysql backup --logical --host db2.example.com --user backup --mysql-password-file /etc/rewind/mysql.pw
  rewind mysql backup --mariabackup /opt/mariadb/bin/mariabackup --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMysqlBackup(cmd, g, o) },
	}
	f := cmd.Flags()
	o.conn.register(f)
	f.BoolVar(&o.logical, "logical", false, "take a logical backup with mariadb-dump --single-transaction instead of a physical one")
	f.StringArrayVar(&o.tags, "tag", nil, "add a `tag` to the snapshot besides mysql (repeatable)")
	f.StringVar(&o.hostname, "hostname", "", "record this `hostname` instead of the machine's")
	f.StringVar(&o.mariabackup, "mariabackup", "", "the mariabackup program's `path` (default: mariabackup in PATH)")
	f.BoolVar(&o.force, "force", false, "do not compare with the previous backup (its files are all counted new; the data still deduplicates)")
	return cmd
}

func runMysqlBackup(cmd *cobra.Command, g *globals, o *mysqlBackupOpts) error {
	ctx := cmd.Context()
	conn, err := o.conn.resolve()
	if err != nil {
		return err
	}
	if o.logical && o.mariabackup != "" {
		return fmt.Errorf("--mariabackup goes with a physical backup, not --logical")
	}
	bopt := mysql.BackupOptions{Conn: conn, MariaBackup: o.mariabackup, Logger: g.log}
	// The server is checked before the repository is opened or created:
	// a refused login stores nothing.
	p, err := mysql.PrepareBackup(ctx, bopt, o.logical)
	if err != nil {
		return err
	}
	r, lk, done, err := g.openForBackup(ctx, "mysql backup", false)
	if err != nil {
		return err
	}
	defer done()
	host := o.hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	path := p.Server.DataDir
	if o.logical {
		path = mysql.DumpPath
	}
	parent, _, err := findParent(cmd, g, r, "", host, []string{path})
	if err != nil {
		return err
	}
	if o.force {
		parent = nil
	}
	counter := &ui.Counter{}
	counter.Scanning.Store(true)
	bopt.Archiver = archiver.Options{Hostname: host, Tags: o.tags, Parent: parent, Logger: g.log,
		ProgramVersion: "rewind " + Version, Progress: &backupProgress{g: g, c: counter},
		BeforeCommit: lockedCommit(lk)}
	prog := g.ui.StartProgress("mysql backup", counter)
	var res *mysql.BackupResult
	if o.logical {
		res, err = mysql.LogicalBackup(ctx, r, p, bopt)
	} else {
		res, err = mysql.Backup(ctx, r, p, bopt)
	}
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
		m := sn.MySQL
		g.ui.Printf("Server %s, server_id %d: %s backup with %s\n", m.ServerVersion, m.ServerID, m.Method, m.Tool)
		if m.BinlogFile != "" {
			g.ui.Printf("Consistent point: binlog %s at %d, GTID %s\n", m.BinlogFile, m.BinlogPos, m.GTID)
		} else {
			g.ui.Printf("The server has no binary log: no binlog position recorded; this backup restores to its own moment only\n")
		}
	}
	return nil
}
