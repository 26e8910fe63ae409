package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// CheckTarget accepts a restore target that is absent or an empty
// folder, and refuses anything else: a restore never writes into a data
// directory that holds something.
func CheckTarget(dir string) error {
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

// Recovery is the recovery configuration a restored data directory gets.
type Recovery struct {
	// RestoreCommand, when set, is restore_command: how the server fetches
	// WAL from an archive. Without it the server replays only the WAL
	// the backup holds in pg_wal.
	RestoreCommand string
	// Target is a recovery_target_* setting name ("recovery_target",
	// "recovery_target_time", "recovery_target_lsn",
	// "recovery_target_name", "recovery_target_xid") and TargetValue its
	// value ("immediate" for recovery_target: the end of the backup).
	Target, TargetValue string
	// Inclusive writes recovery_target_inclusive = true: recovery stops
	// just after the target (a transaction committed at the target time
	// is restored), not just before it.
	Inclusive bool
	// Action is recovery_target_action: "promote", "pause" or "shutdown".
	Action string
	// Timeline is recovery_target_timeline ("latest", "current" or a
	// number); "" leaves PostgreSQL's default (latest).
	Timeline string
	// ArchiveOff writes archive_mode = off, so that the restored cluster
	// does not archive into the original's WAL archive.
	ArchiveOff bool
	// Port and SocketDir, when set, are port and unix_socket_directories,
	// so that the restored cluster can run beside the original.
	Port      int
	SocketDir string
	// Private writes listen_addresses = '' (no TCP: only the unix
	// socket in SocketDir) and, with HBAFile, hba_file: a scratch
	// instance that nothing but rewind can reach (scratch.go).
	Private bool
	HBAFile string
}

// WriteRecovery appends the recovery settings to postgresql.auto.conf in
// the restored data directory dataDir, and with a RestoreCommand writes
// recovery.signal (archive recovery to the target). The
// files get uid and gid as owner when uid is not -1.
func WriteRecovery(dataDir string, rc Recovery, uid, gid int) error {
	var b strings.Builder
	b.WriteString("\n# Written by rewind pg restore: recovery of the restored base backup.\n")
	set := func(name, value string) { fmt.Fprintf(&b, "%s = %s\n", name, QuoteConf(value)) }
	if rc.RestoreCommand != "" {
		set("restore_command", rc.RestoreCommand)
	}
	if rc.Target != "" {
		set(rc.Target, rc.TargetValue)
		if rc.Inclusive {
			b.WriteString("recovery_target_inclusive = true\n")
		}
	}
	if rc.Action != "" {
		set("recovery_target_action", rc.Action)
	}
	if rc.Timeline != "" {
		set("recovery_target_timeline", rc.Timeline)
	}
	if rc.ArchiveOff {
		b.WriteString("archive_mode = off\n")
	}
	if rc.Port > 0 {
		fmt.Fprintf(&b, "port = %s\n", strconv.Itoa(rc.Port))
	}
	if rc.SocketDir != "" {
		set("unix_socket_directories", rc.SocketDir)
	}
	if rc.Private {
		set("listen_addresses", "")
		if rc.HBAFile != "" {
			set("hba_file", rc.HBAFile)
		}
	}
	auto := filepath.Join(dataDir, "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write the recovery settings: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write the recovery settings: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write the recovery settings: %w", err)
	}
	files := []string{auto}
	if rc.RestoreCommand != "" {
		// Archive recovery: PostgreSQL refuses recovery.signal without a
		// restore_command ("must specify restore_command").
		sig := filepath.Join(dataDir, "recovery.signal")
		if err := os.WriteFile(sig, nil, 0o600); err != nil {
			return fmt.Errorf("write recovery.signal: %w", err)
		}
		files = append(files, sig)
	}
	if uid != -1 {
		for _, p := range files {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("give %s to the cluster's user: %w", p, err)
			}
		}
	}
	return nil
}

