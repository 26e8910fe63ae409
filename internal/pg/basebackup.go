package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Tag is the tag every base backup gets.
const Tag = "postgres"

// ErrAmcheckFailed: pg_amcheck found corruption, so no backup was taken.
var ErrAmcheckFailed = errors.New("pg_amcheck found corruption")

// ErrDataDirUnreadable: the data directory is not readable on this
// machine, so a local base backup cannot be taken (a streamed one can).
var ErrDataDirUnreadable = errors.New("the data directory cannot be read here")

// BackupOptions control a base backup.
type BackupOptions struct {
	// DSN reaches the server ("": the PG* environment variables).
	DSN string
	// DataDir overrides the server's data_directory, for a server that
	// sees its data directory at another path than this machine does.
	DataDir string
	// Fast asks for an immediate checkpoint at the start.
	Fast bool
	// WaitArchive makes pg_backup_stop wait for archive_command.
	WaitArchive bool
	// Amcheck runs pg_amcheck first; a corruption stops the backup unless
	// AmcheckWarn.
	Amcheck, AmcheckWarn bool
	// Copy records the backup as out of band (PGInfo.Copy): it does not
	// move the WAL retention window.
	Copy bool
	// NoDelta reads every changed file whole instead of only the blocks
	// the WAL since the parent names (WAL-delta, delta.go).
	NoDelta bool
	// BinDir is where pg_amcheck is; "" finds it (FindBin).
	BinDir string
	// Archiver are the options of the backup of the data directory
	// (host, tags, parent, progress, hooks): BaseBackup adds the
	// excludes, the late files and the snapshot's Postgres record.
	Archiver archiver.Options
	Logger   *slog.Logger
}

// BackupResult is a finished base backup.
type BackupResult struct {
	Snapshot *snapshot.Snapshot
	Archiver *archiver.Archiver
	// SlotErr says why no temporary replication slot kept the WAL (nil:
	// one did).
	SlotErr error
}

// Prepare connects and checks that the server can be backed up, without
// touching the repository: a wrong DSN or a server with wal_level
// minimal is refused before anything is stored. The caller closes the
// returned session, or hands it to BaseBackup.
func Prepare(ctx context.Context, opt BackupOptions) (*Conn, *Server, string, error) {
	c, err := Connect(ctx, opt.DSN)
	if err != nil {
		return nil, nil, "", err
	}
	srv, err := c.Info(ctx)
	if err == nil {
		err = srv.CheckBackupable()
	}
	if err != nil {
		c.Close(ctx)
		return nil, nil, "", err
	}
	dir := opt.DataDir
	if dir == "" {
		dir = srv.DataDir
	}
	if dir, err = filepath.Abs(dir); err != nil {
		c.Close(ctx)
		return nil, nil, "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		c.Close(ctx)
		return nil, nil, "", fmt.Errorf("%w: %s (%w): run rewind on the server's machine as its OS user (postgres) or root, give --pgdata where this machine sees it, or take a streamed base backup (--stream)", ErrDataDirUnreadable, dir, err)
	}
	return c, srv, dir, nil
}

