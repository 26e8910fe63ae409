package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/mysql/pitr"
	"github.com/rewind-backup/rewind/internal/pg"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

type mysqlRestoreOpts struct {
	target, owner, at, gtid, source string
	replay, scratch, table, dump    string
	socket, mariabackup             string
	hostnames                       []string
	latest, start                   bool
	port                            int
}

func newMysqlRestoreCmd(g *globals) *cobra.Command {
	o := &mysqlRestoreOpts{}
	cmd := &cobra.Command{
		Use:   "restore {--at T | --gtid G | --latest | SNAPSHOT} {--target DIR [--start] | --table DB.NAME --dump FILE}",
		Short: "Restore a MariaDB/MySQL data directory to any moment the stored binary log reaches",
		Long: `Restore a MariaDB/MySQL server's data directory from its physical backups
(rewind mysql backup) and the binary log stored in the repository (rewind
mysql binlog receive) into --target, a new or empty folder, owned by the
server's OS user as the backup recorded it (--owner to choose).

To a moment:
  --at T      every transaction committed at or before T; T in rewind's usual
              forms (RFC 3339, "2006-01-02 15:04:05" local time, "-15m").
              Binary log event times are whole seconds: a transaction counts
              when its commit event's second is at or before T's second
  --gtid G    up to and including the transaction with GTID G (0-1-42)
  --latest    the newest transaction stored
The newest physical backup whose consistent point is at or before the
target is restored and prepared (mariabackup --prepare); then the binary
log is replayed from the backup's consistent point to the end of the last
transaction at the target, through a scratch server (mariadbd on the
restored directory, a private socket, no networking, no binary log of its
own) that applies the stored binlog files as its relay log (START SLAVE
SQL_THREAD UNTIL). --replay pipe applies them through mariadb-binlog |
mariadb instead. The scratch server then shuts down cleanly: --target is a
data directory nothing runs on, ready for mariadbd --datadir DIR.

SNAPSHOT alone restores that backup to its own consistent point.

A target the stored binary log does not reach is refused before anything
is written, naming the last moment that can be restored: a time after the
newest stored binlog, a time before the first backup, a GTID not stored, a
gap in the stored binlog between the backup and the target.

With --start, mariadbd is started on the restored directory as its owner,
detached, with rewind-start.cnf written in it (socket DIR/mariadbd.sock or
--socket, no TCP port unless --port, no binary log), and rewind waits until
it accepts connections. The accounts are the original server's.

With --table db.name --dump FILE (and no --target), one table is
recovered: everything is restored into a private folder (--scratch,
default TMPDIR), a scratch server starts on it, mariadb-dump writes the
table into FILE, and the folder is removed, also on failure or Ctrl-C.

--json prints a summary: the backup, the stop point (GTID, time, binlog
file and position) and how long each phase took. docs/MYSQL.md explains
more.`,
		Example: `  rewind mysql restore --at '2026-12-07 10:31:05' --target /var/lib/mysql-restored
  rewind mysql restore --at -15m --target /srv/mysql-copy --start --port 3307
  rewind mysql restore --gtid 0-1-4211 --target /srv/mysql-copy
  rewind mysql restore --latest --target /srv/mysql-copy --json
  rewind mysql restore --at '2026-12-07 10:31:05' --table shop.orders --dump orders.sql
  rewind mysql restore 4f2a91c3 --target /srv/mysql-copy`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runMysqlRestore(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "", "new data `directory` (absent or empty)")
	o.targetFlags(f)
	f.StringVar(&o.owner, "owner", "", "OS `user` that owns the restored data directory (default: the one the backup recorded, as root; else yourself)")
	f.BoolVar(&o.start, "start", false, "start mariadbd on the restored data directory and wait until it accepts connections")
	f.IntVar(&o.port, "port", 0, "with --start: also listen on 127.0.0.1:`port` (default: no TCP port)")
	f.StringVar(&o.socket, "socket", "", "with --start: the server's unix `socket` (default DIR/mariadbd.sock)")
	f.StringVar(&o.table, "table", "", "recover one table (`db.name`) through a scratch server and dump it with mariadb-dump (with --dump)")
	f.StringVar(&o.dump, "dump", "", "with --table: the `file` the table's SQL is written to")
	return cmd
}

// flagSet is what targetFlags needs of a pflag.FlagSet.
type flagSet interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	StringArrayVar(p *[]string, name string, value []string, usage string)
}

