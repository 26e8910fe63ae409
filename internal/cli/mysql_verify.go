package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/mysql/pitr"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// The event a MariaDB restore drill records (docs/MYSQL.md, "Drills").
const (
	mysqlVerifyJob  = "mysql verify"
	mysqlVerifyKind = "mysql-verify"
)

// MysqlVerifyJSON is `mysql verify --json` (docs/JSON.md).
type MysqlVerifyJSON struct {
	Result         string         `json:"result"`
	Error          string         `json:"error,omitempty"`
	SnapshotID     string         `json:"snapshot_id,omitempty"`
	Target         string         `json:"target"`
	Stop           *MysqlStopJSON `json:"stop,omitempty"`
	RestoreSeconds float64        `json:"restore_seconds"`
	ReplaySeconds  float64        `json:"replay_seconds"`
	CheckSeconds   float64        `json:"check_seconds"`
	RTOSeconds     float64        `json:"rto_seconds"`
	Files          int64          `json:"files"`
	Bytes          int64          `json:"bytes"`
	Tables         int            `json:"tables"`
	CheckOK        *bool          `json:"check_ok,omitempty"`
	CheckFailed    []string       `json:"check_failed,omitempty"`
	EventID        string         `json:"event_id,omitempty"`
}

func newMysqlVerifyCmd(g *globals) *cobra.Command {
	o := &mysqlRestoreOpts{}
	cmd := &cobra.Command{
		Use:   "verify [--at T | --gtid G | --latest | SNAPSHOT]",
		Short: "Restore drill: restore into a scratch server, run mariadb-check, record the result and the time",
		Long: `A restore drill. The newest point (--latest, the default: the newest
backup and the binary log to the newest transaction stored; or a target as
for mysql restore) is restored into a private folder (--scratch, default
TMPDIR) as mysql restore --table does: the backup restored and prepared,
the binary log replayed through a scratch server (private socket, no
networking). Then mariadb-check --all-databases --check checks every
table, the server is shut down and the folder removed.

A binary log that does not reach the target (a gap, a missing or damaged
piece in the repository) fails the drill, as does a table mariadb-check
reports with an error.

The drill is recorded in the repository's event log as job "mysql verify"
(kind mysql-verify): its result, the reason when it failed, the backup,
and the steps restore, replay and check with their durations. rewind
events --repo REPO --job 'mysql verify' lists them. Exit status 1 when the
drill fails, with the reason.`,
		Example: `  rewind mysql verify
  rewind mysql verify --at '2026-12-07 10:31:05' --scratch /srv/drill --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runMysqlVerify(cmd, g, o, args) },
	}
	f := cmd.Flags()
	o.targetFlags(f)
	f.StringVar(&o.owner, "owner", "", "OS `user` that runs the scratch server (default: the one the backup recorded, as root; else yourself)")
	return cmd
}

func runMysqlVerify(cmd *cobra.Command, g *globals, o *mysqlRestoreOpts, args []string) error {
	ctx := cmd.Context()
	if len(args) == 0 && o.at == "" && o.gtid == "" {
		o.latest = true
	}
	t, what, err := o.binlogTarget(time.Now())
	if err != nil {
		return err
	}
	method, err := mysql.ParseReplayMethod(o.replay)
	if err != nil {
		return err
	}
	if what == "" {
		what = "the backup's consistent point"
	}
	host, _ := os.Hostname()
	run := &event.Run{Host: host, Job: mysqlVerifyJob, Kind: mysqlVerifyKind, Trigger: "manual", Start: time.Now(), Attempt: 1}
	out := MysqlVerifyJSON{Target: what}
	r, unlock, err := g.openLocked(ctx, lock.Shared, "mysql verify", true)
	if err != nil {
		return err
	}
	p, cat, err := mysqlPlan(ctx, g, r, o, args, t)
	if err != nil && p == nil && !isCoverage(err) {
		// No backup, bad flags: no drill ran.
		unlock()
		return err
	}
	step := func(kind string, d time.Duration, err error) {
		s := event.Step{Phase: "job", Kind: kind, Result: event.ResultSuccess, Duration: d}
		if err != nil {
			s.Result, s.Error = event.ResultFailed, err.Error()
		}
		run.Steps = append(run.Steps, s)
	}
	var restoreTook, replayTook, checkTook time.Duration
	if err != nil {
		// The binary log does not reach the target: the drill fails.
		step("restore", 0, err)
	} else {
		run.Snapshot, out.SnapshotID = p.Snapshot.ID.String(), p.Snapshot.ID.String()
		if p.Replays() {
			s := p.Stop
			out.Stop = &MysqlStopJSON{Source: s.Source, File: s.File, Pos: s.Pos, GTID: s.GTID, Time: s.Time}
		}
		res, cleanup, rerr := scratchRestoreMysql(ctx, g, r, cat, p, o, method)
		err = rerr
		if res != nil {
			restoreTook = res.Restore + res.Prepare
			replayTook = res.Materialize + res.Start + res.Apply
			if res.Base != nil && res.Base.Stats != nil {
				run.Files, run.Bytes = int64(res.Base.Stats.Files), res.Base.Stats.Bytes
			}
		}
		if res == nil || res.Base == nil {
			step("restore", restoreTook, err)
		} else {
			step("restore", restoreTook, nil)
			if p.Replays() || err != nil {
				step("replay", replayTook, err)
			}
		}
		if err == nil {
			t0 := time.Now()
			var cr *mysql.CheckResult
			cr, err = res.Server.CheckAll(ctx, "")
			checkTook = time.Since(t0)
			if err == nil {
				out.CheckOK, out.Tables, out.CheckFailed = &cr.OK, cr.Tables, cr.Failed
				if !cr.OK {
					err = fmt.Errorf("mariadb-check found %s with errors in the restored data: %s", ui.Count(int64(len(cr.Failed)), "problem", "problems"), strings.Join(cr.Failed, "; "))
				}
			}
			step("check", checkTook, err)
		}
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}
	unlock()
	run.End = time.Now()
	out.RestoreSeconds, out.ReplaySeconds, out.CheckSeconds = restoreTook.Seconds(), replayTook.Seconds(), checkTook.Seconds()
	out.RTOSeconds = out.RestoreSeconds + out.ReplaySeconds
	out.Files, out.Bytes = run.Files, run.Bytes
	run.Result = event.ResultSuccess
	if err != nil {
		run.Result, run.Error = event.ResultFailed, err.Error()
		out.Error = err.Error()
	}
	out.Result = run.Result
	if id, serr := saveMysqlDrill(ctx, g, run); serr != nil {
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
		g.ui.Printf("restore drill of backup %s to %s: %s\n", shortID(out.SnapshotID), what, run.Result)
		g.ui.Printf("restore and prepare %s (%s, %s), binary log replay %s: RTO %s\n",
			restoreTook.Round(time.Millisecond), ui.Count(out.Files, "file", "files"), ui.Bytes(out.Bytes),
			replayTook.Round(time.Millisecond), (restoreTook + replayTook).Round(time.Millisecond))
		if out.CheckOK != nil && *out.CheckOK {
			g.ui.Printf("mariadb-check: %s checked, no errors (%s)\n", ui.Count(int64(out.Tables), "table", "tables"), checkTook.Round(time.Millisecond))
		}
		if out.EventID != "" {
			g.ui.Printf("recorded as event %s (rewind events --repo REPO --job '%s')\n", shortID(out.EventID), mysqlVerifyJob)
		}
	}
	if err != nil {
		return fmt.Errorf("restore drill failed: %w", err)
	}
	return nil
}

// isCoverage tells whether err says the stored binary log does not reach
// the target (a failed drill, not a usage error).
func isCoverage(err error) bool {
	return errors.Is(err, binlog.ErrNotCovered) || errors.Is(err, pitr.ErrBeforeFirstBackup)
}

// saveMysqlDrill records the drill in the repository's event log.
func saveMysqlDrill(ctx context.Context, g *globals, run *event.Run) (string, error) {
	r, done, err := g.openLocked(ctx, lock.Shared, "mysql verify", false)
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
