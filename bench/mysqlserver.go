package main

// A MariaDB server for the MariaDB section: a data directory made with
// mariadb-install-db, on a private socket and a TCP port on 127.0.0.1,
// run as the mysql OS user when the harness is root. The tests have
// internal/testutil's StartMariaDB; this is the harness's own, without a
// testing.T, so that a restored data directory can be started and timed.

import (
	"context"
	"database/sql"
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
	"time"

	_ "github.com/go-sql-driver/mysql" // the database/sql driver the harness queries with
)

// myServer is one mariadbd of the section.
type myServer struct {
	name    string // for its files: my-NAME.cnf, my-NAME.log
	data    string
	sock    string
	port    int
	conf    string // its option file (mariadbd --defaults-file)
	client  string // a [client] option file: root over the socket
	logFile string
	uid     int
	gid     int
	osUser  string
	cmd     *exec.Cmd
	done    chan struct{}
}

// myUser is the OS user the servers run as: mysql when the harness is
// root (mariadbd refuses root unless told), else the harness's own.
func myUser() (name string, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return "", 0, 0, err
		}
		return u.Username, os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return "", 0, 0, fmt.Errorf("MariaDB section: no mysql OS user to run the servers as (scripts/mariadb.sh installs mariadb-server, which makes it): %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return u.Username, uid, gid, nil
}

// myPrograms are the MariaDB programs the section runs.
var myPrograms = []string{"mariadbd", "mariadb-install-db", "mariadb", "mariabackup", "mariadb-binlog"}

// myProgram finds a MariaDB program (mariadbd lives in /usr/sbin).
func myProgram(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("MariaDB section: %s not found (scripts/mariadb.sh as root installs mariadb-server, mariadb-backup and mariadb-client; -mysql off skips the section)", name)
}

// checkMyTools says clearly what is missing before anything starts.
func checkMyTools() error {
	for _, p := range myPrograms {
		if _, err := myProgram(p); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath("restic"); err != nil {
		return errors.New("MariaDB section: restic not found in PATH (scripts/test-deps.sh installs it; -mysql off skips the section)")
	}
	return nil
}

// newMyServer describes a server whose files live in dir (data in data):
// nothing is created yet.
func newMyServer(dir, name, data string, settings map[string]string) (*myServer, error) {
	s := &myServer{name: name, data: data, sock: filepath.Join(dir, name+".sock"),
		conf: filepath.Join(dir, "my-"+name+".cnf"), client: filepath.Join(dir, "client-"+name+".cnf"),
		logFile: filepath.Join(dir, "my-"+name+".log")}
	var err error
	if s.osUser, s.uid, s.gid, err = myUser(); err != nil {
		return nil, err
	}
	if s.port, err = freePort(); err != nil {
		return nil, err
	}
	// A temporary folder the server's user can write: the harness's
	// TMPDIR may be private (go test's).
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o1777); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o1777); err != nil {
		return nil, err
	}
	set := map[string]string{
		"tmpdir":             tmp,
		"datadir":            data,
		"socket":             s.sock,
		"port":               strconv.Itoa(s.port),
		"bind-address":       "127.0.0.1",
		"log-error":          s.logFile,
		"pid-file":           filepath.Join(dir, name+".pid"),
		"user":               s.osUser,
		"skip-name-resolve":  "1",
		"performance_schema": "0",
		"max_connections":    "100",
	}
	for k, v := range settings {
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
	if err := os.WriteFile(s.conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	cl := fmt.Sprintf("[client]\nsocket = %s\nuser = root\n", s.sock)
	if err := os.WriteFile(s.client, []byte(cl), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

// install makes an empty data directory with mariadb-install-db.
func (s *myServer) install(ctx context.Context, h *harness) error {
	bin, err := myProgram("mariadb-install-db")
	if err != nil {
		return err
	}
	_, err = h.measure(ctx, cmdSpec{argv: []string{bin, "--defaults-file=" + s.conf, "--user=" + s.osUser,
		"--auth-root-authentication-method=normal", "--skip-test-db"}}, []string{"TMPDIR=" + filepath.Join(filepath.Dir(s.conf), "tmp")}, "mysql-install-"+s.name)
	return err
}

// start runs mariadbd on the server's option file and waits until it
// accepts connections.
func (s *myServer) start(ctx context.Context, timeout time.Duration) error {
	if s.cmd != nil {
		return fmt.Errorf("server %s already runs", s.name)
	}
	bin, err := myProgram("mariadbd")
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--defaults-file="+s.conf)
	cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(filepath.Dir(s.conf), "tmp"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			s.cmd = nil
			return fmt.Errorf("mariadbd (%s) exited while starting\n%s", s.name, logTail(s.logFile))
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("mariadbd (%s) did not accept connections within %s\n%s", s.name, timeout, logTail(s.logFile))
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			s.kill()
			return err
		}
	}
}

func (s *myServer) dsn() string {
	return fmt.Sprintf("root:@unix(%s)/?parseTime=true&multiStatements=true&timeout=10s&interpolateParams=true", s.sock)
}

func (s *myServer) ping() error {
	db, err := sql.Open("mysql", s.dsn())
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Ping()
}

// db opens a pool as root over the socket.
func (s *myServer) db() (*sql.DB, error) { return sql.Open("mysql", s.dsn()) }

// exec runs statements as root.
func (s *myServer) exec(ctx context.Context, q string, args ...any) error {
	db, err := s.db()
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, q, args...)
	return err
}

// queryRow runs a query that returns one row.
func (s *myServer) queryRow(ctx context.Context, q string, dst ...any) error {
	db, err := s.db()
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRowContext(ctx, q).Scan(dst...)
}

// stop shuts the server down cleanly (SIGTERM) and waits.
func (s *myServer) stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		s.cmd = nil
		return nil
	case <-time.After(5 * time.Minute):
		s.kill()
		return fmt.Errorf("mariadbd (%s) did not stop within 5 minutes of SIGTERM; killed", s.name)
	}
}

// kill SIGKILLs the server, whatever it does.
func (s *myServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// chown gives path (recursively) to the servers' OS user.
func chownTree(path string, uid, gid int) error {
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
