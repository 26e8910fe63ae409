package pg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Scratch is a temporary PostgreSQL instance restored from a base backup
// for single-table recovery (pg restore --table) and restore drills
// (pg verify). Nothing but rewind can reach it: it listens on no TCP
// address, only on a unix socket in a folder of its own (mode 0700, the
// cluster's user's), and its hba_file trusts local connections only. It
// does not archive. Close stops it and removes everything.
type Scratch struct {
	// Dir is the scratch folder: the data directory, the socket folder
	// and the hba file are inside it.
	Dir, DataDir, SocketDir string
	// Port names the socket (.s.PGSQL.PORT); a free TCP port, although
	// nothing listens on TCP.
	Port int
	// User is the role rewind connects as: the bootstrap superuser,
	// named after the OS user that ran initdb (postgres).
	User     string
	UID, GID int
	BinDir   string
	info     *snapshot.PGInfo
}

// NewScratch makes a scratch folder below parent ("": TMPDIR), owned by
// uid and gid (-1: the current user) so that the cluster's user can run
// the instance in it.
func NewScratch(parent string, uid, gid int, user, binDir string) (*Scratch, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "rewind-scratch-")
	if err != nil {
		return nil, fmt.Errorf("scratch folder: %w; give --scratch DIR, a folder with room for the restored cluster", err)
	}
	s := &Scratch{Dir: dir, DataDir: filepath.Join(dir, "data"), SocketDir: filepath.Join(dir, "socket"),
		User: user, UID: uid, GID: gid, BinDir: binDir}
	fail := func(err error) (*Scratch, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("scratch folder %s: %w", dir, err)
	}
	if err := os.Mkdir(s.SocketDir, 0o700); err != nil {
		return fail(err)
	}
	// A parent the cluster's user cannot enter (root's TMPDIR is
	// usually open; a --scratch folder may not be) fails at start with
	// the server's own message.
	hba := "# rewind scratch instance: unix socket in a private folder only\nlocal all all trust\n"
	if err := os.WriteFile(s.hbaFile(), []byte(hba), 0o600); err != nil {
		return fail(err)
	}
	if uid != -1 {
		for _, p := range []string{dir, s.SocketDir, s.hbaFile()} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fail(err)
			}
		}
	}
	if s.Port, err = freePort(); err != nil {
		return fail(err)
	}
	return s, nil
}

func (s *Scratch) hbaFile() string { return filepath.Join(s.Dir, "pg_hba.conf") }

// freePort returns a TCP port nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Restore restores the base backup sn into the scratch data directory
// with the recovery rc, private: no TCP, its own socket and hba file,
// archive_mode off.
func (s *Scratch) Restore(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, rc Recovery, opt RestoreOptions) (*RestoreResult, error) {
	s.info = sn.Postgres
	rc.ArchiveOff, rc.Private, rc.HBAFile = true, true, s.hbaFile()
	opt.Target, opt.UID, opt.GID, opt.Port, opt.SocketDir = s.DataDir, s.UID, s.GID, s.Port, s.SocketDir
	opt.Recovery, opt.BinDir, opt.Start, opt.Delta = rc, s.BinDir, false, false
	return RestoreBase(ctx, r, sn, opt)
}

// Start starts the restored instance and waits until recovery has ended
// and it accepts connections. The caller's repository lock is released
// first: restore_command opens the repository.
func (s *Scratch) Start(ctx context.Context, rc Recovery, res *RestoreResult) error {
	rc.ArchiveOff, rc.Private, rc.HBAFile = true, true, s.hbaFile()
	opt := RestoreOptions{UID: s.UID, GID: s.GID, BinDir: s.BinDir, Recovery: rc}
	return StartRestored(ctx, s.info, s.DataDir, opt, res)
}

// DSN reaches database dbname of the instance as the bootstrap
// superuser, over the private socket.
func (s *Scratch) DSN(dbname string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.SocketDir, s.Port, s.User, dbname)
}