// BaseBackup takes a base backup of the server on session c (from
// Prepare) into r and returns the saved snapshot. The data directory is
// read between pg_backup_start and pg_backup_stop; then backup_label,
// tablespace_map and the WAL segments from the start LSN to the stop LSN
// (copied from pg_wal) are added at their places, so that the snapshot
// restores on its own. Every file is cut with the repository's
// small-chunk profile: relation files are rewritten 8 KiB page by page,
// and small chunks find the unchanged pages of the parent's again.
func BaseBackup(ctx context.Context, r *repository.Repository, c *Conn, srv *Server, dataDir string, opt BackupOptions) (*BackupResult, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	info := &snapshot.PGInfo{Method: "local", Version: srv.Version, VersionText: srv.VersionText,
		SystemID: strconv.FormatUint(srv.SystemID, 10), DataDir: dataDir, WALSegmentSize: srv.SegmentSize, Copy: opt.Copy}
	if err := amcheckBefore(ctx, srv, opt, log, info); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp("", "rewind-pg-backup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	info.Label = LabelName(fmt.Sprintf("rewind %s", time.Now().UTC().Format(time.RFC3339)))
	bk, err := c.StartBackup(ctx, srv, info.Label, opt.Fast)
	if err != nil {
		return nil, err
	}
	defer bk.Release(context.WithoutCancel(ctx))
	if bk.SlotErr != nil {
		log.Warn("no temporary replication slot keeps the backup's WAL; a checkpoint during the backup may recycle it", "err", bk.SlotErr)
	}
	ao := opt.Archiver
	var plan *deltaPlan
	if !opt.NoDelta && ao.Parent != nil {
		var tli uint32
		if err := c.c.QueryRow(ctx, `SELECT timeline_id FROM pg_control_checkpoint()`).Scan(&tli); err != nil {
			return nil, fmt.Errorf("read the server's timeline: %w", err)
		}
		plan = planDelta(ctx, r, ao.Parent, srv, dataDir, tli, bk.Start)
		if plan.changes != nil {
			ao.BlockDelta = plan.blockDelta()
			log.Info("WAL-delta: reading only the changed blocks of relation files", "from", plan.info.FromLSN, "to", plan.info.ToLSN, "blocks", plan.info.ChangedBlocks)
		} else {
			log.Warn("WAL-delta not possible; changed relation files are read whole", "reason", plan.info.Fallback)
		}
	}
	var a *archiver.Archiver
	ao.Excludes = append(Excludes(dataDir), ao.Excludes...)
	ao.Tags = appendTag(ao.Tags, Tag)
	ao.LargeFile = 1
	ao.AfterWalk = func(ctx context.Context) ([]archiver.LateFile, error) {
		return stopAndStage(ctx, bk, opt.WaitArchive, dataDir, stage, srv.SegmentSize, info)
	}
	before := ao.BeforeSave
	ao.BeforeSave = func(ctx context.Context, sn *snapshot.Snapshot) error {
		sn.Postgres = info
		if plan != nil {
			st := a.DeltaStats()
			plan.info.Files, plan.info.BytesRead, plan.info.BytesReused = st.Files, st.BytesRead, st.BytesReused
			info.Delta = plan.info
		}
		if before != nil {
			return before(ctx, sn)
		}
		return nil
	}
	a, err = archiver.New(r, ao)
	if err != nil {
		return nil, err
	}
	sn, err := a.Snapshot(ctx, []string{dataDir})
	if err != nil {
		return nil, err
	}
	return &BackupResult{Snapshot: sn, Archiver: a, SlotErr: bk.SlotErr}, nil
}

// stopAndStage stops the backup, copies its WAL from pg_wal and writes
// its label files into stage, and names them as late files of the
// snapshot.
func stopAndStage(ctx context.Context, bk *Backup, wait bool, dataDir, stage string, segSize uint64, info *snapshot.PGInfo) ([]archiver.LateFile, error) {
	st, err := bk.Stop(ctx, wait)
	if err != nil {
		return nil, err
	}
	label, err := ParseLabel(st.Label)
	if err != nil {
		return nil, fmt.Errorf("the server's backup label: %w", err)
	}
	info.Timeline = label.StartTimeline
	info.StartLSN, info.StopLSN = label.StartLSN.String(), st.LSN.String()
	names, err := Segments(label.StartTimeline, label.StartLSN, st.LSN, segSize)
	if err != nil {
		return nil, err
	}
	walDir := filepath.Join(stage, "pg_wal")
	if err := os.Mkdir(walDir, 0o700); err != nil {
		return nil, err
	}
	paths, err := CopyWAL(dataDir, walDir, names)
	if err != nil {
		return nil, err
	}
	bk.Release(ctx)
	info.WALFiles = names
	late := []archiver.LateFile{}
	for i, p := range paths {
		late = append(late, archiver.LateFile{Path: filepath.Join(dataDir, "pg_wal", names[i]), Source: p})
	}
	files := map[string]string{"backup_label": st.Label}
	if st.TablespaceMap != "" {
		files["tablespace_map"] = st.TablespaceMap
		info.TablespaceMap = true
	}
	for name, content := range files {
		p := filepath.Join(stage, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return nil, err
		}
		late = append(late, archiver.LateFile{Path: filepath.Join(dataDir, name), Source: p})
	}
	return late, nil
}

func appendTag(tags []string, t string) []string {
	for _, x := range tags {
		if x == t {
			return tags
		}
	}
	return append(append([]string(nil), tags...), t)
}

// amcheckBefore runs pg_amcheck before a base backup when opt.Amcheck,
// recording its result in info. Corruption fails the backup unless
// opt.AmcheckWarn, which only logs it.
func amcheckBefore(ctx context.Context, srv *Server, opt BackupOptions, log *slog.Logger, info *snapshot.PGInfo) error {
	if !opt.Amcheck {
		return nil
	}
	bin, err := FindBin("pg_amcheck", srv.Major(), opt.BinDir)
	if err != nil {
		return err
	}
	res, err := RunAmcheck(ctx, bin, opt.DSN)
	if err != nil {
		return err
	}
	info.Amcheck = &snapshot.PGAmcheck{OK: res.OK, Output: res.Output}
	if !res.OK {
		if !opt.AmcheckWarn {
			return fmt.Errorf("%w; nothing was backed up (--amcheck-warn backs up anyway and records the result):\n%s", ErrAmcheckFailed, res.Output)
		}
		log.Warn("pg_amcheck found corruption; backing up anyway (--amcheck-warn)", "output", res.Output)
	}
	return nil
}
