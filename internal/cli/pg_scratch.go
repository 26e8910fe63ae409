package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pg"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// scratchOpts are the flags of a restore into a scratch instance
// (pg restore --table, pg verify).
type scratchOpts struct {
	scratch, dbname, pgUser string
}

func (s *scratchOpts) flags(f interface {
	StringVar(p *string, name, value, usage string)
}) {
	f.StringVar(&s.scratch, "scratch", "", "`folder` for the scratch instance, removed afterwards (default: TMPDIR)")
	f.StringVar(&s.pgUser, "pg-user", "", "superuser `role` to connect as (default: the cluster's OS user, as initdb names it)")
}

// ownerName is the OS user a restored cluster runs as: --owner, else
// postgres as root, else the current user.
func ownerName(owner string) string {
	if owner != "" {
		return owner
	}
	if os.Geteuid() == 0 {
		return "postgres"
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "postgres"
}

// scratchRestore restores the base backup and recovery the restore
// flags name into a new scratch instance and starts it; the repository
// lock is held only for the restore. The caller closes the scratch
// instance, also on error (when it is not nil). restoreTook and
// recoveryTook measure the two phases.
func scratchRestore(ctx context.Context, g *globals, o *pgRestoreOpts, so *scratchOpts, args []string,
	locked func(*repository.Repository, *snapshot.Snapshot, pg.Recovery) error) (sc *pg.Scratch, sn *snapshot.Snapshot, res *pg.RestoreResult, restoreTook, recoveryTook time.Duration, err error) {
	tgt, pitr, err := o.restoreTarget(time.Now())
	if err != nil {
		return
	}
	if len(args) == 0 && !pitr {
		err = errors.New("name what to restore: --at TIME, --lsn LSN, --name POINT, --xid XID, --latest, or a SNAPSHOT")
		return
	}
	if len(args) == 1 && tgt.Kind == pg.TargetLatest {
		err = errors.New("--latest picks the newest base backup itself: give it or a SNAPSHOT, not both")
		return
	}
	o.action = "promote"
	uid, gid, err := restoreOwner(o.owner)
	if err != nil {
		return
	}
	role := so.pgUser
	if role == "" {
		role = ownerName(o.owner)
	}
	r, unlock, err := g.openLocked(ctx, lock.Shared, "pg restore", true)
	if err != nil {
		return
	}
	done := sync.OnceFunc(unlock)
	defer done()
	var rc pg.Recovery
	var cl *wal.Cluster
	if pitr {
		sn, rc, cl, err = planPITR(ctx, g, r, args, o, tgt)
	} else {
		sn, err = findBaseBackup(ctx, r, args)
	}
	if err != nil {
		return
	}
	if locked != nil {
		if err = locked(r, sn, rc); err != nil {
			return
		}
	}
	if sc, err = pg.NewScratch(so.scratch, uid, gid, role, o.binDir); err != nil {
		return
	}
	g.log.Info("scratch instance", "dir", sc.Dir, "port", sc.Port)
	c := &ui.Counter{}
	prog := g.ui.StartProgress("restore", c)
	t0 := time.Now()
	ps := o.prespoolPlan(ctx, g, r, cl, sn, tgt, rc)
	res, err = sc.Restore(ctx, r, sn, rc, pg.RestoreOptions{Logger: g.log, Progress: countInto(c), Prespool: ps.fn()})
	restoreTook = time.Since(t0)
	prog.Stop()
	done()
	if res != nil {
		ps.print(g, res, false)
	}
	if err != nil {
		return
	}
	t1 := time.Now()
	err = sc.Start(ctx, rc, res)
	recoveryTook = time.Since(t1)
	return
}

// PgTableDumpJSON is `pg restore --table --dump --json` (docs/JSON.md).
type PgTableDumpJSON struct {
	MessageType string   `json:"message_type"`
	SnapshotID  string   `json:"snapshot_id"`
	Table       string   `json:"table"`
	Database    string   `json:"database"`
	File        string   `json:"file"`
	Bytes       int64    `json:"bytes"`
	Stopped     []string `json:"recovery_stopped,omitempty"`
}

// runPgTableDump is pg restore --table --dump: the cluster restored into
// a scratch instance, one table dumped, the instance removed.
func runPgTableDump(cmd *cobra.Command, g *globals, o *pgRestoreOpts, args []string) (err error) {
	ctx := cmd.Context()
	if o.dump == "" {
		return errors.New("--table needs --dump FILE: the file pg_dump's SQL is written to")
	}
	for _, fl := range []struct {
		name string
		set  bool
	}{{"--target", o.target != ""}, {"--start", o.start}, {"--delta", o.delta}, {"--port", o.port != 0}, {"--socket-dir", o.socketDir != ""}, {"--no-archive", o.noArchive}} {
		if fl.set {
			return fmt.Errorf("--table restores into a scratch instance of its own (--scratch): %s does not apply", fl.name)
		}
	}
	if o.action != "promote" {
		return fmt.Errorf("--table promotes the scratch instance at the target: --action %s does not apply", o.action)
	}
	if err := checkRecoverySettings(o); err != nil {
		return err
	}
	file, err := filepath.Abs(o.dump)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Dir(file)); err != nil || !fi.IsDir() {
		return fmt.Errorf("--dump %s: its folder does not exist", o.dump)
	}
	sc, sn, res, _, _, err := scratchRestore(ctx, g, o, &o.scratchOpts, args, nil)
	if sc != nil {
		defer func() {
			if cerr := sc.Close(); cerr != nil {
				g.ui.Warnf("warning: %v\n", cerr)
				if err == nil {
					err = cerr
				}
			}
		}()
	}
	if err != nil {
		return err
	}
	if err := sc.CheckTable(ctx, o.dbname, o.table); err != nil {
		return err
	}
	n, err := sc.Dump(ctx, o.dbname, o.table, file)
	if err != nil {
		return fmt.Errorf("dump %s: %w", o.table, err)
	}
	if g.json {
		g.ui.JSONLine(PgTableDumpJSON{MessageType: "table_dump", SnapshotID: sn.ID.String(), Table: o.table, Database: o.dbname, File: file, Bytes: n, Stopped: res.Stopped})
		return nil
	}
	for _, l := range res.Stopped {
		g.ui.Infof("server: %s\n", l)
	}
	if !g.quiet {
		g.ui.Printf("table %s of database %s, restored from base backup %s, dumped to %s (%s); the scratch instance is removed\n",
			o.table, o.dbname, sn.ID.Short(), file, ui.Bytes(n))
		g.ui.Printf("load it with: psql -d DATABASE -f %s (it creates the table: into another database, or rename or drop the existing one first)\n", file)
	}
	return nil
}
