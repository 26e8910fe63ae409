package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pg"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// The event a restore drill records (docs/POSTGRES.md, "Restore drills").
const (
	pgVerifyJob  = "pg verify"
	pgVerifyKind = "pg-verify"
)

// PgVerifyJSON is `pg verify --json` (docs/JSON.md).
type PgVerifyJSON struct {
	Result          string   `json:"result"`
	Error           string   `json:"error,omitempty"`
	SnapshotID      string   `json:"snapshot_id,omitempty"`
	Target          string   `json:"target"`
	RestoreSeconds  float64  `json:"restore_seconds"`
	RecoverySeconds float64  `json:"recovery_seconds"`
	RTOSeconds      float64  `json:"rto_seconds"`
	Files           int64    `json:"files"`
	Bytes           int64    `json:"bytes"`
	ReachedLSN      string   `json:"reached_lsn,omitempty"`
	ArchiveEndLSN   string   `json:"archive_end_lsn,omitempty"`
	AmcheckOK       *bool    `json:"amcheck_ok,omitempty"`
	AmcheckOutput   string   `json:"amcheck_output,omitempty"`
	Stopped         []string `json:"recovery_stopped,omitempty"`
	// Prespooled counts the WAL segments spooled before the server
	// started; Fetches what restore_command did during recovery.
	Prespooled int            `json:"prespooled"`
	Fetches    *PgFetchesJSON `json:"recovery_fetches,omitempty"`
	EventID    string         `json:"event_id,omitempty"`
}

