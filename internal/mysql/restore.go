package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Owner is an OS user and group to give restored files to.
type Owner struct{ UID, GID int }

// RestoreBaseOptions control RestoreBase.
type RestoreBaseOptions struct {
	// Owner owns the restored data directory; nil is the owner the
	// backup recorded when running as root, else the current user.
	Owner *Owner
	// MariaBackup is the mariabackup program ("": FindMariaBackup).
	MariaBackup string
	// UseMemory is mariabackup --prepare's --use-memory ("1G"); "" is
	// mariabackup's default (100M).
	UseMemory string
	Logger    *slog.Logger
	// Progress, when set, counts restored files and bytes.
	Progress func(files, bytes int64)
}

// BaseInfo is a restored, prepared physical backup: a data directory
// consistent at the backup's consistent point, which binlog replay
// continues from.
type BaseInfo struct {
	// DataDir is the restored data directory (the target, absolute).
	DataDir string
	// Snapshot is the backup restored and Info its record.
	Snapshot *snapshot.Snapshot
	Info     *snapshot.MySQLInfo
	// BinlogFile, BinlogPos and GTID are the consistent point (empty when
	// the server had no binary log); Time the backup's consistent time.
	BinlogFile string
	BinlogPos  uint64
	GTID       string
	Time       time.Time
	// Stats are the restorer's; Restore and Prepare how long the two
	// steps took.
	Stats            *restorer.Stats
	Restore, Prepare time.Duration
}

// ErrLogicalBackup: the snapshot is a dump, restored by loading it.
var ErrLogicalBackup = errors.New("a logical backup (mariadb-dump) is restored by loading the dump into a running server, not as a data directory")

// ErrNotMySQLBackup: the snapshot was not made by rewind mysql backup.
var ErrNotMySQLBackup = errors.New("not a MariaDB/MySQL backup")

// RestoreBase writes the data directory of the physical backup sn into
// target (absent or an empty folder), runs mariabackup --prepare on it,
// and gives it to the server's user: a data directory nothing runs on,
// ready for `mariadbd --datadir TARGET`, at the backup's consistent
// point. A failure leaves what was written in target.
func RestoreBase(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, target string, opt RestoreBaseOptions) (*BaseInfo, error) {
	info := sn.MySQL
	if info == nil {
		return nil, fmt.Errorf("snapshot %s: %w (made by rewind mysql backup); restore its files with rewind restore", sn.ID.Short(), ErrNotMySQLBackup)
	}
	if info.Method == snapshot.MySQLLogical {
		return nil, fmt.Errorf("snapshot %s: %w (it is %s in the snapshot)", sn.ID.Short(), ErrLogicalBackup, info.DumpPath)
	}
	if info.Method != snapshot.MySQLPhysical {
		return nil, fmt.Errorf("snapshot %s: unknown MariaDB backup method %q", sn.ID.Short(), info.Method)
	}
	bin, err := FindMariaBackup(opt.MariaBackup)
	if err != nil {
		return nil, err
	}
	target, err = filepath.Abs(target)
	if err != nil {
		return nil, err
	}
	if err := checkEmptyTarget(target); err != nil {
		return nil, err
	}
	root := os.Geteuid() == 0
	rs, err := restorer.New(r, restorer.Options{Target: target, Owner: root, Logger: opt.Logger, Progress: opt.Progress})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	st, err := rs.Restore(ctx, sn, info.DataDir)
	if err != nil {
		return nil, fmt.Errorf("restore the data directory of snapshot %s into %s: %w", sn.ID.Short(), target, err)
	}
	t1 := time.Now()
	if err := Prepare(ctx, bin, target, opt.UseMemory); err != nil {
		return nil, err
	}
	t2 := time.Now()
	owner := opt.Owner
	if owner == nil && root && (info.UID != 0 || info.GID != 0) {
		owner = &Owner{UID: int(info.UID), GID: int(info.GID)}
	}
	if owner != nil {
		if err := chownTree(target, owner.UID, owner.GID); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(target, 0o700); err != nil {
		return nil, err
	}
	return &BaseInfo{DataDir: target, Snapshot: sn, Info: info, BinlogFile: info.BinlogFile, BinlogPos: info.BinlogPos,
		GTID: info.GTID, Time: info.BackupEnd, Stats: st, Restore: t1.Sub(t0), Prepare: t2.Sub(t1)}, nil
}

// checkEmptyTarget accepts a target that is absent or an empty folder.
func checkEmptyTarget(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore target %s: %w", dir, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("restore target %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("restore target %s is not a folder; give a new or empty folder", dir)
	}
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("restore target %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("restore target %s is not empty (it holds %s); give a new or empty folder, so that no data directory is overwritten", dir, names[0])
	}
	return nil
}

// chownTree gives dir and everything in it to uid:gid (what
// mariabackup --prepare made as root included).
func chownTree(dir string, uid, gid int) error {
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("give the restored data directory to its user: %w", err)
	}
	return nil
}
