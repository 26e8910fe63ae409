package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pg"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

type pgRestoreOpts struct {
	target, owner, socketDir, binDir string
	hosts                            []string
	latest, start, noArchive, delta  bool
	port                             int
	at, lsn, name, xid               string
	action, timeline, cluster        string
	table, dump                      string
	prespool                         int
	scratchOpts
}

func newPgRestoreCmd(g *globals) *cobra.Command {
	o := &pgRestoreOpts{}
	cmd := &cobra.Command{
		Use:   "restore {--at T | --lsn LSN | --name POINT | --xid XID | --latest | SNAPSHOT} {--target DIR [--start] [--delta] | --table SCHEMA.NAME --dump FILE}",
		Short: "Restore a PostgreSQL cluster into a new data directory, to any moment",
		Long: `Restore a PostgreSQL cluster from its base backups (rewind pg backup) and the
WAL archived in the repository (rewind pg wal-push) into --target, a new or
empty folder, as a data directory ready to start: mode 0700, owned by the
cluster's OS user (--owner, default postgres when run as root).

To a moment (point-in-time recovery):
  --at T          every transaction committed at or before T; T in rewind's
                  usual forms (RFC 3339, "2006-01-02 15:04:05" local time,
                  "-15m"); a time to the second covers that whole second
  --lsn LSN       the WAL up to LSN (as PostgreSQL writes it: 0/3000060)
  --name POINT    a restore point made with pg_create_restore_point
  --xid XID       up to and including transaction XID
  --latest        all the WAL the repository holds
The newest base backup of the cluster that ended before the target is
restored (for --name and --xid, which only recovery can place, the newest:
name an older one as SNAPSHOT when the target is before it), and the
recovery settings are written to postgresql.auto.conf with recovery.signal:
restore_command runs rewind pg wal-fetch with this rewind's full path, the
repository and the path of the password file (never the password: give
--password-file, a file the cluster's OS user can read), and the target,
recovery_target_inclusive = true, recovery_target_action (--action, default
promote) and recovery_target_timeline (--timeline, default latest). A
target before the end of the oldest base backup is refused, naming the
earliest moment that can be restored.

The base backups considered are those of this host (--host to choose
another) and of one cluster: the one whose WAL is stored under --cluster,
else the one of the newest base backup.

SNAPSHOT alone restores that base backup to its own end, without the WAL
archive: the server replays the WAL the backup holds and opens on its
timeline, with every transaction committed before the backup stopped.

--port and --socket-dir are written to postgresql.auto.conf, so that the
restored cluster can run beside the original (--no-archive also turns
archive_mode off, so that it does not archive into the original's WAL).
With --start, pg_ctl start runs as the owner and rewind waits until
recovery has ended (promoted, paused or shut down at the target, as
--action says); when the archived WAL ends before the target is reached,
PostgreSQL stops and rewind says so (exit 1). The server's log is
rewind-start.log in the data directory.

With --delta, --target is an existing data directory, stopped (refused
while its postmaster.pid names a live process): a file whose content
hashes to the backup's, chunk by chunk, is kept; a file that differs has
only the differing chunks written; what the backup does not list is
removed (newer WAL in pg_wal, postmaster.pid, recovery.signal, ...), and
the recovery settings are written as usual. The summary says how many
files were kept and rewritten.

With --table schema.name --dump FILE (and no --target), one table is
recovered: the cluster is restored into a scratch instance (a temporary
folder under --scratch, default TMPDIR) that listens on no TCP address,
only on a unix socket in a private folder, with its own hba file and
archive_mode off; it is promoted at the target, pg_dump -t writes the
table (of database --dbname, default postgres) into FILE, and the
instance is stopped and removed, also on failure or Ctrl-C. As root,
PostgreSQL and pg_dump run as the cluster's OS user. An unknown table is
refused naming the tables there.

Pre-spool: before the server starts, the WAL segments recovery will ask
for (from the base backup's start, along the timeline it follows, to just
past the target: up to --prespool segments, default 64; 0 turns it off)
and the stored history files are read from the repository, in parallel
with the restore of the files, checked and written into the spool that
rewind pg wal-fetch serves from (pg_wal/.rewind-prefetch), with a marker
saying which history files exist, so that PostgreSQL's probes for absent
ones are answered without opening the repository. What recovery needs
beyond them wal-fetch reads as usual. With --start the summary counts
what wal-fetch served from the spool and how often it opened the
repository. docs/POSTGRES.md explains more.`,
		Example: `  rewind pg restore --at '2026-03-14 09:59:00' --target /srv/pg/restored --password-file /etc/rewind/pg.password
  rewind pg restore --at -15m --target /srv/pg/copy --start --port 5433 --socket-dir /tmp --no-archive
  rewind pg restore --name before_migration --target /srv/pg/copy --action pause --start --port 5433
  rewind pg restore --lsn 0/3000060 --target /srv/pg/copy
  rewind pg restore --latest --target /var/lib/postgresql/15/restored
  rewind pg restore --at '2026-03-14 09:59:00' --delta --target /var/lib/postgresql/15/main
  rewind pg restore 4f2a91c3 --target /srv/pg/copy --start --port 5433 --socket-dir /tmp`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runPgRestore(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "", "new data `directory` (absent or empty)")
	f.StringVar(&o.at, "at", "", "recover every transaction committed at or before `time`")
	f.StringVar(&o.lsn, "lsn", "", "recover the WAL up to `LSN`")
	f.StringVar(&o.name, "name", "", "recover to the restore `point` made with pg_create_restore_point")
	f.StringVar(&o.xid, "xid", "", "recover up to and including transaction `XID`")
	f.BoolVar(&o.latest, "latest", false, "restore the newest base backup and recover all the WAL the repository holds")
	f.StringVar(&o.action, "action", "promote", "what the server does at the target: `promote`, pause or shutdown (recovery_target_action)")
	f.StringVar(&o.timeline, "timeline", "latest", "the `timeline` to recover along: latest, current or a number (recovery_target_timeline)")
	f.StringVar(&o.cluster, "cluster", "", "the `name` the cluster's WAL is stored under (wal-push --cluster); default: the one of the base backup's system")
	f.StringArrayVarP(&o.hosts, "host", "H", nil, "only base backups of this `host` (repeatable; default: this host)")
	f.StringVar(&o.owner, "owner", "", "OS `user` that owns the restored cluster and runs it (default: postgres as root, else yourself)")
	f.BoolVar(&o.start, "start", false, "start the restored cluster and wait until recovery has ended")
	f.IntVar(&o.port, "port", 0, "`port` the restored cluster listens on (written to postgresql.auto.conf)")
	f.StringVar(&o.socketDir, "socket-dir", "", "unix socket `directory` of the restored cluster (written to postgresql.auto.conf)")
	f.BoolVar(&o.noArchive, "no-archive", false, "write archive_mode = off: the restored cluster archives no WAL")
	f.BoolVar(&o.delta, "delta", false, "restore over the existing, stopped data directory --target, rewriting only the files that differ")
	f.StringVar(&o.table, "table", "", "recover one table (`schema.name`) into a scratch instance and dump it with pg_dump (with --dump)")
	f.StringVar(&o.dump, "dump", "", "with --table: the `file` pg_dump's SQL is written to")
	f.StringVar(&o.dbname, "dbname", "postgres", "with --table: the `database` the table is in")
	o.scratchOpts.flags(f)
	f.StringVar(&o.binDir, "pg-bindir", "", "`dir` of the PostgreSQL programs (pg_ctl); default /usr/lib/postgresql/MAJOR/bin, then PATH")
	o.prespoolFlag(f)
	return cmd
}

// restoreTarget reads the target flags; ok is false when none was given
// (a SNAPSHOT restored to its own end).
func (o *pgRestoreOpts) restoreTarget(now time.Time) (t pg.Target, ok bool, err error) {
	var given []string
	for _, fl := range []struct{ name, v string }{{"--at", o.at}, {"--lsn", o.lsn}, {"--name", o.name}, {"--xid", o.xid}} {
		if fl.v != "" {
			given = append(given, fl.name)
		}
	}
	if o.latest {
		given = append(given, "--latest")
	}
	if len(given) > 1 {
		return t, false, fmt.Errorf("%s: give one restore target", strings.Join(given, " and "))
	}
	switch {
	case o.at != "":
		m, err := timeline.ParseTime(o.at, now)
		if err != nil {
			return t, false, fmt.Errorf("--at: %w", err)
		}
		if m.Until.After(now) {
			return t, false, fmt.Errorf("--at %s is in the future: no WAL can reach it yet; --latest recovers everything archived", o.at)
		}
		return pg.Target{Kind: pg.TargetTime, Time: m.Until}, true, nil
	case o.lsn != "":
		l, err := wal.ParseLSN(o.lsn)
		if err != nil {
			return t, false, fmt.Errorf("--lsn: %w", err)
		}
		return pg.Target{Kind: pg.TargetLSN, LSN: l}, true, nil
	case o.name != "":
		if len(o.name) >= 64 {
			return t, false, fmt.Errorf("--name %q: a restore point's name is at most 63 bytes", o.name)
		}
		return pg.Target{Kind: pg.TargetName, Name: o.name}, true, nil
	case o.xid != "":
		x, err := pg.ParseXID(o.xid)
		if err != nil {
			return t, false, err
		}
		return pg.Target{Kind: pg.TargetXID, XID: x}, true, nil
	case o.latest:
		return pg.Target{Kind: pg.TargetLatest}, true, nil
	}
	return t, false, nil
}

func checkRecoverySettings(o *pgRestoreOpts) error {
	switch o.action {
	case "promote", "pause", "shutdown":
	default:
		return fmt.Errorf("--action %q: give promote, pause or shutdown", o.action)
	}
	switch o.timeline {
	case "latest", "current":
	default:
		if n, err := strconv.ParseUint(o.timeline, 10, 32); err != nil || n == 0 {
			return fmt.Errorf("--timeline %q: give latest, current or a timeline number", o.timeline)
		}
	}
	return nil
}

func runPgRestore(cmd *cobra.Command, g *globals, o *pgRestoreOpts, args []string) error {
	ctx := cmd.Context()
	if o.table != "" {
		return runPgTableDump(cmd, g, o, args)
	}
	if o.dump != "" {
		return errors.New("--dump writes one table's dump: give --table schema.name too")
	}
	if o.target == "" {
		return errors.New("--target is required: the new data directory (or --table with --dump, for one table)")
	}
	tgt, pitr, err := o.restoreTarget(time.Now())
	if err != nil {
		return err
	}
	if len(args) == 0 && !pitr {
		return errors.New("name what to restore: --at TIME, --lsn LSN, --name POINT, --xid XID, --latest, or a SNAPSHOT")
	}
	if len(args) == 1 && tgt.Kind == pg.TargetLatest {
		return errors.New("--latest picks the newest base backup itself: give it or a SNAPSHOT, not both")
	}
	if err := checkRecoverySettings(o); err != nil {
		return err
	}
	if o.delta {
		err = pg.CheckDeltaTarget(o.target)
	} else {
		err = pg.CheckTarget(o.target)
	}
	if err != nil {
		return err
	}
	uid, gid, err := restoreOwner(o.owner)
	if err != nil {
		return err
	}
	r, unlock, err := g.openLocked(ctx, lock.Shared, "pg restore", true)
	if err != nil {
		return err
	}
	done := sync.OnceFunc(unlock)
	defer done()
	var sn *snapshot.Snapshot
	var rc pg.Recovery
	var cl *wal.Cluster
	if pitr {
		sn, rc, cl, err = planPITR(ctx, g, r, args, o, tgt)
	} else {
		sn, err = findBaseBackup(ctx, r, args)
	}
	if err != nil {
		return err
	}
	rc.ArchiveOff = o.noArchive
	c := &ui.Counter{}
	prog := g.ui.StartProgress("restore", c)
	popt := pg.RestoreOptions{Target: o.target, UID: uid, GID: gid, Port: o.port,
		SocketDir: o.socketDir, Recovery: rc, BinDir: o.binDir, Logger: g.log, Progress: countInto(c), Delta: o.delta}
	ps := o.prespoolPlan(ctx, g, r, cl, sn, tgt, rc)
	popt.Prespool = ps.fn()
	res, err := pg.RestoreBase(ctx, r, sn, popt)
	prog.Stop()
	// The lock is released before the server starts: its restore_command
	// (rewind pg wal-fetch, as the cluster's user) opens the repository.
	done()
	if res != nil && res.Stats != nil {
		printRestoreSummary(g, sn, "", res.Stats)
	}
	if res != nil && res.Delta != nil {
		printDeltaSummary(g, res.Delta)
	}
	if res != nil {
		ps.print(g, res, true)
	}
	if err == nil && o.start {
		target, _ := filepath.Abs(o.target)
		err = pg.StartRestored(ctx, sn.Postgres, target, popt, res)
		if res.Log != "" && rc.RestoreCommand != "" {
			printFetches(g, res.Fetches)
		}
	}
	if res != nil {
		for _, l := range res.Stopped {
			g.ui.Infof("server: %s\n", l)
		}
	}
	if err != nil {
		return err
	}
	if !g.json && !g.quiet {
		p := sn.Postgres
		g.ui.Printf("base backup %s of PostgreSQL %s (system %s, ended %s at %s on timeline %d) restored into %s\n",
			sn.ID.Short(), p.VersionText, p.SystemID, pg.BackupEnd(sn).Local().Format(timeFormat), p.StopLSN, p.Timeline, o.target)
		switch {
		case rc.RestoreCommand == "":
			g.ui.Printf("recovery replays the WAL the backup holds, to its end\n")
		case rc.Target == "":
			g.ui.Printf("recovery replays all the WAL archived in the repository (restore_command: rewind pg wal-fetch), then %ss\n", rc.Action)
		default:
			g.ui.Printf("recovery to %s (%s = %s), then %s (recovery.signal and postgresql.auto.conf written)\n", tgt, rc.Target, pg.QuoteConf(rc.TargetValue), rc.Action)
		}
		if o.start {
			switch {
			case res.ShutDown:
				g.ui.Printf("recovery reached the target and the server shut down there, as --action shutdown asks (log: %s)\n", res.Log)
			case rc.Action == "pause" && rc.RestoreCommand != "":
				g.ui.Printf("recovery paused at the target: the cluster accepts read-only connections; SELECT pg_wal_replay_resume() promotes it (log: %s)\n", res.Log)
			default:
				g.ui.Printf("the restored cluster is running and accepts connections (log: %s)\n", res.Log)
			}
		}
	}
	return nil
}

// PgDeltaJSON is the "delta" line of `pg restore --delta --json`
// (docs/JSON.md).
type PgDeltaJSON struct {
	MessageType string `json:"message_type"`
	pg.DeltaStats
}

func printDeltaSummary(g *globals, d *pg.DeltaStats) {
	if g.json {
		g.ui.JSONLine(PgDeltaJSON{MessageType: "delta", DeltaStats: *d})
		return
	}
	if g.quiet {
		return
	}
	g.ui.Printf("delta: %s kept (%s), %s rewritten where they differed (%s), %s removed\n",
		ui.Count(d.FilesKept, "file", "files"), ui.Bytes(d.BytesKept), ui.Count(d.FilesRewritten, "file", "files"),
		ui.Bytes(d.BytesRewritten), ui.Count(d.Removed, "entry", "entries"))
}

// pgBackups returns the base backups of the hosts (default: this host),
// oldest first.
func pgBackups(ctx context.Context, g *globals, r *repository.Repository, hosts []string) ([]*snapshot.Snapshot, []string, error) {
	if len(hosts) == 0 {
		h, _ := os.Hostname()
		hosts = []string{h}
	}
	sns, err := g.listSnapshots(ctx, r)
	if err != nil {
		return nil, hosts, err
	}
	f := snapshot.Filter{Hosts: hosts}
	var out []*snapshot.Snapshot
	for _, sn := range sns {
		if sn.Postgres != nil && f.Match(sn) {
			out = append(out, sn)
		}
	}
	return out, hosts, nil
}

// planPITR chooses the base backup for the target and the recovery
// settings that reach it from the WAL archive.
func planPITR(ctx context.Context, g *globals, r *repository.Repository, args []string, o *pgRestoreOpts, tgt pg.Target) (*snapshot.Snapshot, pg.Recovery, *wal.Cluster, error) {
	var rc pg.Recovery
	cat, err := wal.Load(ctx, r)
	if err != nil {
		return nil, rc, nil, err
	}
	var sns []*snapshot.Snapshot
	if len(args) == 1 {
		sn, err := findBaseBackup(ctx, r, args)
		if err != nil {
			return nil, rc, nil, err
		}
		sns = []*snapshot.Snapshot{sn}
	} else {
		all, hosts, err := pgBackups(ctx, g, r, o.hosts)
		if err != nil {
			return nil, rc, nil, err
		}
		if len(all) == 0 {
			return nil, rc, nil, fmt.Errorf("%w: the repository has no PostgreSQL base backup of host %v; take one with rewind pg backup, or name the host with --host", snapshot.ErrNotFound, hosts)
		}
		sns = all
	}
	// The cluster: the one stored under --cluster, else the one of the
	// newest base backup.
	var cl *wal.Cluster
	var sys string
	if o.cluster != "" {
		if cl = cat.Cluster(o.cluster); cl == nil {
			return nil, rc, nil, fmt.Errorf("no WAL of cluster %q is stored (clusters: %v)", o.cluster, cat.Names())
		}
		sys = strconv.FormatUint(cl.SystemID, 10)
	} else {
		sys = sns[len(sns)-1].Postgres.SystemID
		for _, name := range cat.Names() {
			if c := cat.Cluster(name); strconv.FormatUint(c.SystemID, 10) == sys {
				if cl != nil {
					return nil, rc, nil, fmt.Errorf("the WAL of system %s is stored under two cluster names, %q and %q: choose one with --cluster", sys, cl.Name, c.Name)
				}
				cl = c
			}
		}
	}
	var same []*snapshot.Snapshot
	for _, sn := range sns {
		if sn.Postgres.SystemID == sys {
			same = append(same, sn)
		}
	}
	if len(same) == 0 {
		return nil, rc, nil, fmt.Errorf("%w: no base backup of system %s (the WAL of cluster %q)%s", snapshot.ErrNotFound, sys, o.cluster, hostsNote(o.hosts))
	}
	if cl == nil {
		if tgt.Kind == pg.TargetLatest && len(args) == 0 {
			g.ui.Infof("no WAL of system %s is archived in the repository: restoring the newest base backup to its own end\n", sys)
			return same[len(same)-1], rc, nil, nil
		}
		return nil, rc, nil, fmt.Errorf("no WAL of system %s is archived in the repository (clusters: %v): recovery to %s needs the WAL from archive_command = 'rewind pg wal-push ... %%p' (docs/POSTGRES.md)", sys, cat.Names(), tgt)
	}
	sn, err := pg.ChooseBackup(same, tgt)
	if err != nil {
		return nil, rc, nil, err
	}
	warnUnreachable(g, cl, tgt)
	cmdline, err := walFetchCommand(g, cl.Name)
	if err != nil {
		return nil, rc, nil, err
	}
	rc = pg.Recovery{RestoreCommand: cmdline, Action: o.action, Timeline: o.timeline}
	rc.Target, rc.TargetValue = tgt.Setting()
	rc.Inclusive = rc.Target != ""
	return sn, rc, cl, nil
}

// warnUnreachable warns when the archived WAL ends before a time or LSN
// target: recovery then fails, unless the WAL past the target is
// archived before the restored server replays to its end.
func warnUnreachable(g *globals, cl *wal.Cluster, tgt pg.Target) {
	var last *wal.StoredEntry
	for _, e := range cl.Entries() {
		if (e.Kind == wal.KindSegment || e.Kind == wal.KindPartial) && (last == nil || e.DataEnd() > last.DataEnd()) {
			last = e
		}
	}
	if last == nil {
		return
	}
	switch {
	case tgt.Kind == pg.TargetTime && !tgt.Time.Before(last.Modified):
		g.ui.Warnf("warning: the WAL archived so far ends at about %s (segment %s): recovery to %s needs a commit after it, and fails unless more WAL is archived before the restored server replays to the end; --latest recovers everything archived\n",
			last.Modified.Local().Format(timeFormat), last.Name, tgt)
	case tgt.Kind == pg.TargetLSN && tgt.LSN >= last.DataEnd():
		g.ui.Warnf("warning: the WAL archived so far ends at %s (segment %s): recovery to %s fails unless more WAL is archived before the restored server replays to the end\n",
			last.DataEnd(), last.Name, tgt)
	}
}

// walFetchCommand is the restore_command of a restored cluster: this
// rewind's full path running pg wal-fetch on the repository, with the
// path of the password file (never the password itself).
func walFetchCommand(g *globals, cluster string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find rewind's own path for restore_command: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	loc, err := g.location()
	if err != nil {
		return "", err
	}
	repo := g.repo
	if loc.Scheme == location.Local {
		if repo, err = filepath.Abs(loc.Path); err != nil {
			return "", err
		}
	}
	pw, err := restorePasswordFile(g)
	if err != nil {
		return "", err
	}
	if pw, err = filepath.Abs(pw); err != nil {
		return "", err
	}
	words := []string{exe, "pg", "wal-fetch", "--repo", repo, "--password-file", pw, "--cluster", cluster}
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	return strings.Join(words, " ") + " %f %p", nil
}

// restorePasswordFile returns the password file restore_command names:
// --password-file, REWIND_PASSWORD_FILE, or the default repository's.
// A password from REWIND_PASSWORD or a command cannot be named without
// writing it into the configuration, so it is refused.
func restorePasswordFile(g *globals) (string, error) {
	refuse := func(from string) error {
		return fmt.Errorf("the password came from %s, but restore_command must read it from a file the cluster's OS user can read: give --password-file FILE (its path is written into postgresql.auto.conf, never the password)", from)
	}
	switch {
	case g.passwordFile != "":
		return g.passwordFile, nil
	case g.passwordCommand != "":
		return "", refuse("--password-command")
	case os.Getenv("REWIND_PASSWORD") != "":
		return "", refuse("REWIND_PASSWORD")
	case os.Getenv("REWIND_PASSWORD_COMMAND") != "":
		return "", refuse("REWIND_PASSWORD_COMMAND")
	case os.Getenv("REWIND_PASSWORD_FILE") != "":
		return os.Getenv("REWIND_PASSWORD_FILE"), nil
	case g.usingDefault():
		_, pf, err := defaultRepo()
		return pf, err
	}
	return "", refuse("the prompt")
}

// findBaseBackup resolves the SNAPSHOT argument to a base backup.
func findBaseBackup(ctx context.Context, r *repository.Repository, args []string) (*snapshot.Snapshot, error) {
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
	return nil, errors.New("name the base backup: a SNAPSHOT")
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
