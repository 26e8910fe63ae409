package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// TargetKind is what a point-in-time restore recovers to.
type TargetKind string

// The kinds of recovery target (rewind pg restore --at, --lsn, --name,
// --xid; --latest is the end of the archived WAL).
const (
	TargetTime   TargetKind = "time"
	TargetLSN    TargetKind = "lsn"
	TargetName   TargetKind = "name"
	TargetXID    TargetKind = "xid"
	TargetLatest TargetKind = "latest"
)

// Target is the moment a restore recovers to.
type Target struct {
	Kind TargetKind
	// Time is the target of TargetTime: every transaction that committed
	// at or before it is restored.
	Time time.Time
	// LSN is the target of TargetLSN.
	LSN wal.LSN
	// Name (a restore point of pg_create_restore_point) and XID (a
	// transaction ID) are the targets of TargetName and TargetXID.
	Name, XID string
}

// ErrTargetTooEarly: the target is before the end of every usable base
// backup, so no base backup can recover to it.
var ErrTargetTooEarly = errors.New("no base backup ends before the restore target")

// ErrTargetNotReached: PostgreSQL replayed all the WAL it could fetch
// without reaching the recovery target.
var ErrTargetNotReached = errors.New("recovery ended before reaching the restore target")

// FormatTargetTime writes t as recovery_target_time: UTC with an explicit
// offset, in microseconds (PostgreSQL's precision), rounded down so that
// no commit after t is included.
func FormatTargetTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02 15:04:05.000000+00")
}

// ParseXID reads a transaction ID as recovery_target_xid takes it: a
// decimal number, optionally an epoch-qualified 64-bit one.
func ParseXID(s string) (string, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 3 {
		return "", fmt.Errorf("--xid %q is not a transaction ID (a decimal number of 3 or more, as txid_current() returns)", s)
	}
	return strconv.FormatUint(n, 10), nil
}

// Setting returns the recovery_target_* setting for t, or "" for
// TargetLatest (recover to the end of the archived WAL).
func (t Target) Setting() (name, value string) {
	switch t.Kind {
	case TargetTime:
		return "recovery_target_time", FormatTargetTime(t.Time)
	case TargetLSN:
		return "recovery_target_lsn", t.LSN.String()
	case TargetName:
		return "recovery_target_name", t.Name
	case TargetXID:
		return "recovery_target_xid", t.XID
	}
	return "", ""
}

// String describes the target for people.
func (t Target) String() string {
	switch t.Kind {
	case TargetTime:
		return t.Time.Local().Format("2006-01-02 15:04:05.000000 -07:00")
	case TargetLSN:
		return "LSN " + t.LSN.String()
	case TargetName:
		return fmt.Sprintf("restore point %q", t.Name)
	case TargetXID:
		return "transaction " + t.XID
	}
	return "the end of the archived WAL"
}

// BackupEnd returns when the base backup sn had stopped: the snapshot's
// backup end, which is after pg_backup_stop returned. A target time at
// or after it is past the backup's consistent point.
func BackupEnd(sn *snapshot.Snapshot) time.Time {
	if sn.Summary != nil && !sn.Summary.BackupEnd.IsZero() {
		return sn.Summary.BackupEnd
	}
	return sn.Time
}