// targetFlags are the flags restore and verify share.
func (o *mysqlRestoreOpts) targetFlags(f flagSet) {
	f.StringVar(&o.at, "at", "", "restore every transaction committed at or before `time`")
	f.StringVar(&o.gtid, "gtid", "", "restore up to and including the transaction with this `GTID`")
	f.BoolVar(&o.latest, "latest", false, "restore up to the newest transaction stored")
	f.StringVar(&o.source, "source", "", "the `name` the binary log is stored under (binlog receive --source); default: the one of the backup's server")
	f.StringArrayVar(&o.hostnames, "hostname", nil, "only backups of this `host` (repeatable; default: this host)")
	f.StringVar(&o.replay, "replay", string(mysql.ReplayReplica), "how the binary log is applied: `replica` (a scratch server's SQL thread) or pipe (mariadb-binlog | mariadb)")
	f.StringVar(&o.scratch, "scratch", "", "`folder` for the binary log files and the scratch server (default: TMPDIR)")
	f.StringVar(&o.mariabackup, "mariabackup", "", "the mariabackup `program` (default: from PATH)")
}

// binlogTarget reads --at, --gtid and --latest; none is the zero Target.
func (o *mysqlRestoreOpts) binlogTarget(now time.Time) (binlog.Target, string, error) {
	var given []string
	for _, fl := range []struct {
		name string
		set  bool
	}{{"--at", o.at != ""}, {"--gtid", o.gtid != ""}, {"--latest", o.latest}} {
		if fl.set {
			given = append(given, fl.name)
		}
	}
	if len(given) > 1 {
		return binlog.Target{}, "", fmt.Errorf("%s: give one restore target", strings.Join(given, " and "))
	}
	t := binlog.Target{Source: o.source}
	switch {
	case o.at != "":
		m, err := timeline.ParseTime(o.at, now)
		if err != nil {
			return t, "", fmt.Errorf("--at: %w", err)
		}
		if m.Time.After(now) {
			return t, "", fmt.Errorf("--at %s is in the future: no binary log reaches it yet; --latest restores everything stored", o.at)
		}
		t.Time = m.Until
		return t, "--at " + m.Until.Local().Format(timeFormat), nil
	case o.gtid != "":
		if _, err := binlog.ParseGTID(o.gtid); err != nil {
			return t, "", fmt.Errorf("--gtid: %w", err)
		}
		t.GTID = o.gtid
		return t, "--gtid " + o.gtid, nil
	case o.latest:
		t.Latest = true
		return t, "--latest", nil
	}
	return t, "", nil
}

// mysqlOwner resolves --owner (nil: the backup's recorded owner).
func mysqlOwner(name string) (*mysql.Owner, error) {
	if name == "" {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		if u, err := user.Current(); err == nil && u.Username == name {
			return nil, nil
		}
		return nil, fmt.Errorf("--owner %s: only root can restore a data directory for another user; run as %s or as root", name, name)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--owner %s: %w; give the OS user that runs the server (mysql)", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &mysql.Owner{UID: uid, GID: gid}, nil
}

// mysqlBackups returns the physical MariaDB/MySQL backups of the hosts
// (default: this host), by consistent time, oldest first.
func mysqlBackups(ctx context.Context, g *globals, r *repository.Repository, hosts []string) ([]*snapshot.Snapshot, []string, error) {
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
	for _, sn := range pitr.Physical(sns) {
		if f.Match(sn) {
			out = append(out, sn)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].MySQL.BackupEnd.Before(out[j].MySQL.BackupEnd) })
	return out, hosts, nil
}

