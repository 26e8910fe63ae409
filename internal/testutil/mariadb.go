package testutil

import (
	"bytes"
	"database/sql"
	"fmt"
	"net"
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

	_ "github.com/go-sql-driver/mysql" // the database/sql driver the tests query with
)

// mariadbStartTimeout bounds the wait for a starting server (crash
// recovery of a killed server included).
const mariadbStartTimeout = 120 * time.Second

// MariaDBOptions change how StartMariaDB sets up a server.
type MariaDBOptions struct {
	// NoBinlog leaves the binary log off (a server "without binlogs").
	NoBinlog bool
	// ServerID is server_id (default 1).
	ServerID int
	// Settings are more [mariadbd] lines, name = value, written as given.
	Settings map[string]string
	// NoStart makes StartMariaDB create the data directory and the
	// configuration but not start the server (call Start).
	NoStart bool
}

// MariaDB is a MariaDB server made by a test: a data directory made with
// mariadb-install-db, listening on 127.0.0.1 on a free port and on a private
// unix socket, with the binary log on (ROW format, GTIDs) unless asked
// otherwise. It runs as the `mysql` OS user when the tests run as root and
// that user exists, else as the tests' own user. root@localhost has no
// password (mysql_native_password); the user `rewind` has the password
// Password and every privilege. It is killed and removed when the test
// ends.
type MariaDB struct {
	// BaseDir holds DataDir, the socket, the configuration and the log.
	BaseDir string
	// DataDir is the server's datadir.
	DataDir string
	// Socket is the unix socket's path.
	Socket string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// ConfigFile is the server's option file (mariadbd --defaults-file).
	ConfigFile string
	// LogFile is the server's error log.
	LogFile string
	// OSUser is the server's OS user; UID and GID its ids.
	OSUser   string
	UID, GID int

	cmd  *exec.Cmd
	done chan struct{}
}

// MariaDBPassword is the password of the `rewind` user StartMariaDB makes.
const MariaDBPassword = "rewind-test-pw"

