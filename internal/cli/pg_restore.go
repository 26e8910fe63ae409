package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pg"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

type pgRestoreOpts struct {
	target, owner, socketDir, binDir string
	hosts                            []string
	latest, start                    bool
	port                             int
}

func newPgRestoreCmd(g *globals) *cobra.Command {
	o := &pgRestoreOpts{}
	cmd := &cobra.Command{
		Use:   "restore {SNAPSHOT | --latest} --target DIR [--start [--port N] [--socket-dir DIR]]",
		Short: "Restore a PostgreSQL base backup into a new data directory",
		Long: `Restore a base backup made by rewind pg backup into --target, a new or empty
folder, as a data directory ready to start: mode 0700, owned by the cluster's
OS user (--owner, default postgres when run as root), with backup_label and
the WAL the backup holds in pg_wal.

When started, the server replays that WAL from the backup's start (as a copy
made with pg_basebackup -X fetch does) and opens on the backup's timeline,
with every transaction committed before the backup stopped. --port and
--socket-dir are written to postgresql.auto.conf, so that the restored
cluster can run beside the original; with --start, pg_ctl start -w runs as
the owner and rewind waits until the server accepts connections (its log:
rewind-start.log in the data directory).

SNAPSHOT is an ID or unique prefix of a base backup; --latest picks the
newest base backup (of --host, when given). Restoring to a point in time
(--at, --lsn, --name, --xid) needs the WAL archive and is not available yet.`,
		Example: `  rewind pg restore --latest --target /var/lib/postgresql/15/restored
  rewind pg restore 4f2a91c3 --target /srv/pg/copy --start --port 5433 --socket-dir /tmp
  rewind pg restore --latest --host db1 --target /srv/pg/db1 --owner postgres`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runPgRestore(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "", "new data `directory` (absent or empty)")
	f.BoolVar(&o.latest, "latest", false, "restore the newest base backup")
	f.StringArrayVarP(&o.hosts, "host", "H", nil, "with --latest: only base backups of this `host` (repeatable)")
	f.StringVar(&o.owner, "owner", "", "OS `user` that owns the restored cluster and runs it (default: postgres as root, else yourself)")
	f.BoolVar(&o.start, "start", false, "start the restored cluster (pg_ctl start -w) and wait until it accepts connections")
	f.IntVar(&o.port, "port", 0, "`port` the restored cluster listens on (written to postgresql.auto.conf)")
	f.StringVar(&o.socketDir, "socket-dir", "", "unix socket `directory` of the restored cluster (written to postgresql.auto.conf)")
	f.StringVar(&o.binDir, "pg-bindir", "", "`dir` of the PostgreSQL programs (pg_ctl); default /usr/lib/postgresql/MAJOR/bin, then PATH")
	return cmd
}

func runPgRestore(cmd *cobra.Command, g *globals, o *pgRestoreOpts, args []string) error {
	ctx := cmd.Context()
	if o.target == "" {
		return errors.New("--target is required: the new data directory")
	}
	if (len(args) == 1) == o.latest {
		return errors.New("name the base backup: a SNAPSHOT, or --latest")
	}
	if err := pg.CheckTarget(o.target); err != nil {
		return err
	}
	uid, gid, err := restoreOwner(o.owner)
	if err != nil {
		return err
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "pg restore", true)
	if err != nil {
		return err
	}
	defer done()
	sn, err := findBaseBackup(ctx, g, r, args, o)
	if err != nil {
		return err
	}
	c := &ui.Counter{}
	prog := g.ui.StartProgress("restore", c)
	res, err := pg.RestoreBase(ctx, r, sn, pg.RestoreOptions{Target: o.target, UID: uid, GID: gid, Port: o.port,
		SocketDir: o.socketDir, Start: o.start, BinDir: o.binDir, Logger: g.log, Progress: countInto(c)})
	prog.Stop()
	if res != nil && res.Stats != nil {
		printRestoreSummary(g, sn, "", res.Stats)
	}
	if err != nil {
		return err
	}
	if !g.json && !g.quiet {
		p := sn.Postgres
		g.ui.Printf("base backup %s of PostgreSQL %s (system %s) restored into %s: WAL to %s on timeline %d\n",
			sn.ID.Short(), p.VersionText, p.SystemID, o.target, p.StopLSN, p.Timeline)
		if o.start {
			g.ui.Printf("the restored cluster is running and accepts connections (log: %s)\n", res.Log)
		}
	}
	return nil
}

// findBaseBackup resolves the SNAPSHOT argument or --latest to a base
// backup.
func findBaseBackup(ctx context.Context, g *globals, r *repository.Repository, args []string, o *pgRestoreOpts) (*snapshot.Snapshot, error) {
	if len(args) == 1 {
		sn, err := snapshot.Find(ctx, r, args[0], snapshot.Filter{})
		if err != nil {
			return nil, err
		}
		if sn.Postgres == nil {
			return nil, fmt.Errorf("snapshot %s: %w (made by rewind pg backup); restore its files with rewind restore", sn.ID.Short(), pg.ErrNotBaseBackup)
		}
		return sn, nil
	}
	sns, err := g.listSnapshots(ctx, r)
	if err != nil {
		return nil, err
	}
	f := snapshot.Filter{Hosts: o.hosts}
	for i := len(sns) - 1; i >= 0; i-- {
		if sns[i].Postgres != nil && f.Match(sns[i]) {
			return sns[i], nil
		}
	}
	return nil, fmt.Errorf("%w: the repository has no PostgreSQL base backup%s; take one with rewind pg backup", snapshot.ErrNotFound, hostsNote(o.hosts))
}

func hostsNote(hosts []string) string {
	if len(hosts) == 0 {
		return ""
	}
	return fmt.Sprintf(" of host %v", hosts)
}

// restoreOwner resolves --owner to the uid and gid the restored files
// get; -1 when the files stay the current user's.
func restoreOwner(name string) (int, int, error) {
	if os.Geteuid() != 0 {
		if name == "" {
			return -1, -1, nil
		}
		if u, err := user.Current(); err == nil && u.Username == name {
			return -1, -1, nil
		}
		return 0, 0, fmt.Errorf("--owner %s: only root can restore a cluster for another user; run as %s or as root", name, name)
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("--owner %s: %w; give the OS user that runs the cluster", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return 0, 0, errors.New("--owner root: PostgreSQL refuses to run as root; give the cluster's OS user (postgres)")
	}
	return uid, gid, nil
}