// mysqlPlan loads the binlog catalog and plans the restore; nothing is
// written.
func mysqlPlan(ctx context.Context, g *globals, r *repository.Repository, o *mysqlRestoreOpts, args []string, t binlog.Target) (*pitr.Plan, *binlog.Catalog, error) {
	var given *snapshot.Snapshot
	if len(args) == 1 {
		sn, err := snapshot.Find(ctx, r, args[0], snapshot.Filter{})
		if err != nil {
			return nil, nil, err
		}
		if sn.MySQL == nil {
			return nil, nil, fmt.Errorf("snapshot %s is not a MariaDB/MySQL backup (made by rewind mysql backup); restore its files with rewind restore", sn.ID.Short())
		}
		if sn.MySQL.Method != snapshot.MySQLPhysical {
			return nil, nil, fmt.Errorf("snapshot %s is a logical backup (mariadb-dump): load its dump into a server (rewind dump %s %s | mariadb)", sn.ID.Short(), sn.ID.Short(), sn.MySQL.DumpPath)
		}
		given = sn
	}
	backups, hosts, err := mysqlBackups(ctx, g, r, o.hostnames)
	if err != nil {
		return nil, nil, err
	}
	if given == nil && len(backups) == 0 {
		return nil, nil, fmt.Errorf("%w: the repository has no physical MariaDB/MySQL backup of host %v; take one with rewind mysql backup, or name the host with --hostname", snapshot.ErrNotFound, hosts)
	}
	var cat *binlog.Catalog
	if t.Latest || t.GTID != "" || !t.Time.IsZero() {
		if cat, err = binlog.Load(ctx, r); err != nil {
			return nil, nil, err
		}
	}
	p, err := pitr.Make(cat, backups, given, t)
	return p, cat, err
}

// MysqlStopJSON is the stop point of a MariaDB restore (docs/JSON.md).
type MysqlStopJSON struct {
	Source string    `json:"source"`
	File   string    `json:"file"`
	Pos    uint64    `json:"pos"`
	GTID   string    `json:"gtid"`
	Time   time.Time `json:"time"`
}

// MysqlRestoreJSON is `mysql restore --json` (docs/JSON.md).
type MysqlRestoreJSON struct {
	MessageType        string         `json:"message_type"`
	SnapshotID         string         `json:"snapshot_id"`
	Target             string         `json:"target"`
	BackupGTID         string         `json:"backup_gtid"`
	BackupFile         string         `json:"backup_binlog_file"`
	BackupPos          uint64         `json:"backup_binlog_pos"`
	BackupTime         time.Time      `json:"backup_time"`
	Stop               *MysqlStopJSON `json:"stop,omitempty"`
	ReplayMethod       string         `json:"replay_method,omitempty"`
	BinlogFiles        int            `json:"binlog_files"`
	Files              int64          `json:"files"`
	Bytes              int64          `json:"bytes"`
	RestoreSeconds     float64        `json:"restore_seconds"`
	PrepareSeconds     float64        `json:"prepare_seconds"`
	MaterializeSeconds float64        `json:"materialize_seconds"`
	ReplaySeconds      float64        `json:"replay_seconds"`
	ShutdownSeconds    float64        `json:"shutdown_seconds"`
	TotalSeconds       float64        `json:"total_seconds"`
	Pid                int            `json:"pid,omitempty"`
	Socket             string         `json:"socket,omitempty"`
}

