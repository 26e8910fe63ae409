package pitr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Options say how Run restores.
type Options struct {
	// Target is the new data directory (absent or empty).
	Target string
	// Owner owns it (nil: the owner the backup recorded, as root).
	Owner *mysql.Owner
	// Method is the replay method (default mysql.ReplayReplica).
	Method mysql.ReplayMethod
	// Scratch is where the binary log files and the scratch server's
	// private folder go ("": TMPDIR).
	Scratch string
	// KeepRunning leaves the scratch server running on Target after the
	// replay (or, without one, starts it): Result.Server, which the
	// caller closes.
	KeepRunning bool
	MariaBackup string
	Logger      *slog.Logger
	Progress    func(files, bytes int64)
}

// Result says what Run did and how long each phase took.
type Result struct {
	Base   *mysql.BaseInfo
	Replay *mysql.ReplayResult
	// Files are the binary log files the replay read.
	Files int
	// Restore, Prepare, Materialize, Start, Apply and Shutdown are the
	// phases' durations (zero when a phase did not run).
	Restore, Prepare, Materialize, Start, Apply, Shutdown time.Duration
	// Server is the running scratch server with KeepRunning.
	Server *mysql.Scratch
}

// Run carries out the plan p: the backup restored into opt.Target and
// prepared, the binary log replayed through a scratch server, which is
// shut down cleanly (unless KeepRunning), so that Target is a data
// directory nothing runs on. On error, the scratch server is stopped; the
// target is left for the caller to remove.
func Run(ctx context.Context, r *repository.Repository, cat *binlog.Catalog, p *Plan, opt Options) (_ *Result, err error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := &Result{}
	base, err := mysql.RestoreBase(ctx, r, p.Snapshot, opt.Target, mysql.RestoreBaseOptions{Owner: opt.Owner, MariaBackup: opt.MariaBackup, Logger: log, Progress: opt.Progress})
	if base != nil {
		res.Base, res.Restore, res.Prepare = base, base.Restore, base.Prepare
	}
	if err != nil {
		return res, err
	}
	if !p.Replays() && !opt.KeepRunning {
		return res, nil
	}
	uid, gid := ownerOf(base.DataDir)
	sopt := mysql.ScratchOptions{Parent: opt.Scratch, Avoid: []uint32{p.Snapshot.MySQL.ServerID}, Replay: true, Logger: log}
	var files []string
	if p.Replays() {
		if p.Source != nil {
			sopt.Avoid = append(sopt.Avoid, p.Source.ServerID)
		}
		dir, err := os.MkdirTemp(opt.Scratch, "rewind-binlog-")
		if err != nil {
			return res, fmt.Errorf("a folder for the binary log files: %w; give --scratch DIR with room for them", err)
		}
		defer os.RemoveAll(dir)
		t0 := time.Now()
		files, err = binlog.Materialize(ctx, r, cat, binlog.Position{File: p.From.File, Pos: p.From.Pos}, *p.Stop, dir)
		res.Materialize, res.Files = time.Since(t0), len(files)
		if err != nil {
			return res, err
		}
		if opt.Method != mysql.ReplayPipe {
			if sopt.RelayLog, err = mysql.RelayLogs(files, uid, gid); err != nil {
				return res, err
			}
		}
	}
	t0 := time.Now()
	sc, err := mysql.StartScratch(ctx, base.DataDir, sopt)
	res.Start = time.Since(t0)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil || !opt.KeepRunning {
			t0 := time.Now()
			if cerr := sc.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			res.Shutdown = time.Since(t0)
			res.Server = nil
		}
	}()
	res.Server = sc
	if p.Replays() {
		stop := mysql.BinlogPos{File: p.Stop.File, Pos: p.Stop.Pos}
		rr, err := mysql.Replay(ctx, sc, mysql.ReplayOptions{Method: opt.Method, Files: files, From: p.From, Stop: stop})
		if rr != nil {
			res.Replay, res.Apply = rr, rr.Took
		}
		if err != nil {
			return res, err
		}
		log.Info("replayed", "method", rr.Method, "to", rr.Reached, "gtid", rr.GTID, "took", rr.Took)
	}
	return res, nil
}

// ownerOf returns the uid and gid owning path, the user the scratch
// server runs as (-1, -1 when rewind is not root: the files stay its own).
func ownerOf(path string) (int, int) {
	if os.Geteuid() != 0 {
		return -1, -1
	}
	fi, err := os.Stat(path)
	if err != nil {
		return -1, -1
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}
