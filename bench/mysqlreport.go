package main

// The MariaDB section's report: targets, raw figures, and its place in
// BENCHMARKS.md (-mysql only and -mysql-render replace it in place).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Rows of the targets table.
const (
	myTargetBackup  = "1 GB sysbench-style database: `mysql backup` time, against `mariabackup --backup` + `restic backup`"
	myTargetRestore = "restore to T after the writes, until the server accepts connections, against restore + `mariadb-binlog --stop-datetime T \\| mariadb`"
	myTargetRPO     = "binlog RPO under steady writes (commit to event stored), p99"
)

// backupRatioMax is issue 13's target for the backup time ratio.
const backupRatioMax = 0.8

func fmtStep(s *myStep) string {
	if s == nil {
		return "–"
	}
	return fmtSample(s.Total)
}

func phases(s *myStep) string {
	if s == nil {
		return "–"
	}
	var parts []string
	for _, p := range s.Phases {
		parts = append(parts, fmt.Sprintf("%s %s", p.Name, fmtSecs(p.Sample.Wall.Seconds())))
	}
	return strings.Join(parts, "; ")
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// notRun is the "met" cell of a measure rewind did not run.
func (s *mySide) notRun(step string) string {
	if why, ok := s.NotRun[step]; ok {
		return "not run: " + why
	}
	return "not run"
}

// markdown renders the section.
func (rep *myReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n", myTitle)
	size := fmt.Sprintf("%d MB", rep.SizeMB)
	if rep.SizeMB >= 1024 {
		size = fmt.Sprintf("%.0f GB", float64(rep.SizeMB)/1024)
	}
	fmt.Fprintf(&b, "From the run of %s (took %s; load average %s at the start, %s at the end, on a machine shared with other work). "+
		"One round: each figure is one measurement, so read ratios near a target as noisy.\n\n",
		rep.Started.UTC().Format("2006-01-02 15:04 MST"), rep.Finished.Sub(rep.Started).Round(time.Second), rep.LoadStart, rep.LoadEnd)
	if rep.Smoke {
		b.WriteString("**A smoke run (`-smoke`): tiny database and a few seconds of writes; the figures say only that every step runs.**\n\n")
	}
	fmt.Fprintf(&b, "- Machine: %s.\n", rep.Machine)
	fmt.Fprintf(&b, "- Versions: %s; %s; %s; rewind %s.\n", rep.Versions["mariadb"], rep.Versions["mariabackup"], rep.Versions["restic"],
		strings.TrimPrefix(rep.Versions[myRewind], "rewind "))
	fmt.Fprintf(&b, "- Database (-mysql-size %s): sysbench-style, %d tables `sbtest1..%d` of %s rows (`id INT` primary key, `k INT` indexed, `c CHAR(120)`, `pad CHAR(60)`, "+
		"filled as sysbench's prepare does, from a fixed seed): %s in their files, %s in the whole data directory (InnoDB's redo log, undo and system tablespace with them), loaded in %s without binary logging. "+
		"One server per run, MariaDB's defaults except: binary log on (`ROW`, `gtid_strict_mode`), `sync_binlog=1`, `innodb_flush_log_at_trx_commit=1`, "+
		"a private socket and port. Both sides back up the same idle server, then the same writes run once, and both restore to the same T from them.\n",
		size, rep.Tables, rep.Tables, fmtCount(rep.Rows), fmtBytes(float64(rep.TableBytes)), fmtBytes(float64(rep.DBBytes)), rep.LoadTook.Round(time.Second))
	b.WriteString("- Backup. rewind: `rewind mysql backup` (mariabackup's stream stored directly, repository defaults), while `rewind mysql binlog receive` (its defaults: `--flush-interval 1s`) runs. " +
		"Peer, the way users combine them today: `mariabackup --backup --target-dir DIR`, then `restic backup DIR` (restic's defaults: compression auto), on the same disk; " +
		"the time is the sum of both. Before each timed step the page cache holds its inputs (data directory, repository).\n")
	fmt.Fprintf(&b, "- Writes: %s of a sysbench-like write-only load (per transaction: an indexed update, a non-indexed update, a delete and an insert of the same id, "+
		"in a random table), %d clients at %d transactions/s in all (issue 13 says 30 minutes; `-mysql-writes` sets it), "+
		"beside a sampler committing a row every 20 ms. The moment T comes %s into the writes: the writers pause, T is the next whole second, "+
		"the database's checksum is taken, and the writers resume 1.3 s after T, so that no commit has a binlog time within a second of T "+
		"(binlog times are whole seconds; rewind replays \"at or before T\", mariadb-binlog stops \"before T\").\n",
		rep.Writes.Round(time.Second), rep.Clients, rep.Rate, rep.BeforeT.Round(time.Second))
	b.WriteString("- Restore to T, server stopped first. Peer: `restic restore`, `mariabackup --prepare`, `mariabackup --move-back` into the new data directory, `chown -R mysql`, " +
		"`mariadbd` started until it accepts connections, then `mariadb-binlog --start-position` (the backup's, from its binlog info) `--stop-datetime T` of the server's binlog files, piped into `mariadb`, until done. " +
		"rewind: `rewind mysql restore --at T --target DIR` (its defaults: the backup restored and prepared, then the binlog applied by a scratch server as a replica, " +
		"without binary log and with `innodb_flush_log_at_trx_commit=0` while it replays, shut down cleanly at the end), `chown -R mysql` (rewind already gives the files to mysql), " +
		"`mariadbd` started until it accepts connections. " +
		"Both restored servers have the source's settings; the peer's pipe is applied by that server as users run it (binary log on, `sync_binlog=1`, a flush per commit): " +
		"`mariadb-binlog --disable-log-bin` or relaxed durability would shorten it and are not measured. " +
		"CPU is the tools' processes and the children they wait for (rewind's scratch server included, the peer's server applying the pipe not). " +
		"Untimed afterwards: `CHECKSUM TABLE` of every table must be the one at T.\n")
	b.WriteString("- RPO: the sampler reads `@@last_gtid` and `SHOW MASTER STATUS` right after each commit returns; a commit's RPO is the time to the receiver's first store " +
		"that covers it (its `--stats` file: one line per store with the time and the GTID position stored). No peer stores the binlog as it is written (a cron job copies closed files), so this row has no peer figure.\n")

	rw, peer := rep.Sides[myRewind], rep.Sides[myPeer]
	b.WriteString("\n### MariaDB: targets (issue 13)\n\n| measure | target | rewind | peer | rewind / peer | met |\n|---|---|---:|---:|---:|---|\n")
	ratioRow := func(what, target string, step string, a, c *myStep, ok func(x float64) bool) {
		x, met := "–", rw.notRun(step)
		if a != nil && c != nil && c.Total.Wall > 0 {
			r := a.Total.Wall.Seconds() / c.Total.Wall.Seconds()
			x, met = fmtRatio(r), yesNo(ok(r))
		} else if a != nil {
			met = "not measured"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", what, target, fmtStep(a), fmtStep(c), x, met)
	}
	ratioRow(myTargetBackup, fmt.Sprintf("≤ %.1f×", backupRatioMax), "backup", rw.Backup, peer.Backup, func(x float64) bool { return x <= backupRatioMax })
	ratioRow(myTargetRestore, "< 1.0×", "restore", rw.Restore, peer.Restore, func(x float64) bool { return x < 1 })
	rpo, met := "–", "not run: "+rep.RPONotRun
	if r := rep.RPO; r != nil {
		rpo = fmtDur(r.P99)
		met = yesNo(r.P99 <= time.Second && r.Missing == 0)
		if r.Missing > 0 {
			rpo += fmt.Sprintf(" (%d of %d sampled commits never stored)", r.Missing, r.Samples)
		}
	}
	fmt.Fprintf(&b, "| %s | ≤ 1 s | %s | – | – | %s |\n", myTargetRPO, rpo, met)

	b.WriteString("\n### MariaDB: raw figures\n\n| figure | rewind | peer |\n|---|---:|---:|\n")
	row := func(name string, f func(s *mySide) string) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, f(rw), f(peer))
	}
	row("backup: wall (CPU)", func(s *mySide) string { return fmtStep(s.Backup) })
	row("backup: phases", func(s *mySide) string { return phases(s.Backup) })
	row("backup: peak RSS", func(s *mySide) string {
		if s.Backup == nil {
			return "–"
		}
		return fmt.Sprintf("%.0f MiB", float64(s.Backup.Total.RSS)/(1<<20))
	})
	row("repository after the backup", func(s *mySide) string {
		if s.Backup == nil {
			return "–"
		}
		return fmtBytes(float64(s.RepoAfterBackup))
	})
	row("mariabackup's local copy, kept on disk", func(s *mySide) string {
		if s.LocalCopy == 0 {
			return "–"
		}
		return fmtBytes(float64(s.LocalCopy))
	})
	row("repository after the writes (rewind: received binlogs in it)", func(s *mySide) string {
		if s.RepoAfterWrites == 0 {
			return "–"
		}
		return fmtBytes(float64(s.RepoAfterWrites))
	})
	row("the server's binlog files the peer replays from", func(s *mySide) string {
		if s.Binlogs == 0 {
			return "–"
		}
		return fmtBytes(float64(s.Binlogs))
	})
	fmt.Fprintf(&b, "| writes: transactions (TPS achieved) | %s (%.0f TPS) | same |\n", fmtCount(rep.Txns), rep.TPS)
	row("restore to T: wall (CPU of the tools)", func(s *mySide) string { return fmtStep(s.Restore) })
	row("restore to T: phases", func(s *mySide) string { return phases(s.Restore) })
	row("restore to T: peak RSS", func(s *mySide) string {
		if s.Restore == nil {
			return "–"
		}
		return fmt.Sprintf("%.0f MiB", float64(s.Restore.Total.RSS)/(1<<20))
	})
	row("restored database checked against T", func(s *mySide) string {
		if s.Restore == nil {
			return "–"
		}
		return "yes"
	})
	if r := rep.RPO; r != nil {
		fmt.Fprintf(&b, "| binlog RPO: p50 / p99 / max | %s / %s / %s | – |\n", fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max))
		fmt.Fprintf(&b, "| binlog RPO: commits sampled; never stored; stores during the writes | %s; %d; %s | – |\n",
			fmtCount(r.Samples), r.Missing, fmtCount(r.Stores))
	} else {
		fmt.Fprintf(&b, "| binlog RPO: p50 / p99 / max | not run: %s | – |\n", rep.RPONotRun)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// mysqlOnlyRun runs the section alone (-mysql only): printed, and
// replaced in -out, the rest of the report as it was.
func mysqlOnlyRun(ctx context.Context, log *slog.Logger, cfg config, root, tmp, dataDir, shm string) error {
	tools, err := prepareTools(ctx, log, cfg, root, tmp)
	if err != nil {
		return err
	}
	if rewindBin(tools) == "" {
		return errors.New("-mysql only needs rewind")
	}
	h := &harness{cfg: cfg, log: log, tools: tools, runs: filepath.Join(dataDir, "runs"), shm: shm, res: newResults(), started: time.Now()}
	h.res.machine = machineInfo(dataDir)
	if err := os.MkdirAll(filepath.Join(h.runs, "logs"), 0o755); err != nil {
		return err
	}
	if err := h.mysql(ctx); err != nil {
		return err
	}
	if h.res.MySQL == nil {
		return errors.New("the MariaDB section did not run: " + strings.Join(h.res.Notes, "; "))
	}
	return writeTitled(cfg.out, myTitle, h.res.MySQL.markdown())
}

// renderMySQL rewrites the section of out (default BENCHMARKS.md) from a
// saved mysql.json, without measuring.
func renderMySQL(ctx context.Context, from, out string) error {
	return renderSaved(ctx, from, out, myTitle, &myReport{})
}