func mysqlRestoreJSON(p *pitr.Plan, res *pitr.Result, target string, total time.Duration) MysqlRestoreJSON {
	info := p.Snapshot.MySQL
	out := MysqlRestoreJSON{MessageType: "summary", SnapshotID: p.Snapshot.ID.String(), Target: target,
		BackupGTID: info.GTID, BackupFile: info.BinlogFile, BackupPos: info.BinlogPos, BackupTime: info.BackupEnd,
		TotalSeconds: total.Seconds()}
	if p.Replays() {
		s := p.Stop
		out.Stop = &MysqlStopJSON{Source: s.Source, File: s.File, Pos: s.Pos, GTID: s.GTID, Time: s.Time}
	}
	if res != nil {
		if res.Base != nil && res.Base.Stats != nil {
			out.Files, out.Bytes = int64(res.Base.Stats.Files), res.Base.Stats.Bytes
		}
		if res.Replay != nil {
			out.ReplayMethod = string(res.Replay.Method)
		}
		out.BinlogFiles = res.Files
		out.RestoreSeconds, out.PrepareSeconds = res.Restore.Seconds(), res.Prepare.Seconds()
		out.MaterializeSeconds, out.ReplaySeconds = res.Materialize.Seconds(), (res.Start + res.Apply).Seconds()
		out.ShutdownSeconds = res.Shutdown.Seconds()
	}
	return out
}

func runMysqlRestore(cmd *cobra.Command, g *globals, o *mysqlRestoreOpts, args []string) (err error) {
	ctx := cmd.Context()
	if o.table != "" {
		return runMysqlTableDump(cmd, g, o, args)
	}
	if o.dump != "" {
		return errors.New("--dump writes one table's dump: give --table db.name too")
	}
	if o.target == "" {
		return errors.New("--target is required: the new data directory (or --table with --dump, for one table)")
	}
	if !o.start && (o.port != 0 || o.socket != "") {
		return errors.New("--port and --socket set how --start runs the restored server: give --start too")
	}
	t, what, err := o.binlogTarget(time.Now())
	if err != nil {
		return err
	}
	if len(args) == 0 && what == "" {
		return errors.New("name what to restore: --at TIME, --gtid GTID, --latest, or a SNAPSHOT")
	}
	if len(args) == 1 && t.Latest {
		return errors.New("--latest picks the newest backup itself: give it or a SNAPSHOT, not both")
	}
	method, err := mysql.ParseReplayMethod(o.replay)
	if err != nil {
		return err
	}
	if err := pg.CheckTarget(o.target); err != nil {
		return err
	}
	owner, err := mysqlOwner(o.owner)
	if err != nil {
		return err
	}
	target, err := filepath.Abs(o.target)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(target)
	existed := statErr == nil
	r, unlock, err := g.openLocked(ctx, lock.Shared, "mysql restore", true)
	if err != nil {
		return err
	}
	defer unlock()
	p, cat, err := mysqlPlan(ctx, g, r, o, args, t)
	if err != nil {
		return err
	}
	t0 := time.Now()
	c := &ui.Counter{}
	prog := g.ui.StartProgress("restore", c)
	res, err := pitr.Run(ctx, r, cat, p, pitr.Options{Target: target, Owner: owner, Method: method, Scratch: o.scratch,
		MariaBackup: o.mariabackup, Logger: g.log, Progress: countInto(c)})
	prog.Stop()
	if err != nil {
		// What was written is a half-restored directory (the target was
		// absent or empty): remove it.
		if _, serr := os.Stat(target); serr == nil {
			clearTarget(g, target, existed)
		}
		return err
	}
	total := time.Since(t0)
	var started *mysql.Started
	if o.start {
		started, err = mysql.StartRestored(ctx, target, mysql.StartOptions{Socket: o.socket, Port: o.port, ServerID: p.Snapshot.MySQL.ServerID})
		if err != nil {
			return fmt.Errorf("the data directory %s is restored, but the server did not start: %w", target, err)
		}
	}
	if g.json {
		out := mysqlRestoreJSON(p, res, target, total)
		if started != nil {
			out.Pid, out.Socket = started.Pid, started.Socket
		}
		g.ui.JSONLine(out)
		return nil
	}
	if g.quiet {
		return nil
	}
	printMysqlRestore(g, p, res, target)
	if started != nil {
		g.ui.Printf("mariadbd runs on it (pid %d, log %s, options %s)\n", started.Pid, started.LogFile, started.Conf)
		g.ui.Printf("connect with: mariadb --socket=%s --user=USER -p   (the accounts are the original server's)\n", started.Socket)
		if started.Port != 0 {
			g.ui.Printf("or over TCP: mariadb --host=127.0.0.1 --port=%d --user=USER -p\n", started.Port)
		}
		g.ui.Printf("stop it with: kill %d   (a clean shutdown)\n", started.Pid)
	} else {
		g.ui.Printf("nothing runs on it; start it with: mariadbd --datadir=%s (the original's options; the InnoDB settings are in backup-my.cnf), or rewind mysql restore --start\n", target)
	}
	return nil
}

