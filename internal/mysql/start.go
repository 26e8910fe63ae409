package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// StartOptions say how StartRestored runs the server.
type StartOptions struct {
	Mariadbd string
	// Socket is the server's socket (default DataDir/mariadbd.sock).
	Socket string
	// Port, if not 0, makes it listen on 127.0.0.1:Port too; else it
	// has no TCP port.
	Port int
	// ServerID is its server_id (the original's).
	ServerID uint32
	Timeout  time.Duration
}

// Started is a server StartRestored left running.
type Started struct {
	Pid                   int
	Socket, LogFile, Conf string
	Port                  int
}

// StartRestored starts mariadbd on a restored data directory, as its
// owner and detached from rewind (it keeps running after rewind exits),
// with an option file rewind-start.cnf written into the data directory:
// the datadir, the socket, no binary log, no replication started, and
// the InnoDB settings of backup-my.cnf. It waits until the server
// accepts connections: a login refused for want of a password counts.
func StartRestored(ctx context.Context, datadir string, opt StartOptions) (*Started, error) {
	bin, err := findServerProgram("mariadbd", opt.Mariadbd)
	if err != nil {
		return nil, err
	}
	datadir, err = filepath.Abs(datadir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(datadir)
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	s := &Started{Socket: opt.Socket, Port: opt.Port, LogFile: filepath.Join(datadir, "rewind-start.log"), Conf: filepath.Join(datadir, "rewind-start.cnf")}
	if s.Socket == "" {
		s.Socket = filepath.Join(datadir, "mariadbd.sock")
	}
	if len(s.Socket) > 107 {
		return nil, fmt.Errorf("the socket path %s is longer than a unix socket path may be (107 bytes): give --socket with a shorter path", s.Socket)
	}
	set := map[string]string{
		"datadir":          datadir,
		"socket":           s.Socket,
		"pid-file":         filepath.Join(datadir, "mariadbd.pid"),
		"log-error":        s.LogFile,
		"server-id":        strconv.FormatUint(uint64(max(opt.ServerID, 1)), 10),
		"skip-log-bin":     "",
		"skip-slave-start": "",
	}
	if opt.Port != 0 {
		set["port"], set["bind-address"] = strconv.Itoa(opt.Port), "127.0.0.1"
	} else {
		set["skip-networking"] = ""
	}
	if st.Uid == 0 {
		set["user"] = "root"
	}
	for k, v := range backupInnoDBSettings(filepath.Join(datadir, "backup-my.cnf")) {
		set[k] = v
	}
	if err := os.WriteFile(s.Conf, []byte(scratchConfig(set)), 0o640); err != nil {
		return nil, err
	}
	if err := os.Chown(s.Conf, int(st.Uid), int(st.Gid)); err != nil && os.Geteuid() == 0 {
		return nil, err
	}
	cmd := exec.Command(bin, "--defaults-file="+s.Conf)
	cmd.Dir = datadir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if os.Geteuid() == 0 && int(st.Uid) != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	s.Pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := driver.NewConfig()
	c.Net, c.Addr, c.User = "unix", s.Socket, "rewind-probe"
	connector, err := driver.NewConnector(c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	timeout := opt.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("mariadbd exited while starting (%v); its log %s says: %s", err, s.LogFile, lastLogLines(readTail(s.LogFile), 8))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return nil, ctx.Err()
		default:
		}
		err := db.PingContext(ctx)
		var me *driver.MySQLError
		if err == nil || errors.As(err, &me) {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("mariadbd (pid %d) did not accept connections within %s; its log is %s", s.Pid, timeout, s.LogFile)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}