// Cred is the OS user the PostgreSQL programs run as (nil: rewind's).
func (s *Scratch) Cred() *syscall.Credential {
	if s.UID == -1 || s.UID == os.Geteuid() {
		return nil
	}
	return &syscall.Credential{Uid: uint32(s.UID), Gid: uint32(s.GID), Groups: []uint32{}}
}

// Close stops the instance if it runs (immediate: nothing of it is
// kept) and removes the scratch folder. It runs on its own context, so
// that it also cleans up after an interrupt.
func (s *Scratch) Close() error {
	var errs []error
	if _, err := os.Stat(filepath.Join(s.DataDir, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		major := 0
		if s.info != nil {
			major = s.info.Version / 10000
		}
		pgctl, err := FindBin("pg_ctl", major, s.BinDir)
		if err == nil {
			_, err = runAs(ctx, s.Cred(), s.Dir, pgctl, "stop", "-D", s.DataDir, "-m", "immediate", "-w")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stop the scratch instance: %w", err))
		}
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove the scratch folder: %w", err))
	}
	return errors.Join(errs...)
}

// Dump runs pg_dump on the instance for one table (-t schema.name, with
// --strict-names so that a name matching nothing fails) of database
// dbname, and writes the plain SQL dump to file: through a temporary
// file beside it, renamed into place when pg_dump succeeded, so that file
// is whole or absent. pg_dump runs as the cluster's user and writes to
// its standard output, which rewind writes: file may lie where that user
// cannot write.
func (s *Scratch) Dump(ctx context.Context, dbname, table, file string) (int64, error) {
	bin, err := FindBin("pg_dump", s.info.Version/10000, s.BinDir)
	if err != nil {
		return 0, err
	}
	dir, base := filepath.Split(file)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, ".rewind-"+base+"-*")
	if err != nil {
		return 0, fmt.Errorf("--dump %s: %w", file, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	cmd := exec.CommandContext(ctx, bin, "--host", s.SocketDir, "--port", fmt.Sprint(s.Port), "--username", s.User,
		"--dbname", dbname, "--table", table, "--strict-names", "--no-password")
	cmd.Dir = s.Dir
	if c := s.Cred(); c != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c}
	}
	var stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, &ToolError{Tool: "pg_dump", Code: ee.ExitCode(), Stderr: stderr.String()}
		}
		return 0, fmt.Errorf("run pg_dump: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return 0, err
	}
	ok = true
	return fi.Size(), nil
}

// limitedBuffer keeps the first 8 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 8192 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// ErrNoTable: the table asked for is not in the restored database.
var ErrNoTable = errors.New("no such table at the restored point")

// CheckTable checks that table (schema.name, as pg_dump -t takes it) is
// a relation pg_dump can dump in database dbname of the instance, and
// names the tables there when it is not.
func (s *Scratch) CheckTable(ctx context.Context, dbname, table string) error {
	c, err := pgx.Connect(ctx, s.DSN(dbname))
	if err != nil {
		return fmt.Errorf("connect to the scratch instance, database %q: %w (--dbname names the table's database; --pg-user the superuser role)", dbname, err)
	}
	defer c.Close(ctx)
	var kind string
	err = c.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&kind)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("--table %s: %w; give schema.name (quote mixed case: '\"MyTable\"')", table, err)
	}
	rows, err := c.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 LIMIT 20`)
	if err != nil {
		return fmt.Errorf("%w: %s in database %q", ErrNoTable, table, dbname)
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	have := "it has no tables"
	if len(names) > 0 {
		have = "its tables: " + strings.Join(names, ", ")
		if len(names) == 20 {
			have += ", ..."
		}
	}
	return fmt.Errorf("%w: %s is not in database %q as the restore left it (%s); give schema.name of one of them, or the right --dbname", ErrNoTable, table, dbname, have)
}