// printMysqlRestore says what a restore did.
func printMysqlRestore(g *globals, p *pitr.Plan, res *pitr.Result, target string) {
	info := p.Snapshot.MySQL
	files, bytes := int64(0), int64(0)
	if res.Base != nil && res.Base.Stats != nil {
		files, bytes = int64(res.Base.Stats.Files), res.Base.Stats.Bytes
	}
	g.ui.Printf("backup %s (consistent at %s, GTID %s, %s:%d) restored into %s: %s (%s), prepared\n",
		p.Snapshot.ID.Short(), info.BackupEnd.Local().Format(timeFormat), orNone(info.GTID), info.BinlogFile, info.BinlogPos,
		target, ui.Count(files, "file", "files"), ui.Bytes(bytes))
	if p.Replays() && res.Replay != nil {
		s := p.Stop
		g.ui.Printf("binary log replayed (%s) from %s to %s:%d, in %s: the last transaction restored is GTID %s, committed at %s\n",
			res.Replay.Method, p.From, s.File, s.Pos, ui.Count(int64(res.Files), "file", "files"), s.GTID, s.Time.Local().Format(timeFormat))
	} else {
		g.ui.Printf("no binary log to replay: the backup's consistent point is the target\n")
	}
	g.ui.Printf("took: restore %s, prepare %s, binlog read %s, replay %s, shutdown %s\n",
		res.Restore.Round(time.Millisecond), res.Prepare.Round(time.Millisecond), res.Materialize.Round(time.Millisecond),
		(res.Start + res.Apply).Round(time.Millisecond), res.Shutdown.Round(time.Millisecond))
}