// mariadbProgram finds one of MariaDB's programs (mariadbd lives in
// /usr/sbin).
func mariadbProgram(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// MariaDBProgram returns the path of a MariaDB program (mariadbd, mariadb,
// mariabackup, mbstream, mariadb-binlog, ...), or skips the test (fails it
// under CI=true) when it is missing.
func MariaDBProgram(t testing.TB, name string) string {
	t.Helper()
	p, ok := mariadbProgram(name)
	if !ok {
		unavailable(t, "MariaDB: %s not found (run scripts/mariadb.sh as root to install mariadb-server, mariadb-backup and mariadb-client)", name)
	}
	return p
}

// MariaDBUser is the OS user the test servers run as, with its ids.
func MariaDBUser(t testing.TB) (name string, uid, gid int) {
	t.Helper()
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("mysql"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			return u.Username, uid, gid
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username, os.Geteuid(), os.Getegid()
}

// StartMariaDB makes a new server and starts it; see MariaDB. Without the
// MariaDB programs, or when the server does not start, the test is
// skipped, or failed under CI=true (with the server's log).
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	MariaDBProgram(t, "mariadbd")
	installDB := MariaDBProgram(t, "mariadb-install-db")
	m := &MariaDB{}
	m.OSUser, m.UID, m.GID = MariaDBUser(t)
	// Short and outside t.TempDir(): a socket path has at most 107 bytes,
	// and the server's user must be able to enter it.
	base, err := os.MkdirTemp("", "rw-my-")
	if err != nil {
		t.Fatal(err)
	}
	m.BaseDir = base
	m.DataDir = filepath.Join(base, "data")
	m.Socket = filepath.Join(base, "mysqld.sock")
	m.ConfigFile = filepath.Join(base, "my.cnf")
	m.LogFile = filepath.Join(base, "error.log")
	t.Cleanup(func() {
		m.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("MariaDB log (%s):\n%s", m.LogFile, m.LogTail())
		}
		_ = os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(base, m.UID, m.GID); err != nil {
		t.Fatal(err)
	}
	// A private tmpdir: the server's internal temporary tables must not
	// share /tmp with other servers and test processes running at once
	// (a CI run once lost one there, and mariadb-install-db aborted).
	tmp := filepath.Join(base, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, m.UID, m.GID); err != nil {
		t.Fatal(err)
	}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, portText, _ := net.SplitHostPort(addr)
	m.Port, _ = strconv.Atoi(portText)
	if err := m.writeConfig(opts); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(installDB, "--defaults-file="+m.ConfigFile, "--user="+m.OSUser,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := cmd.CombinedOutput(); err != nil {
		unavailable(t, "MariaDB: mariadb-install-db: %v\n%s", err, out)
	}
	if opts.NoStart {
		return m
	}
	m.Start(t)
	m.Exec(t, "CREATE USER 'rewind'@'%' IDENTIFIED BY '"+MariaDBPassword+"'")
	m.Exec(t, "GRANT ALL PRIVILEGES ON *.* TO 'rewind'@'%' WITH GRANT OPTION")
	m.Exec(t, "CREATE USER 'rewind'@'localhost' IDENTIFIED BY '"+MariaDBPassword+"'")
	m.Exec(t, "GRANT ALL PRIVILEGES ON *.* TO 'rewind'@'localhost' WITH GRANT OPTION")
	return m
}

// writeConfig writes the server's option file: small buffers (the tests'
// servers are tiny), no name resolution, the binary log in ROW format.
func (m *MariaDB) writeConfig(opts MariaDBOptions) error {
	id := opts.ServerID
	if id == 0 {
		id = 1
	}
	set := map[string]string{
		"datadir":                        m.DataDir,
		"socket":                         m.Socket,
		"port":                           strconv.Itoa(m.Port),
		"bind-address":                   "127.0.0.1",
		"log-error":                      m.LogFile,
		"tmpdir":                         filepath.Join(m.BaseDir, "tmp"),
		"pid-file":                       filepath.Join(m.BaseDir, "mariadbd.pid"),
		"user":                           m.OSUser,
		"server-id":                      strconv.Itoa(id),
		"skip-name-resolve":              "1",
		"innodb_buffer_pool_size":        "64M",
		"innodb_log_file_size":           "48M",
		"innodb_flush_log_at_trx_commit": "1",
		"sync_binlog":                    "1",
		"max_connections":                "60",
		"performance_schema":             "0",
	}
	if !opts.NoBinlog {
		set["log-bin"] = "mysql-bin"
		set["binlog_format"] = "ROW"
		set["log-basename"] = "mysql"
		set["gtid_strict_mode"] = "1"
	}
	for k, v := range opts.Settings {
		set[k] = v
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("[mariadbd]\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, set[k])
	}
	// The clients the tests run (mariadb, mariadb-dump, mariabackup)
	// read the same file: the socket and the root user.
	fmt.Fprintf(&b, "\n[client]\nsocket = %s\nuser = root\n", m.Socket)
	if err := os.WriteFile(m.ConfigFile, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return nil
}

// Start starts the (stopped) server and waits until it answers.
func (m *MariaDB) Start(t testing.TB) {
	t.Helper()
	if err := m.start(); err != nil {
		unavailable(t, "MariaDB: %v\n%s", err, m.LogTail())
	}
}

func (m *MariaDB) start() error {
	if m.cmd != nil {
		return fmt.Errorf("server already running")
	}
	mariadbd, _ := mariadbProgram("mariadbd")
	cmd := exec.Command(mariadbd, "--defaults-file="+m.ConfigFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(m.done) }()
	deadline := time.Now().Add(mariadbStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			m.cmd = nil
			return fmt.Errorf("mariadbd exited while starting")
		default:
		}
		if db, err := sql.Open("mysql", m.dsn("root", "")); err == nil {
			err = db.Ping()
			db.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.stop(syscall.SIGKILL)
	return fmt.Errorf("mariadbd did not answer within %s", mariadbStartTimeout)
}

// Stop shuts the server down cleanly and waits for it.
func (m *MariaDB) Stop(t testing.TB) {
	t.Helper()
	if !m.stop(syscall.SIGTERM) {
		t.Fatalf("MariaDB did not stop\n%s", m.LogTail())
	}
}

// Kill kills the server with SIGKILL (a crash) and waits for it.
func (m *MariaDB) Kill(t testing.TB) {
	t.Helper()
	m.stop(syscall.SIGKILL)
}

// Restart stops the server cleanly and starts it again.
func (m *MariaDB) Restart(t testing.TB) {
	t.Helper()
	m.Stop(t)
	m.Start(t)
}

func (m *MariaDB) stop(sig syscall.Signal) bool {
	if m.cmd == nil {
		return true
	}
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(mariadbStartTimeout):
		_ = m.cmd.Process.Kill()
		<-m.done
		m.cmd = nil
		return false
	}
	m.cmd = nil
	return true
}

// Running reports whether the server process is alive.
func (m *MariaDB) Running() bool { return m.cmd != nil }

// dsn is a go-sql-driver DSN over the socket.
func (m *MariaDB) dsn(userName, password string) string {
	return fmt.Sprintf("%s:%s@unix(%s)/?parseTime=true&multiStatements=true&timeout=10s", userName, password, m.Socket)
}

// DSN is a go-sql-driver DSN for root over the socket.
func (m *MariaDB) DSN() string { return m.dsn("root", "") }

// DB opens a connection pool to the server as root, closed when the test
// ends.
func (m *MariaDB) DB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", m.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs statements as root and fails the test on error.
func (m *MariaDB) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if err := m.ExecErr(query, args...); err != nil {
		t.Fatalf("MariaDB: %s: %v", query, err)
	}
}

// ExecErr runs statements as root.
func (m *MariaDB) ExecErr(query string, args ...any) error {
	db, err := sql.Open("mysql", m.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(query, args...)
	return err
}

// Query runs a query as root and returns its rows as strings (NULL as
// "NULL").
func (m *MariaDB) Query(t testing.TB, query string, args ...any) [][]string {
	t.Helper()
	db, err := sql.Open("mysql", m.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatalf("MariaDB: %s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v.Valid {
				row[i] = v.String
			} else {
				row[i] = "NULL"
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("MariaDB: %s: %v", query, err)
	}
	return out
}

// QueryValue runs a query that returns one value.
func (m *MariaDB) QueryValue(t testing.TB, query string, args ...any) string {
	t.Helper()
	rows := m.Query(t, query, args...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("MariaDB: %s: want one value, got %v", query, rows)
	}
	return rows[0][0]
}

// Client runs the `mariadb` client with the server's option file (root,
// the socket) and the given arguments, returning its output.
func (m *MariaDB) Client(t testing.TB, args ...string) string {
	t.Helper()
	client := MariaDBProgram(t, "mariadb")
	cmd := exec.Command(client, append([]string{"--defaults-file=" + m.ConfigFile}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mariadb %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// PasswordFile writes the `rewind` user's password to a file only the
// tests can read and returns its path.
func (m *MariaDB) PasswordFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mariadb-password")
	if err := os.WriteFile(p, []byte(MariaDBPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// LogTail is the end of the server's error log.
func (m *MariaDB) LogTail() string {
	b, err := os.ReadFile(m.LogFile)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// Chown gives path (recursively) to the server's OS user, for a data
// directory a test restored as root.
func (m *MariaDB) Chown(t testing.TB, path string) {
	t.Helper()
	err := filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, m.UID, m.GID)
	})
	if err != nil {
		t.Fatal(err)
	}
}