func newPgVerifyCmd(g *globals) *cobra.Command {
	o := &pgRestoreOpts{}
	cmd := &cobra.Command{
		Use:   "verify [--at T | --lsn LSN | --name POINT | --xid XID | --latest | SNAPSHOT]",
		Short: "Restore drill: restore into a scratch instance, start it, run pg_amcheck, record the RTO",
		Long: `A restore drill. The newest point (--latest, the default; or the target
given as for pg restore) is restored into a scratch instance as pg restore
--table does: a temporary folder (--scratch, default TMPDIR), no TCP
address, a private unix socket, trust for local connections only,
archive_mode off, promoted at the target. rewind measures the restore
(the base backup's files written) and the recovery (from pg_ctl start
until recovery has ended and the server accepts connections); their sum
is the RTO. With --latest, the recovery must reach the newest WAL segment
stored for the cluster: a segment that cannot be fetched (missing or
corrupt in the repository) ends recovery early, and the drill fails naming
where it stopped. Then pg_amcheck checks every database (tables and B-tree
indexes), and the instance is stopped and removed.

The drill is recorded in the repository's event log as job "pg verify"
(kind pg-verify): its result, the reason when it failed, the base backup,
and the steps restore, recovery and amcheck with their durations.
rewind events --repo REPO --job 'pg verify' lists them. Exit status 1 when the drill
fails, with the reason.

As pg restore does, the WAL recovery needs is pre-spooled while the files
are restored (--prespool, default 64 segments; 0 turns it off), and the
result says how many WAL files recovery took from the spool and how often
wal-fetch opened the repository.`,
		Example: `  rewind pg verify --password-file /etc/rewind/pg.password
  rewind pg verify --at '2026-03-14 09:59:00' --scratch /srv/drill --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runPgVerify(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.at, "at", "", "drill a restore to `time`")
	f.StringVar(&o.lsn, "lsn", "", "drill a restore to `LSN`")
	f.StringVar(&o.name, "name", "", "drill a restore to the restore `point`")
	f.StringVar(&o.xid, "xid", "", "drill a restore to transaction `XID`")
	f.BoolVar(&o.latest, "latest", false, "drill a restore of everything archived (the default)")
	f.StringVar(&o.timeline, "timeline", "latest", "the `timeline` to recover along (recovery_target_timeline)")
	f.StringVar(&o.cluster, "cluster", "", "the `name` the cluster's WAL is stored under (default: the one of the base backup's system)")
	f.StringArrayVarP(&o.hosts, "host", "H", nil, "only base backups of this `host` (repeatable; default: this host)")
	f.StringVar(&o.owner, "owner", "", "OS `user` that runs the scratch instance (default: postgres as root, else yourself)")
	f.StringVar(&o.binDir, "pg-bindir", "", "`dir` of the PostgreSQL programs; default /usr/lib/postgresql/MAJOR/bin, then PATH")
	o.scratchOpts.flags(f)
	o.prespoolFlag(f)
	return cmd
}

func runPgVerify(cmd *cobra.Command, g *globals, o *pgRestoreOpts, args []string) error {
	ctx := cmd.Context()
	if len(args) == 0 && o.at == "" && o.lsn == "" && o.name == "" && o.xid == "" {
		o.latest = true
	}
	o.action = "promote"
	if err := checkRecoverySettings(o); err != nil {
		return err
	}
	host, _ := os.Hostname()
	run := &event.Run{Host: host, Job: pgVerifyJob, Kind: pgVerifyKind, Trigger: "manual", Start: time.Now(), Attempt: 1}
	out := PgVerifyJSON{}
	if tgt, ok, err := o.restoreTarget(run.Start); err != nil {
		return err
	} else if ok {
		out.Target = tgt.String()
	} else {
		out.Target = "the base backup's end"
	}
	var archiveEnd wal.LSN
	expectEnd := func(r *repository.Repository, sn *snapshot.Snapshot, rc pg.Recovery) error {
		if !o.latest || rc.RestoreCommand == "" {
			return nil
		}
		cat, err := wal.Load(ctx, r)
		if err != nil {
			return err
		}
		for _, name := range cat.Names() {
			cl := cat.Cluster(name)
			if (o.cluster != "" && name != o.cluster) || (o.cluster == "" && strconv.FormatUint(cl.SystemID, 10) != sn.Postgres.SystemID) {
				continue
			}
			for _, e := range cl.Entries() {
				if e.Kind == wal.KindSegment && e.StartLSN() > archiveEnd {
					archiveEnd = e.StartLSN()
				}
			}
		}
		return nil
	}
	sc, sn, res, restoreTook, recoveryTook, err := scratchRestore(ctx, g, o, &o.scratchOpts, args, expectEnd)
	if sc != nil {
		defer sc.Close()
	}
	if sn != nil {
		run.Snapshot = sn.ID.String()
		out.SnapshotID = sn.ID.String()
	}
	if res != nil {
		out.Stopped = res.Stopped
		out.Prespooled = res.Prespooled
		if res.Log != "" {
			out.Fetches = &PgFetchesJSON{MessageType: "recovery_fetches", FetchCounts: res.Fetches, RepositoryOpens: res.Fetches.RepositoryOpens()}
		}
		if res.Stats != nil {
			run.Files, run.Bytes = res.Stats.Files, res.Stats.Bytes
		}
	}
	step := func(kind string, d time.Duration, err error) {
		s := event.Step{Phase: "job", Kind: kind, Result: event.ResultSuccess, Duration: d}
		if err != nil {
			s.Result, s.Error = event.ResultFailed, err.Error()
		}
		run.Steps = append(run.Steps, s)
	}
	if sn == nil && err != nil {
		// Nothing was restored (no base backup, bad flags): no drill ran.
		return err
	}
	if res == nil || res.Log == "" {
		step("restore", restoreTook, err)
	} else {
		step("restore", restoreTook, nil)
		step("recovery", recoveryTook, err)
	}
	if err == nil && archiveEnd > 0 {
		err = checkReached(ctx, sc, archiveEnd, &out)
		run.Steps[len(run.Steps)-1].Error = errString(err)
		if err != nil {
			run.Steps[len(run.Steps)-1].Result = event.ResultFailed
		}
	}
	if err == nil {
		t0 := time.Now()
		var bin string
		var ac *pg.Amcheck
		bin, err = pg.FindBin("pg_amcheck", sn.Postgres.Version/10000, o.binDir)
		if err == nil {
			ac, err = pg.RunAmcheck(ctx, bin, sc.DSN("postgres"))
		}
		if err == nil {
			out.AmcheckOK, out.AmcheckOutput = &ac.OK, ac.Output
			if !ac.OK {
				err = fmt.Errorf("pg_amcheck found corruption in the restored cluster: %s", ac.Output)
			}
		}
		step("amcheck", time.Since(t0), err)
	}
	if sc != nil {
		if cerr := sc.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	run.End = time.Now()
	out.RestoreSeconds, out.RecoverySeconds = restoreTook.Seconds(), recoveryTook.Seconds()
	out.RTOSeconds = out.RestoreSeconds + out.RecoverySeconds
	out.Files, out.Bytes = run.Files, run.Bytes
	run.Result = event.ResultSuccess
	if err != nil {
		run.Result, run.Error = event.ResultFailed, err.Error()
		out.Error = err.Error()
	}
	out.Result = run.Result
	// The record outlives the host: it goes into the repository.
	if id, serr := saveDrill(ctx, g, run); serr != nil {
		g.ui.Warnf("warning: the drill's record could not be saved: %v\n", serr)
		if err == nil {
			err = serr
		}
	} else {
		out.EventID = id
	}
	if g.json {
		g.ui.JSONLine(out)
	} else if !g.quiet {
		g.ui.Printf("restore drill of base backup %s to %s: %s\n", shortID(out.SnapshotID), out.Target, run.Result)
		g.ui.Printf("restore %s (%s, %s), recovery until accepting connections %s: RTO %s\n",
			restoreTook.Round(time.Millisecond), ui.Count(out.Files, "file", "files"), ui.Bytes(out.Bytes),
			recoveryTook.Round(time.Millisecond), (restoreTook + recoveryTook).Round(time.Millisecond))
		if out.Fetches != nil {
			printFetches(g, out.Fetches.FetchCounts)
		}
		if out.AmcheckOK != nil && *out.AmcheckOK {
			g.ui.Printf("pg_amcheck: no corruption found\n")
		}
		if out.EventID != "" {
			g.ui.Printf("recorded as event %s (rewind events --repo REPO --job '%s')\n", shortID(out.EventID), pgVerifyJob)
		}
	}
	if err != nil {
		return fmt.Errorf("restore drill failed: %w", err)
	}
	return nil
}

// checkReached fails when the drill's recovery stopped before the newest
// WAL segment stored (archiveEnd is its first LSN): a segment before it
// could not be fetched, and PostgreSQL took that as the archive's end.
func checkReached(ctx context.Context, sc *pg.Scratch, archiveEnd wal.LSN, out *PgVerifyJSON) error {
	c, err := pgx.Connect(ctx, sc.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the scratch instance: %w", err)
	}
	defer c.Close(ctx)
	var s string
	if err := c.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		return err
	}
	reached, err := wal.ParseLSN(s)
	if err != nil {
		return err
	}
	out.ReachedLSN, out.ArchiveEndLSN = reached.String(), archiveEnd.String()
	if reached < archiveEnd {
		return fmt.Errorf("recovery stopped at %s, but the repository holds WAL up to segment starting at %s: the segment after %s could not be fetched (missing or corrupt in the repository; rewind pg check --read-data tells which), so a restore now loses what follows", reached, archiveEnd, reached)
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// saveDrill records the drill in the repository's event log.
func saveDrill(ctx context.Context, g *globals, run *event.Run) (string, error) {
	r, done, err := g.openLocked(ctx, lock.Shared, "pg verify", false)
	if err != nil {
		return "", err
	}
	defer done()
	id, err := event.Save(context.WithoutCancel(ctx), r, run)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}