// clearTarget removes what a failed restore wrote into target (the
// folder itself when the restore made it).
func clearTarget(g *globals, target string, existed bool) {
	var err error
	if !existed {
		err = os.RemoveAll(target)
	} else {
		var names []string
		if names, err = readDirNames(target); err == nil {
			for _, n := range names {
				if e := os.RemoveAll(filepath.Join(target, n)); e != nil {
					err = e
				}
			}
		}
	}
	if err != nil {
		g.ui.Warnf("warning: the half-restored %s could not be removed: %v\n", target, err)
	} else {
		g.ui.Warnf("the half-restored data directory was removed from %s\n", target)
	}
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// MysqlTableDumpJSON is `mysql restore --table --dump --json`
// (docs/JSON.md).
type MysqlTableDumpJSON struct {
	MessageType string         `json:"message_type"`
	SnapshotID  string         `json:"snapshot_id"`
	Table       string         `json:"table"`
	File        string         `json:"file"`
	Bytes       int64          `json:"bytes"`
	Stop        *MysqlStopJSON `json:"stop,omitempty"`
}

// scratchRestoreMysql restores the plan into a new private folder under
// scratch and leaves a scratch server running on it. cleanup stops the
// server and removes the folder; it is never nil.
func scratchRestoreMysql(ctx context.Context, g *globals, r *repository.Repository, cat *binlog.Catalog, p *pitr.Plan, o *mysqlRestoreOpts, method mysql.ReplayMethod) (res *pitr.Result, cleanup func() error, err error) {
	cleanup = func() error { return nil }
	dir, err := os.MkdirTemp(o.scratch, "rewind-restore-")
	if err != nil {
		return nil, cleanup, fmt.Errorf("scratch folder: %w; give --scratch DIR, a folder with room for the restored data directory", err)
	}
	// The server's user must be able to reach the data directory in it.
	if err := os.Chmod(dir, 0o711); err != nil {
		os.RemoveAll(dir)
		return nil, cleanup, err
	}
	cleanup = func() error {
		var errs []error
		if res != nil && res.Server != nil {
			errs = append(errs, res.Server.Close())
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove the scratch folder: %w", err))
		}
		return errors.Join(errs...)
	}
	owner, err := mysqlOwner(o.owner)
	if err != nil {
		return nil, cleanup, err
	}
	c := &ui.Counter{}
	prog := g.ui.StartProgress("restore", c)
	res, err = pitr.Run(ctx, r, cat, p, pitr.Options{Target: filepath.Join(dir, "data"), Owner: owner, Method: method, Scratch: o.scratch,
		KeepRunning: true, MariaBackup: o.mariabackup, Logger: g.log, Progress: countInto(c)})
	prog.Stop()
	return res, cleanup, err
}

// runMysqlTableDump is mysql restore --table --dump.
func runMysqlTableDump(cmd *cobra.Command, g *globals, o *mysqlRestoreOpts, args []string) (err error) {
	ctx := cmd.Context()
	if o.dump == "" {
		return errors.New("--table needs --dump FILE: the file mariadb-dump's SQL is written to")
	}
	for _, fl := range []struct {
		name string
		set  bool
	}{{"--target", o.target != ""}, {"--start", o.start}, {"--port", o.port != 0}, {"--socket", o.socket != ""}} {
		if fl.set {
			return fmt.Errorf("--table restores into a scratch folder of its own (--scratch): %s does not apply", fl.name)
		}
	}
	db, table, err := mysql.SplitTable(o.table)
	if err != nil {
		return err
	}
	t, what, err := o.binlogTarget(time.Now())
	if err != nil {
		return err
	}
	if len(args) == 0 && what == "" {
		return errors.New("name what to restore: --at TIME, --gtid GTID, --latest, or a SNAPSHOT")
	}
	method, err := mysql.ParseReplayMethod(o.replay)
	if err != nil {
		return err
	}
	file, err := filepath.Abs(o.dump)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Dir(file)); err != nil || !fi.IsDir() {
		return fmt.Errorf("--dump %s: its folder does not exist", o.dump)
	}
	r, unlock, err := g.openLocked(ctx, lock.Shared, "mysql restore", true)
	if err != nil {
		return err
	}
	defer unlock()
	p, cat, err := mysqlPlan(ctx, g, r, o, args, t)
	if err != nil {
		return err
	}
	res, cleanup, err := scratchRestoreMysql(ctx, g, r, cat, p, o, method)
	defer func() {
		if cerr := cleanup(); cerr != nil {
			g.ui.Warnf("warning: %v\n", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()
	if err != nil {
		return err
	}
	if err := res.Server.CheckTable(ctx, db, table); err != nil {
		return err
	}
	n, err := res.Server.DumpTable(ctx, db, table, file, "")
	if err != nil {
		return err
	}
	if g.json {
		out := MysqlTableDumpJSON{MessageType: "table_dump", SnapshotID: p.Snapshot.ID.String(), Table: db + "." + table, File: file, Bytes: n}
		if p.Replays() {
			s := p.Stop
			out.Stop = &MysqlStopJSON{Source: s.Source, File: s.File, Pos: s.Pos, GTID: s.GTID, Time: s.Time}
		}
		g.ui.JSONLine(out)
		return nil
	}
	if !g.quiet {
		at := "the backup's consistent point"
		if p.Replays() {
			at = fmt.Sprintf("GTID %s (committed %s)", p.Stop.GTID, p.Stop.Time.Local().Format(timeFormat))
		}
		g.ui.Printf("table %s.%s as of %s, from backup %s, dumped to %s (%s); the scratch server and folder are removed\n",
			db, table, at, p.Snapshot.ID.Short(), file, ui.Bytes(n))
		g.ui.Printf("load it with: mariadb DATABASE < %s (it drops and re-creates the table: load it into another database, or rename the existing table first)\n", file)
	}
	return nil
}
