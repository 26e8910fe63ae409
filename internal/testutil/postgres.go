package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PostgresBinDir is where Debian's postgresql-15 (scripts/postgres.sh)
// puts the server's programs. $REWIND_PG_BINDIR overrides it.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// pgStartTimeout bounds pg_ctl's wait for a starting server.
const pgStartTimeout = 120 * time.Second

// PGOptions change how StartPostgres sets up a cluster.
type PGOptions struct {
	// ArchiveCommand, when set, turns archive_mode on with this
	// archive_command (PostgreSQL expands %p and %f).
	ArchiveCommand string
	// ArchiveTimeout, when set, is archive_timeout (e.g. "1s").
	ArchiveTimeout string
	// Settings are more postgresql.conf lines, name = value (the value is
	// written as given: quote strings yourself).
	Settings map[string]string
	// InitdbArgs are more arguments of initdb (e.g. "--data-checksums").
	InitdbArgs []string
	// NoStart makes StartPostgres run initdb and write the configuration
	// but not start the server (call Start).
	NoStart bool
}

// PG is a PostgreSQL cluster made by a test: initdb'd into a folder its OS
// user owns, listening on 127.0.0.1 on a free port and on a private unix
// socket folder. It runs as the `postgres` OS user when the tests run as
// root (initdb refuses root), else as the tests' own user. It is stopped
// (immediate mode) and removed when the test ends.
type PG struct {
	// BaseDir holds DataDir, SocketDir and the server log; owned by the
	// cluster's OS user, readable by everyone on the way down.
	BaseDir string
	// DataDir is PGDATA.
	DataDir string
	// SocketDir is unix_socket_directories.
	SocketDir string
	// Port is the TCP port (and the socket's number).
	Port int
	// LogFile is the server's log (pg_ctl -l).
	LogFile string
	// OSUser is the cluster's OS user name; UID and GID its ids.
	OSUser   string
	UID, GID int

	binDir string
}

// StartPostgres makes a new cluster and starts it; see PG. Without the
// PostgreSQL programs, or when the server does not start, the test is
// skipped, or failed under CI=true (with the server's log).
func StartPostgres(t testing.TB, opts PGOptions) *PG {
	t.Helper()
	binDir := os.Getenv("REWIND_PG_BINDIR")
	if binDir == "" {
		binDir = PostgresBinDir
	}
	if _, err := os.Stat(filepath.Join(binDir, "initdb")); err != nil {
		unavailable(t, "PostgreSQL: no initdb in %s (run scripts/postgres.sh as root to install postgresql-15)", binDir)
	}
	pg := &PG{binDir: binDir}
	pg.OSUser, pg.UID, pg.GID = PGUser(t)

	// Not under t.TempDir(): its folders are 0700 root's, which the
	// postgres user cannot enter.
	base, err := os.MkdirTemp("", "rewind-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg.BaseDir = base
	pg.DataDir = filepath.Join(base, "data")
	pg.SocketDir = filepath.Join(base, "sock")
	pg.LogFile = filepath.Join(base, "server.log")
	t.Cleanup(func() {
		pg.stopQuietly()
		if t.Failed() {
			t.Logf("PostgreSQL log (%s):\n%s", pg.LogFile, pg.LogTail())
		}
		_ = os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pg.SocketDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base, pg.SocketDir} {
		if err := os.Chown(p, pg.UID, pg.GID); err != nil {
			t.Fatal(err)
		}
	}

	if err := pg.choosePort(); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-D", pg.DataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"}, opts.InitdbArgs...)
	if out, err := pg.Command("initdb", args...).CombinedOutput(); err != nil {
		unavailable(t, "PostgreSQL: initdb: %v\n%s", err, out)
	}
	if err := pg.writeConfig(opts); err != nil {
		t.Fatal(err)
	}
	if opts.NoStart {
		return pg
	}
	// The free port may be taken between finding it and the server
	// binding it: try a few.
	for try := 0; ; try++ {
		if err = pg.start(); err == nil {
			return pg
		}
		if try == 2 {
			unavailable(t, "PostgreSQL: start: %v\n%s", err, pg.LogTail())
		}
		if err := pg.choosePort(); err != nil {
			t.Fatal(err)
		}
	}
}