// ChooseBackup returns the newest base backup of sns (of one cluster,
// oldest first) that can recover to t: for a time, one whose backup ended
// at or before it; for an LSN, one whose stop LSN is at or before it; for
// a restore point, a transaction ID or the end of the WAL, the newest (the
// position of those is known only to recovery). A target before every
// backup's end is refused with ErrTargetTooEarly, naming the earliest
// moment that can be restored.
func ChooseBackup(sns []*snapshot.Snapshot, t Target) (*snapshot.Snapshot, error) {
	if len(sns) == 0 {
		return nil, errors.New("no base backup to restore")
	}
	switch t.Kind {
	case TargetTime:
		var best *snapshot.Snapshot
		for _, sn := range sns {
			if e := BackupEnd(sn); !e.After(t.Time) && (best == nil || e.After(BackupEnd(best))) {
				best = sn
			}
		}
		if best == nil {
			first := sns[0]
			for _, sn := range sns {
				if BackupEnd(sn).Before(BackupEnd(first)) {
					first = sn
				}
			}
			return nil, fmt.Errorf("%w: %s is before the end of the oldest base backup %s; the earliest moment that can be restored is %s (%s)",
				ErrTargetTooEarly, t, first.ID.Short(), BackupEnd(first).Local().Format("2006-01-02 15:04:05.000000 -07:00"),
				BackupEnd(first).UTC().Format(time.RFC3339Nano))
		}
		return best, nil
	case TargetLSN:
		var best *snapshot.Snapshot
		var bestLSN, firstLSN wal.LSN
		var first *snapshot.Snapshot
		for _, sn := range sns {
			stop, err := wal.ParseLSN(sn.Postgres.StopLSN)
			if err != nil {
				continue
			}
			if first == nil || stop < firstLSN {
				first, firstLSN = sn, stop
			}
			if stop <= t.LSN && (best == nil || stop > bestLSN) {
				best, bestLSN = sn, stop
			}
		}
		if best == nil {
			if first == nil {
				return nil, errors.New("no base backup records a readable stop LSN")
			}
			return nil, fmt.Errorf("%w: LSN %s is before the stop LSN of the oldest base backup %s; the earliest LSN that can be restored is %s",
				ErrTargetTooEarly, t.LSN, first.ID.Short(), firstLSN)
		}
		return best, nil
	}
	return sns[len(sns)-1], nil
}

// The server's log messages a point-in-time restore watches for
// (PostgreSQL 13 and later).
const (
	msgNotReached   = "recovery ended before configured recovery target was reached"
	msgBeforeConsis = "requested recovery stop point is before consistent recovery point"
	msgShutdown     = "shutdown at recovery target"
	msgPaused       = "pausing at the end of recovery"
)

// startRecovery starts a restored server that recovers to rc's target
// and waits until recovery has ended: promoted, paused at the target
// (accepting read-only connections), or shut down there. pg_ctl -w alone
// returns as soon as the server accepts connections or is in standby
// mode, in the middle of recovery; so rewind then watches the control
// file (pg_controldata: "in production" once promoted) and the server's
// log (the pause, and why recovery failed) while the server runs.
func startRecovery(ctx context.Context, pgctl, dataDir string, rc Recovery, res *RestoreResult, cred *syscall.Credential) error {
	err := StartServer(ctx, pgctl, dataDir, res.Log, cred)
	if err == nil {
		err = waitRecovered(ctx, filepath.Join(filepath.Dir(pgctl), "pg_controldata"), dataDir, res.Log, rc.Action, cred)
	}
	b, _ := os.ReadFile(res.Log)
	log := string(b)
	res.Stopped = recoveryStops(log)
	switch {
	case err == nil:
		return nil
	case strings.Contains(log, msgNotReached):
		return fmt.Errorf("%w: PostgreSQL replayed all the WAL it could fetch from the repository and stopped (%q in %s); the target is later than the archived WAL, or the restore point or transaction is not in it (or it is before the base backup: name an older one as SNAPSHOT). --latest recovers everything archived; the restored data directory %s is left as it is, for inspection",
			ErrTargetNotReached, msgNotReached, res.Log, dataDir)
	case strings.Contains(log, msgBeforeConsis):
		return fmt.Errorf("the restore target is before the base backup's consistent point (%q in %s): name an older base backup as SNAPSHOT", msgBeforeConsis, res.Log)
	case rc.Action == "shutdown" && strings.Contains(log, msgShutdown):
		res.ShutDown = true
		return nil
	}
	return err
}

// errServerGone: the server stopped while rewind waited for recovery.
var errServerGone = errors.New("the restored server stopped during recovery")

// waitRecovered waits until the server at dataDir has ended recovery
// (its control file says "in production"), or with the pause action
// logs that it paused at the target, or stops.
func waitRecovered(ctx context.Context, controldata, dataDir, logFile, action string, cred *syscall.Credential) error {
	for {
		b, _ := os.ReadFile(logFile)
		if action == "pause" && strings.Contains(string(b), msgPaused) {
			return nil
		}
		if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w; last lines of its log (%s):\n%s", errServerGone, logFile, lastLines(string(b), 15))
		}
		out, err := runAs(ctx, cred, dataDir, controldata, "-D", dataDir)
		if err != nil {
			return err
		}
		if action != "pause" && strings.Contains(out, "in production") {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// recoveryStops returns the log lines saying where recovery stopped.
func recoveryStops(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "recovery stopping") || strings.Contains(l, "last completed transaction was at log time") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}