// QuoteConf quotes s as a postgresql.conf string value.
func QuoteConf(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Chown gives the restored data directory and everything in it to the
// cluster's OS user, and makes the directory itself mode 0700, as the
// server requires.
func Chown(dataDir string, uid, gid int) error {
	err := filepath.WalkDir(dataDir, func(p string, _ os.DirEntry, err error) error {
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

// RestoreOptions control the restore of a base backup.
type RestoreOptions struct {
	// Target is the new data directory: absent or empty.
	Target string
	// UID and GID own the restored files (the cluster's OS user); -1
	// keeps what the restore wrote (the current user, or as root the
	// owners the snapshot recorded).
	UID, GID int
	// Port and SocketDir, when set, are written to postgresql.auto.conf.
	Port      int
	SocketDir string
	// Recovery is the point-in-time recovery to write (restore_command,
	// target, action); its Port and SocketDir are set from the fields
	// above. Without a RestoreCommand the server replays only the WAL the
	// backup holds.
	Recovery Recovery
	// Start runs pg_ctl start -w as the owner once the directory is ready;
	// BinDir is where pg_ctl is ("": FindBin).
	Start  bool
	BinDir string
	Logger *slog.Logger
	// Progress, when set, counts restored files and bytes.
	Progress func(files, bytes int64)
	// Delta restores over the existing, stopped data directory Target
	// (CheckDeltaTarget): files that hold the backup's bytes are kept,
	// others rewritten chunk by chunk, and what the backup does not list
	// is removed (docs/POSTGRES.md, "Restoring over an existing directory").
	Delta bool
	// Prespool, when set, writes the WAL recovery will ask for into the
	// spool folder it is given (wal.Prespool), in parallel with the
	// restore of the files: into a temporary folder beside Target, moved
	// to pg_wal/.rewind-prefetch once both are done (or, when that
	// folder cannot be made, into the spool after the restore). Its
	// failure does not fail the restore (wal-fetch reads what is
	// missing): it is RestoreResult.PrespoolErr.
	Prespool func(ctx context.Context, dir string) error
}

// RestoreResult is a finished restore.
type RestoreResult struct {
	Stats *restorer.Stats
	// Log is the server's log file when it was started.
	Log string
	// Stopped are the server's log lines saying where recovery stopped
	// ("recovery stopping before commit of transaction ...") when it was
	// started for a point-in-time restore.
	Stopped []string
	// ShutDown is true when recovery reached its target and the server
	// shut down there (recovery_target_action = shutdown).
	ShutDown bool
	// Delta is what a delta restore kept and rewrote (nil otherwise).
	Delta *DeltaStats
	// PrespoolErr is why the pre-spool (RestoreOptions.Prespool) did not
	// spool everything it planned; nil when it did or did not run.
	PrespoolErr error
	// Prespooled counts the segments the pre-spool wrote (set by its
	// caller, which ran it).
	Prespooled int
	// Fetches counts what the server's restore_command (wal-fetch) did,
	// read from its log once recovery has ended.
	Fetches FetchCounts
}

// FetchCounts are the wal-fetch calls of a recovery, as their lines in
// the server's log tell (docs/POSTGRES.md, "Prefetch").
type FetchCounts struct {
	// Spool counts files served from the spool, without opening the
	// repository; Repository those read from the repository (each call
	// opened it); NotStored calls that answered "not stored" after
	// opening the repository; NotStoredMarker history probes answered
	// "not stored" from the pre-spool's history marker, without it.
	Spool           int `json:"spool"`
	Repository      int `json:"repository"`
	NotStored       int `json:"not_stored"`
	NotStoredMarker int `json:"not_stored_marker"`
}

// RepositoryOpens is how many wal-fetch calls opened the repository.
func (f FetchCounts) RepositoryOpens() int { return f.Repository + f.NotStored }

// The phrases of wal-fetch's lines on stderr (the server's log) that
// FetchCounts counts; pg_wal.go writes them.
const (
	FetchLineSpool      = " from the spool"
	FetchLineRepository = " from the repository"
	FetchLineNotStored  = " is not stored"
	FetchLineMarker     = "(pre-spool history catalog)"
	fetchLinePrefix     = "pg wal-fetch: "
)

// CountFetches counts the wal-fetch lines in a server log.
func CountFetches(log string) FetchCounts {
	var f FetchCounts
	for _, l := range strings.Split(log, "\n") {
		i := strings.Index(l, fetchLinePrefix)
		if i < 0 {
			continue
		}
		l = l[i:]
		switch {
		case strings.Contains(l, FetchLineMarker):
			f.NotStoredMarker++
		case strings.Contains(l, FetchLineNotStored):
			f.NotStored++
		case strings.Contains(l, FetchLineSpool):
			f.Spool++
		case strings.Contains(l, FetchLineRepository):
			f.Repository++
		}
	}
	return f
}

// DeltaStats is what a delta restore did to the existing data directory.
type DeltaStats struct {
	// FilesRewritten have some bytes written (only the chunks that
	// differ); BytesRewritten is their whole size.
	FilesRewritten int64 `json:"files_rewritten"`
	BytesRewritten int64 `json:"bytes_rewritten"`
	// FilesKept already held the backup's bytes and were not written.
	FilesKept int64 `json:"files_kept"`
	BytesKept int64 `json:"bytes_kept"`
	// Removed counts entries the backup does not list, removed.
	Removed int64 `json:"entries_removed"`
}

// ErrNotBaseBackup: the snapshot was not made by rewind pg backup.
var ErrNotBaseBackup = errors.New("not a PostgreSQL base backup")

// RestoreBase restores the base backup sn into opt.Target as a data
// directory ready to start: owned by the cluster's user, mode 0700, with
// backup_label and the backup's WAL in pg_wal. Without a WAL archive the
// server, when started, replays the WAL the backup holds from
// backup_label (crash recovery, as a pg_basebackup -X fetch copy does)
// and opens on the backup's timeline at the end of that WAL. With Start
// it is started and waited for until it accepts connections.
func RestoreBase(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, opt RestoreOptions) (*RestoreResult, error) {
	info := sn.Postgres
	if info == nil {
		return nil, fmt.Errorf("snapshot %s: %w (made by rewind pg backup); restore its files with rewind restore", sn.ID.Short(), ErrNotBaseBackup)
	}
	target, err := filepath.Abs(opt.Target)
	if err != nil {
		return nil, err
	}
	// Sync: the server fsyncs the whole data directory when it starts from
	// a base backup; files made durable by the restore's workers, while
	// others are still written, leave it nothing to wait for.
	ropt := restorer.Options{Target: target, Owner: os.Geteuid() == 0, Logger: opt.Logger, Progress: opt.Progress, Sync: true}
	var total atomic.Int64 // bytes of the files the restore went through (workers run in parallel)
	if opt.Delta {
		if err := CheckDeltaTarget(target); err != nil {
			return nil, err
		}
		// The restorer's overwrite mode keeps a file whose chunks hash to
		// the snapshot's and writes only the chunks that differ; Delete
		// removes what the backup does not list, so that pg_wal holds no
		// WAL of another history and no stale postmaster.pid, signal file
		// or label remains.
		ropt.Overwrite, ropt.Delete, ropt.TargetIsEntry = true, true, true
		ropt.Progress = func(files, bytes int64) {
			total.Add(bytes)
			if opt.Progress != nil {
				opt.Progress(files, bytes)
			}
		}
	} else if err := CheckTarget(target); err != nil {
		return nil, err
	}
	rs, err := restorer.New(r, ropt)
	if err != nil {
		return nil, err
	}
	spoolDir := filepath.Join(target, "pg_wal", wal.SpoolDirName)
	var psDir string
	var psErr chan error
	var perr error // the pre-spool's failure
	psCtx, psCancel := context.WithCancel(ctx)
	defer psCancel()
	if opt.Prespool != nil {
		// Beside the target (the restore wants it empty), so that a
		// rename moves it into pg_wal.
		d, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".rewind-prespool-")
		if err == nil {
			psDir, psErr = d, make(chan error, 1)
			go func() { psErr <- opt.Prespool(psCtx, d) }()
		}
	}
	st, err := rs.Restore(ctx, sn, info.DataDir)
	if psErr != nil {
		if err != nil {
			psCancel()
		}
		perr = <-psErr
		if err == nil {
			perr = errors.Join(perr, moveSpool(psDir, spoolDir))
		}
		os.RemoveAll(psDir)
	}
	if err != nil {
		return &RestoreResult{Stats: st}, fmt.Errorf("restore the data directory: %w", err)
	}
	if opt.Prespool != nil && psErr == nil {
		// No folder beside the target: spool now, before the server starts.
		perr = opt.Prespool(ctx, spoolDir)
	}
	var delta *DeltaStats
	if opt.Delta {
		delta = &DeltaStats{FilesRewritten: st.Files, BytesRewritten: st.Bytes, FilesKept: st.FilesSkipped,
			BytesKept: max(total.Load()-st.Bytes, 0), Removed: st.Removed}
	}
	for _, w := range info.WALFiles {
		if _, err := os.Stat(filepath.Join(target, "pg_wal", w)); err != nil {
			return nil, fmt.Errorf("WAL segment %s of the backup is missing from the restored pg_wal: %w", w, err)
		}
	}
	if err := os.Chmod(target, 0o700); err != nil {
		return nil, err
	}
	if opt.UID != -1 {
		if err := Chown(target, opt.UID, opt.GID); err != nil {
			return nil, err
		}
	}
	rc := opt.Recovery
	rc.Port, rc.SocketDir = opt.Port, opt.SocketDir
	if err := WriteRecovery(target, rc, opt.UID, opt.GID); err != nil {
		return nil, err
	}
	res := &RestoreResult{Stats: st, Delta: delta, PrespoolErr: perr}
	if !opt.Start {
		return res, nil
	}
	return res, StartRestored(ctx, info, target, opt, res)
}

// moveSpool moves the spool folder from, written beside the restored
// data directory, to to in its pg_wal: a rename, or file by file when
// they are on different filesystems.
func moveSpool(from, to string) error {
	os.RemoveAll(to)
	if err := os.Rename(from, to); err == nil {
		return nil
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return fmt.Errorf("pre-spool: %w", err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("pre-spool: %w", err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err == nil {
			err = wal.WriteFile(filepath.Join(to, e.Name()), data)
		}
		if err != nil {
			return fmt.Errorf("pre-spool: %w", err)
		}
	}
	return nil
}

// StartRestored starts the data directory target restored from the base
// backup info (RestoreBase without Start) as opt says (owner, BinDir,
// Recovery): pg_ctl start -w as the owner, and with a RestoreCommand
// waits until recovery has ended. The caller releases its repository
// lock first: restore_command opens the repository too. res gets the log
// and where recovery stopped.
func StartRestored(ctx context.Context, info *snapshot.PGInfo, target string, opt RestoreOptions, res *RestoreResult) error {
	pgctl, err := FindBin("pg_ctl", info.Version/10000, opt.BinDir)
	if err != nil {
		return err
	}
	var cred *syscall.Credential
	if opt.UID != -1 && opt.UID != os.Geteuid() {
		cred = &syscall.Credential{Uid: uint32(opt.UID), Gid: uint32(opt.GID), Groups: []uint32{}}
	}
	res.Log = filepath.Join(target, "rewind-start.log")
	if opt.Recovery.RestoreCommand == "" {
		return StartServer(ctx, pgctl, target, res.Log, cred)
	}
	err = startRecovery(ctx, pgctl, target, opt.Recovery, res, cred)
	if b, rerr := os.ReadFile(res.Log); rerr == nil {
		res.Fetches = CountFetches(string(b))
	}
	// Recovery is over (or failed): what wal-fetch prefetched and
	// PostgreSQL did not ask for is of no use.
	if rerr := os.RemoveAll(filepath.Join(target, "pg_wal", wal.SpoolDirName)); rerr != nil && err == nil {
		err = fmt.Errorf("remove the WAL prefetch spool: %w", rerr)
	}
	return err
}
