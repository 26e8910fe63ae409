package mysql

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// ScratchUser is the account a scratch server makes for rewind (with a
// random password, through --init-file) and drops again on Close.
const ScratchUser = "rewind_scratch"

// ScratchOptions change how StartScratch runs the server.
type ScratchOptions struct {
	// Mariadbd is the server program; "" finds mariadbd in PATH or
	// /usr/sbin.
	Mariadbd string
	// Parent is where the private folder (socket, option file, error
	// log) is made; "" is TMPDIR. The datadir's owner must be able to
	// enter it.
	Parent string
	// ServerID is the scratch server's server_id; 0 picks one that is
	// none of Avoid (the original's: events carrying the server's own
	// id would be skipped by a replica; replicate_same_server_id is on
	// as well).
	ServerID uint32
	Avoid    []uint32
	// RelayLog is the relay log basename (a path without the .NNNNNN
	// suffix) the server applies from (RelayLogs makes it); "" puts an
	// empty one in the private folder.
	RelayLog string
	// Replay tunes the server to apply a binary log fast: no flush per
	// commit, no doublewrite (a crash fails the restore anyway).
	Replay bool
	// Settings are more [mariadbd] lines (name = value), after rewind's.
	Settings map[string]string
	// StartTimeout bounds the wait for the server (crash recovery of
	// the datadir included); 0 is 10 minutes.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// Scratch is a mariadbd rewind starts on a prepared data directory for a
// replay, a single-table dump or a drill. Nothing but rewind can reach
// it: it listens on no TCP port, only on a socket in a private folder
// (mode 0700, the datadir owner's), it starts no replication by itself,
// runs no scheduled events and writes no binary log. It runs as the
// datadir's owner when rewind is root. Close shuts it down cleanly and
// removes the private folder.
type Scratch struct {
	DataDir string
	// Dir is the private folder: Socket, the option file and the error
	// log (LogFile) are in it.
	Dir, Socket, LogFile string
	ServerID             uint32
	UID, GID             int

	password string
	stderr   limitedWriter
	db       *sql.DB
	cmd      *exec.Cmd
	done     chan struct{}
	closed   sync.Once
	closeErr error
	log      *slog.Logger
}

// StartScratch starts a scratch server on the prepared data directory
// datadir and waits until it accepts rewind's connection. On error
// nothing of it is left running.
func StartScratch(ctx context.Context, datadir string, opt ScratchOptions) (_ *Scratch, err error) {
	datadir, err = filepath.Abs(datadir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(datadir)
	if err != nil {
		return nil, fmt.Errorf("scratch server: data directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("scratch server: %s is not a folder", datadir)
	}
	bin, err := findServerProgram("mariadbd", opt.Mariadbd)
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	s := &Scratch{DataDir: datadir, UID: uid, GID: gid, log: opt.Logger, done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ServerID = opt.ServerID; s.ServerID == 0 {
		s.ServerID = pickServerID(opt.Avoid)
	}
	if s.Dir, err = os.MkdirTemp(opt.Parent, "rewind-mysql-"); err != nil {
		return nil, fmt.Errorf("scratch server: private folder: %w; give a folder with room (--scratch)", err)
	}
	defer func() {
		if err != nil {
			if cerr := s.Close(); cerr != nil {
				s.log.Warn("scratch server cleanup", "err", cerr)
			}
		}
	}()
	if err = os.Chmod(s.Dir, 0o700); err != nil {
		return nil, err
	}
	s.Socket = filepath.Join(s.Dir, "mariadbd.sock")
	s.LogFile = filepath.Join(s.Dir, "error.log")
	pw := make([]byte, 18)
	if _, err = rand.Read(pw); err != nil {
		return nil, err
	}
	s.password = hex.EncodeToString(pw)
	initFile := filepath.Join(s.Dir, "init.sql")
	// The init file runs at startup with every privilege, before any
	// client can connect; the server writes no binary log.
	initSQL := fmt.Sprintf("CREATE OR REPLACE USER '%s'@'localhost' IDENTIFIED BY '%s';\nGRANT ALL PRIVILEGES ON *.* TO '%s'@'localhost' WITH GRANT OPTION;\n",
		ScratchUser, s.password, ScratchUser)
	cnf := filepath.Join(s.Dir, "my.cnf")
	relay := opt.RelayLog
	if relay == "" {
		relay = filepath.Join(s.Dir, "relay-bin")
	}
	set := map[string]string{
		"datadir":                  datadir,
		"socket":                   s.Socket,
		"pid-file":                 filepath.Join(s.Dir, "mariadbd.pid"),
		"log-error":                s.LogFile,
		"tmpdir":                   s.Dir,
		"server-id":                strconv.FormatUint(uint64(s.ServerID), 10),
		"relay-log":                relay,
		"relay-log-index":          relay + ".index",
		"relay-log-purge":          "0",
		"replicate-same-server-id": "1",
		"init-file":                initFile,
		"event-scheduler":          "DISABLED",
		"max-allowed-packet":       "1G",
		"skip-networking":          "",
		"skip-log-bin":             "",
		"skip-slave-start":         "",
	}
	if uid == 0 {
		set["user"] = "root"
	}
	for k, v := range backupInnoDBSettings(filepath.Join(datadir, "backup-my.cnf")) {
		set[k] = v
	}
	if opt.Replay {
		set["innodb-flush-log-at-trx-commit"] = "0"
		set["innodb-doublewrite"] = "0"
		set["sync-relay-log"] = "0"
		set["sync-relay-log-info"] = "0"
		set["sync-master-info"] = "0"
	}
	for k, v := range opt.Settings {
		set[k] = v
	}
	if err = os.WriteFile(initFile, []byte(initSQL), 0o600); err != nil {
		return nil, err
	}
	if err = os.WriteFile(cnf, []byte(scratchConfig(set)), 0o600); err != nil {
		return nil, err
	}
	for _, p := range []string{s.Dir, initFile, cnf} {
		if err = os.Chown(p, uid, gid); err != nil {
			return nil, fmt.Errorf("scratch server: %w", err)
		}
	}
	cmd := exec.Command(bin, "--defaults-file="+cnf)
	cmd.Dir = s.Dir
	// Its own process group: a Ctrl-C at the terminal reaches rewind,
	// which shuts the server down cleanly; if rewind dies, so does it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if uid != os.Geteuid() {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	cmd.Stderr = &s.stderr
	if err = cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	s.cmd = cmd
	go func() { _ = cmd.Wait(); close(s.done) }()
	s.log.Info("scratch server", "datadir", datadir, "socket", s.Socket, "server_id", s.ServerID, "pid", cmd.Process.Pid)
	timeout := opt.StartTimeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	if err = s.waitReady(ctx, timeout); err != nil {
		return nil, err
	}
	_ = os.Remove(initFile)
	return s, nil
}

// scratchConfig is the server's option file: one [mariadbd] group, the
// names sorted; a setting with no value is a bare option.
func scratchConfig(set map[string]string) string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# rewind scratch server: private socket, no networking, no binary log\n[mariadbd]\n")
	for _, k := range keys {
		if set[k] == "" {
			fmt.Fprintf(&b, "%s\n", k)
		} else {
			fmt.Fprintf(&b, "%s = %s\n", k, set[k])
		}
	}
	return b.String()
}

// innodbCarried are the settings of backup-my.cnf (written by
// mariabackup) that a server must share with the data directory.
var innodbCarried = map[string]bool{
	"innodb_page_size": true, "innodb_data_file_path": true, "innodb_undo_tablespaces": true,
}

// backupInnoDBSettings reads the settings the data directory needs from
// mariabackup's backup-my.cnf (none when it is absent).
func backupInnoDBSettings(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return parseBackupCnf(string(b))
}

// parseBackupCnf picks innodbCarried out of the [mysqld] group of a
// backup-my.cnf text; a value that is not a plain word is left out.
func parseBackupCnf(text string) map[string]string {
	out := map[string]string{}
	group := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			group = strings.Trim(line, "[] ")
			continue
		}
		if group != "mysqld" && group != "mariadbd" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_")
		v = strings.TrimSpace(v)
		if innodbCarried[k] && v != "" && !strings.ContainsAny(v, " \t\n\"'#;\\") {
			out[strings.ReplaceAll(k, "_", "-")] = v
		}
	}
	return out
}

// pickServerID returns a server_id none of avoid, high in the range so
// that it is unlikely to be any real server's.
func pickServerID(avoid []uint32) uint32 {
	id := uint32(4_000_000_000)
	for {
		taken := false
		for _, a := range avoid {
			if a == id {
				taken = true
			}
		}
		if !taken {
			return id
		}
		id++
	}
}

// waitReady waits until the server accepts rewind's connection, the
// server exits, ctx ends or timeout passes.
func (s *Scratch) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	connector, err := driver.NewConnector(s.driverConfig())
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(4)
	for {
		select {
		case <-s.done:
			db.Close()
			return fmt.Errorf("the scratch server (mariadbd on %s, as user %s) exited while starting (%s): %s%s; the data directory and its parents must be open to that user",
				s.DataDir, OwnerOf(s.DataDir), s.cmd.ProcessState, strings.TrimSpace(s.stderr.String()), lastLogLines(s.LogTail(), 8))
		case <-ctx.Done():
			db.Close()
			return ctx.Err()
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			s.db = db
			return nil
		}
		if time.Now().After(deadline) {
			db.Close()
			return fmt.Errorf("the scratch server on %s did not accept connections within %s: %v; its log: %s", s.DataDir, timeout, err, lastLogLines(s.LogTail(), 8))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Scratch) driverConfig() *driver.Config {
	c := s.ConnOptions().DriverConfig()
	c.MultiStatements = true
	return c
}

// ConnOptions reach the scratch server as rewind's account over its
// socket (for the client programs: ClientArgs and ClientEnv).
func (s *Scratch) ConnOptions() ConnOptions {
	return ConnOptions{Socket: s.Socket, User: ScratchUser, Password: s.password}
}

// DB is a connection pool to the server as rewind's account.
func (s *Scratch) DB() *sql.DB { return s.db }

// Pid is the server's process id.
func (s *Scratch) Pid() int { return s.cmd.Process.Pid }

// LogTail is the end of the server's error log.
func (s *Scratch) LogTail() string {
	b, err := os.ReadFile(s.LogFile)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 16000 {
		b = b[len(b)-16000:]
	}
	return string(b)
}

func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// scratchShutdownTimeout bounds a clean shutdown before the server is
// killed.
const scratchShutdownTimeout = 10 * time.Minute

// Close drops rewind's account, shuts the server down cleanly (SIGTERM,
// then waits; a server that never accepted connections is killed) and
// removes the private folder. It works on its own
// context, so that it also cleans up after an interrupt, and may be
// called more than once.
func (s *Scratch) Close() error {
	s.closed.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Scratch) close() error {
	var errs []error
	if s.db != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := s.db.ExecContext(ctx, "DROP USER IF EXISTS '"+ScratchUser+"'@'localhost'"); err != nil {
			errs = append(errs, fmt.Errorf("drop the scratch account: %w", err))
		}
		cancel()
		s.db.Close()
	}
	if s.cmd != nil {
		// A server that never became ready is killed: one told to stop
		// while starting may never get to its shutdown (seen with
		// mariadbd 10.11 stopped while running its init file), and
		// nothing was done on its data directory, which the caller
		// discards.
		sig := syscall.SIGTERM
		if s.db == nil {
			sig = syscall.SIGKILL
		}
		_ = s.cmd.Process.Signal(sig)
		select {
		case <-s.done:
		case <-time.After(scratchShutdownTimeout):
			_ = s.cmd.Process.Kill()
			<-s.done
			errs = append(errs, fmt.Errorf("the scratch server did not shut down within %s and was killed: its data directory %s needs crash recovery", scratchShutdownTimeout, s.DataDir))
		}
		if ps := s.cmd.ProcessState; ps != nil && !ps.Success() && len(errs) == 0 && s.db != nil {
			errs = append(errs, fmt.Errorf("the scratch server stopped with %s: %s", ps, lastLogLines(s.LogTail(), 5)))
		}
	}
	if s.Dir != "" {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove the scratch folder: %w", err))
		}
	}
	return errors.Join(errs...)
}

// findServerProgram returns given, or where one of MariaDB's programs is:
// PATH, then /usr/sbin and /usr/bin (mariadbd is in /usr/sbin).
func findServerProgram(name, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /usr/bin: install the MariaDB server and client (Debian: apt install mariadb-server mariadb-client mariadb-backup)", name)
}

// OwnerOf names the OS user owning path, for messages.
func OwnerOf(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	uid := fi.Sys().(*syscall.Stat_t).Uid
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}