// PGUser returns the OS user that test clusters run as: postgres when the
// tests run as root, else the tests' own user.
func PGUser(t testing.TB) (name string, uid, gid int) {
	t.Helper()
	if !IsRoot() {
		name = os.Getenv("USER")
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		return name, os.Geteuid(), os.Getegid()
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		unavailable(t, "PostgreSQL: no postgres OS user to run the server as (run scripts/postgres.sh): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return u.Username, uid, gid
}

// PGOwnedDir makes a temporary folder owned by PGUser, on a path that
// user can reach (not under t.TempDir(), whose folders only the tests'
// user may enter), removed when the test ends.
func PGOwnedDir(t testing.TB) string {
	t.Helper()
	_, uid, gid := PGUser(t)
	dir, err := os.MkdirTemp("", "rewind-pgown-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeConfig appends the test's settings to postgresql.conf.
func (pg *PG) writeConfig(opts PGOptions) error {
	set := map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": quoteConf(pg.SocketDir),
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"max_replication_slots":   "10",
		"logging_collector":       "off",
		"log_line_prefix":         "'%m [%p] '",
	}
	if opts.ArchiveCommand != "" {
		set["archive_mode"] = "on"
		set["archive_command"] = quoteConf(opts.ArchiveCommand)
	}
	if opts.ArchiveTimeout != "" {
		set["archive_timeout"] = quoteConf(opts.ArchiveTimeout)
	}
	for k, v := range opts.Settings {
		set[k] = v
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("\n# rewind test settings (internal/testutil/postgres.go)\n")
	for _, k := range names {
		fmt.Fprintf(&b, "%s = %s\n", k, set[k])
	}
	// port is in its own file, rewritten when the port changes.
	b.WriteString("include_if_exists = 'rewind_port.conf'\n")
	f, err := os.OpenFile(filepath.Join(pg.DataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return pg.writePort()
}

// choosePort picks a free port and writes it to the configuration, when
// the data folder exists.
func (pg *PG) choosePort() error {
	addr, err := freePort()
	if err != nil {
		return err
	}
	_, p, _ := strings.Cut(addr, ":")
	pg.Port, _ = strconv.Atoi(p)
	if _, err := os.Stat(filepath.Join(pg.DataDir, "postgresql.conf")); err == nil {
		return pg.writePort()
	}
	return nil
}

func (pg *PG) writePort() error {
	p := filepath.Join(pg.DataDir, "rewind_port.conf")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("port = %d\n", pg.Port)), 0o600); err != nil {
		return err
	}
	return os.Chown(p, pg.UID, pg.GID)
}

// quoteConf quotes s as a postgresql.conf string value.
func quoteConf(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Bin returns the path of the PostgreSQL program name (psql, pg_ctl,
// pg_waldump, ...).
func (pg *PG) Bin(name string) string { return filepath.Join(pg.binDir, name) }

// Command returns the PostgreSQL program name with args, to be run as the
// cluster's OS user in BaseDir, with PGHOST, PGPORT, PGUSER and PGDATABASE
// set to reach the cluster. name without a slash is looked up in the
// PostgreSQL bin folder; a path is run as it is (e.g. the rewind binary,
// to run it as the cluster's user).
func (pg *PG) Command(name string, args ...string) *exec.Cmd {
	if !strings.Contains(name, "/") {
		name = pg.Bin(name)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = pg.BaseDir
	cmd.Env = append(os.Environ(), pg.Env()...)
	cmd.Env = append(cmd.Env, "HOME="+pg.BaseDir)
	if IsRoot() && pg.UID != os.Geteuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(pg.UID), Gid: uint32(pg.GID), Groups: []uint32{}},
		}
	}
	return cmd
}

// Env returns the PG* variables that reach the cluster, as NAME=VALUE.
func (pg *PG) Env() []string {
	return []string{
		"PGHOST=" + pg.SocketDir,
		"PGPORT=" + strconv.Itoa(pg.Port),
		"PGUSER=postgres",
		"PGDATABASE=postgres",
	}
}

// DSN returns a libpq keyword/value connection string for the cluster's
// unix socket, user postgres, database postgres (pgx accepts it too).
func (pg *PG) DSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", pg.SocketDir, pg.Port)
}

// DSNFor is DSN for another database.
func (pg *PG) DSNFor(dbname string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", pg.SocketDir, pg.Port, dbname)
}

// psql runs sql through psql (no psqlrc, stop at the first error,
// unaligned tuples only, fields separated by a unit separator).
func (pg *PG) psql(sql string) (string, error) {
	cmd := pg.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-F", "\x1f", "-c", sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql %q: %v: %s", sql, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Exec runs sql (one or more statements) on database postgres and fails
// the test on an error.
func (pg *PG) Exec(t testing.TB, sql string) {
	t.Helper()
	if _, err := pg.psql(sql); err != nil {
		t.Fatal(err)
	}
}

// ExecErr runs sql and returns its error, for statements expected to fail.
func (pg *PG) ExecErr(sql string) error {
	_, err := pg.psql(sql)
	return err
}

// Query runs sql and returns its rows, each a slice of the columns' text
// (NULL is the empty string). It fails the test on an error.
func (pg *PG) Query(t testing.TB, sql string) [][]string {
	t.Helper()
	out, err := pg.psql(sql)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		rows = append(rows, strings.Split(line, "\x1f"))
	}
	return rows
}

// QueryValue runs sql, which must return one row of one column, and
// returns that value.
func (pg *PG) QueryValue(t testing.TB, sql string) string {
	t.Helper()
	rows := pg.Query(t, sql)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%q returned %d rows (%v), want one value", sql, len(rows), rows)
	}
	return rows[0][0]
}

// SystemID returns the cluster's system identifier (as pg_controldata and
// the WAL's page headers carry it), read from pg_control, so it works
// while the server is stopped too.
func (pg *PG) SystemID(t testing.TB) uint64 {
	t.Helper()
	cmd := pg.Command("pg_controldata", "-D", pg.DataDir)
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pg_controldata: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Database system identifier" {
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("pg_controldata: system identifier %q: %v", v, err)
			}
			return id
		}
	}
	t.Fatalf("pg_controldata printed no system identifier:\n%s", out)
	return 0
}

// start runs pg_ctl start and waits until the server accepts connections.
func (pg *PG) start() error {
	cmd := pg.Command("pg_ctl", "-D", pg.DataDir, "-l", pg.LogFile, "-w", "-t", strconv.Itoa(int(pgStartTimeout/time.Second)), "start")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Start starts the server again after Stop or Kill (the same port), and
// fails the test (with the log) if it does not come up.
func (pg *PG) Start(t testing.TB) {
	t.Helper()
	var err error
	for try := 0; try < 3; try++ {
		if err = pg.start(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("PostgreSQL: %v\n%s", err, pg.LogTail())
}

// Stop stops the server with pg_ctl stop in mode ("smart", "fast" or
// "immediate"; "" is fast) and waits for it.
func (pg *PG) Stop(t testing.TB, mode string) {
	t.Helper()
	if mode == "" {
		mode = "fast"
	}
	out, err := pg.Command("pg_ctl", "-D", pg.DataDir, "-m", mode, "-w", "stop").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
}

// PostmasterPID returns the running postmaster's pid from postmaster.pid,
// or 0 when there is none.
func (pg *PG) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(pg.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// Kill crashes the server: SIGKILL to the postmaster and every process of
// its group (pg_ctl starts it as a group leader: backends, the archiver
// and a running archive_command die too), as a power cut would, and waits
// until they are gone. postmaster.pid stays; Start recovers.
func (pg *PG) Kill(t testing.TB) {
	t.Helper()
	pid := pg.PostmasterPID()
	if pid <= 0 {
		t.Fatal("PostgreSQL: Kill: no postmaster.pid")
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("PostgreSQL: kill %d: %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(-pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL: processes of group %d still alive 30s after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopQuietly stops a running server at the test's end.
func (pg *PG) stopQuietly() {
	if pg.PostmasterPID() == 0 {
		return
	}
	_ = pg.Command("pg_ctl", "-D", pg.DataDir, "-m", "immediate", "-w", "-t", "30", "stop").Run()
	// A server that would not stop (or pg_ctl that failed): kill its group.
	if pid := pg.PostmasterPID(); pid > 0 && syscall.Kill(pid, 0) == nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// MkdirOwned makes a folder under BaseDir owned by the cluster's OS user
// (e.g. a repository that archive_command writes to) and returns its path.
func (pg *PG) MkdirOwned(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(pg.BaseDir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, pg.UID, pg.GID); err != nil {
		t.Fatal(err)
	}
	return p
}

// ChownR gives path and everything under it to the cluster's OS user.
func (pg *PG) ChownR(t testing.TB, path string) {
	t.Helper()
	err := filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, pg.UID, pg.GID)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// LogTail returns the last lines of the server's log.
func (pg *PG) LogTail() string {
	b, err := os.ReadFile(pg.LogFile)
	if err != nil {
		return "(no PostgreSQL log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Log returns the server's whole log.
func (pg *PG) Log() string {
	b, _ := os.ReadFile(pg.LogFile)
	return string(b)
}
