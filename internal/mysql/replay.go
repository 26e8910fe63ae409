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
	"strings"
	"syscall"
	"time"
)

// BinlogPos is a place in a server's binary log: a file name (as the
// server names it, mysql-bin.000042) and a byte offset in it.
type BinlogPos struct {
	File string `json:"file"`
	Pos  uint64 `json:"pos"`
}

func (p BinlogPos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Pos) }

// binlogSeq splits a binary log file name into its basename and number
// (mysql-bin.000042 -> mysql-bin, 42).
func binlogSeq(name string) (string, uint64, error) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", 0, fmt.Errorf("%q is not a binary log file name (basename.NNNNNN)", name)
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not a binary log file name (basename.NNNNNN)", name)
	}
	return name[:i], n, nil
}

// Before reports whether p comes before q in the same binary log.
func (p BinlogPos) Before(q BinlogPos) bool {
	_, a, errA := binlogSeq(p.File)
	_, b, errB := binlogSeq(q.File)
	if errA != nil || errB != nil || a == b {
		return p.File < q.File || (p.File == q.File && p.Pos < q.Pos)
	}
	return a < b
}

// ReplayMethod is how binary log events are applied.
type ReplayMethod string

const (
	// ReplayReplica: the scratch server's SQL thread applies the files
	// as its relay log, up to the stop point (START SLAVE UNTIL).
	ReplayReplica ReplayMethod = "replica"
	// ReplayPipe: mariadb-binlog decodes the files into SQL and the
	// mariadb client runs it on the scratch server.
	ReplayPipe ReplayMethod = "pipe"
)

// ParseReplayMethod reads --replay.
func ParseReplayMethod(s string) (ReplayMethod, error) {
	switch ReplayMethod(s) {
	case ReplayReplica, ReplayPipe:
		return ReplayMethod(s), nil
	}
	return "", fmt.Errorf("--replay %q: give replica (the scratch server applies the binary log as a replica) or pipe (mariadb-binlog | mariadb)", s)
}

// ReplayOptions say what to replay.
type ReplayOptions struct {
	Method ReplayMethod
	// Files are the binary log files covering From to Stop, in order,
	// in one folder (binlog.Materialize writes them). For ReplayReplica
	// they are the scratch server's relay log (RelayLogs) and are
	// removed by the replay.
	Files []string
	// From is the backup's consistent point; Stop is the end of the last
	// transaction to apply.
	From, Stop BinlogPos
	// MariadbBinlog and Mariadb are the programs of ReplayPipe; "" finds
	// them.
	MariadbBinlog, Mariadb string
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Method ReplayMethod
	// Reached is where the SQL thread stopped (ReplayReplica) or Stop.
	Reached BinlogPos
	// GTID is gtid_slave_pos after a ReplayReplica: the last GTID
	// applied in each replication domain.
	GTID string
	Took time.Duration
}

// ReplayError is an event the scratch server could not apply.
type ReplayError struct {
	At      BinlogPos
	Errno   int
	Message string
}

func (e *ReplayError) Error() string {
	return fmt.Sprintf("replaying the binary log stopped at %s with error %d: %s", e.At, e.Errno, e.Message)
}

// RelayLogs makes the binary log files the relay log of a scratch
// server: they must be consecutive files of one basename in one folder;
// it writes the index beside them and gives the folder and the files to
// uid/gid (-1: unchanged), the server's user, who applies and removes
// them. It returns the basename path for ScratchOptions.RelayLog.
func RelayLogs(files []string, uid, gid int) (string, error) {
	if len(files) == 0 {
		return "", errors.New("relay log: no binary log files")
	}
	dir := filepath.Dir(files[0])
	base, prev, err := binlogSeq(filepath.Base(files[0]))
	if err != nil {
		return "", err
	}
	var index strings.Builder
	for i, f := range files {
		if filepath.Dir(f) != dir {
			return "", fmt.Errorf("relay log: %s and %s are in different folders", files[0], f)
		}
		b, n, err := binlogSeq(filepath.Base(f))
		if err != nil {
			return "", err
		}
		if b != base {
			return "", fmt.Errorf("relay log: %s and %s have different basenames", files[0], f)
		}
		if i > 0 && n != prev+1 {
			return "", fmt.Errorf("relay log: %s does not follow %s: a binary log file is missing between them", filepath.Base(f), filepath.Base(files[i-1]))
		}
		prev = n
		abs, err := filepath.Abs(f)
		if err != nil {
			return "", err
		}
		index.WriteString(abs + "\n")
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	basePath := filepath.Join(absDir, base)
	if err := os.WriteFile(basePath+".index", []byte(index.String()), 0o600); err != nil {
		return "", err
	}
	if uid != -1 {
		for _, p := range append([]string{absDir, basePath + ".index"}, files...) {
			if err := os.Chown(p, uid, gid); err != nil {
				return "", fmt.Errorf("relay log: %w", err)
			}
		}
	}
	return basePath, nil
}

// Replay applies the binary log from opt.From to opt.Stop on the
// scratch server s and leaves it with no replication configured.
func Replay(ctx context.Context, s *Scratch, opt ReplayOptions) (*ReplayResult, error) {
	if len(opt.Files) == 0 {
		return nil, errors.New("replay: no binary log files")
	}
	if first := filepath.Base(opt.Files[0]); first != opt.From.File {
		return nil, fmt.Errorf("replay: the files start with %s, not with %s where the backup's consistent point is", first, opt.From.File)
	}
	if last := filepath.Base(opt.Files[len(opt.Files)-1]); last != opt.Stop.File {
		return nil, fmt.Errorf("replay: the files end with %s, not with %s where the stop point is", last, opt.Stop.File)
	}
	if opt.Stop.Before(opt.From) {
		return nil, fmt.Errorf("replay: the stop point %s is before the backup's consistent point %s", opt.Stop, opt.From)
	}
	t0 := time.Now()
	var res *ReplayResult
	var err error
	switch opt.Method {
	case ReplayPipe:
		res, err = replayPipe(ctx, s, opt)
	case ReplayReplica, "":
		res, err = replayReplica(ctx, s, opt)
	default:
		return nil, fmt.Errorf("replay: unknown method %q", opt.Method)
	}
	if res != nil {
		res.Took = time.Since(t0)
	}
	return res, err
}

// replayDummyHost is the primary a replay's CHANGE MASTER names: the SQL
// thread alone runs, nothing connects to it.
const replayDummyHost = "rewind-replay.invalid"

func replayReplica(ctx context.Context, s *Scratch, opt ReplayOptions) (*ReplayResult, error) {
	db := s.DB()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// Whatever happens, the data directory is left without a replica
	// configuration (RESET SLAVE ALL also removes the relay log).
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = conn.ExecContext(c, "STOP SLAVE")
		_, _ = conn.ExecContext(c, "RESET SLAVE ALL")
	}()
	change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', RELAY_LOG_FILE='%s', RELAY_LOG_POS=%d",
		replayDummyHost, sqlString(opt.From.File), opt.From.Pos)
	if _, err := conn.ExecContext(ctx, change); err != nil {
		return nil, fmt.Errorf("replay: %s: %w", change, err)
	}
	start := fmt.Sprintf("START SLAVE SQL_THREAD UNTIL RELAY_LOG_FILE='%s', RELAY_LOG_POS=%d", sqlString(opt.Stop.File), opt.Stop.Pos)
	if _, err := conn.ExecContext(ctx, start); err != nil {
		return nil, fmt.Errorf("replay: %s: %w", start, err)
	}
	res := &ReplayResult{Method: ReplayReplica}
	idle := 0
	last := BinlogPos{}
	for {
		st, err := slaveStatus(ctx, conn)
		if err != nil {
			return nil, fmt.Errorf("replay: SHOW SLAVE STATUS: %w", err)
		}
		at := BinlogPos{File: st["Relay_Log_File"], Pos: parseUint(st["Relay_Log_Pos"])}
		if n := atoi(st["Last_SQL_Errno"]); n != 0 {
			return nil, &ReplayError{At: at, Errno: n, Message: st["Last_SQL_Error"]}
		}
		reached := !at.Before(opt.Stop)
		running := st["Slave_SQL_Running"] == "Yes"
		if reached {
			if running {
				if _, err := conn.ExecContext(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
					return nil, err
				}
			}
			res.Reached = at
			break
		}
		if !running {
			return nil, fmt.Errorf("replay: the SQL thread stopped at %s, before the stop point %s, without an error", at, opt.Stop)
		}
		// At the end of the relay log the SQL thread waits for more: the
		// files end before the stop point.
		if at == last && strings.Contains(st["Slave_SQL_Running_State"], "read all relay log") {
			if idle++; idle > 40 {
				return nil, fmt.Errorf("replay: the binary log files end at %s, before the stop point %s", at, opt.Stop)
			}
		} else {
			idle = 0
		}
		last = at
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_slave_pos").Scan(&res.GTID); err != nil {
		return nil, err
	}
	return res, nil
}

// slaveStatus is SHOW SLAVE STATUS as column name -> value ("" for
// NULL); no row is an empty map.
func slaveStatus(ctx context.Context, conn *sql.Conn) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, c := range cols {
			out[c] = vals[i].String
		}
	}
	return out, rows.Err()
}

func parseUint(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
func atoi(s string) int         { n, _ := strconv.Atoi(s); return n }

// sqlString escapes s for a single-quoted SQL string.
func sqlString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// replayPipe runs mariadb-binlog on the files into the mariadb client
// connected to the scratch server: two programs joined by an OS pipe.
func replayPipe(ctx context.Context, s *Scratch, opt ReplayOptions) (*ReplayResult, error) {
	binlogBin, err := findServerProgram("mariadb-binlog", opt.MariadbBinlog)
	if err != nil {
		return nil, err
	}
	clientBin, err := findServerProgram("mariadb", opt.Mariadb)
	if err != nil {
		return nil, err
	}
	args := []string{"--no-defaults", fmt.Sprintf("--start-position=%d", opt.From.Pos), fmt.Sprintf("--stop-position=%d", opt.Stop.Pos)}
	args = append(args, opt.Files...)
	dec := exec.CommandContext(ctx, binlogBin, args...)
	co := s.ConnOptions()
	cargs := append([]string{"--no-defaults"}, co.ClientArgs()...)
	cargs = append(cargs, "--binary-mode", "--max-allowed-packet=1G", "--batch")
	cli := exec.CommandContext(ctx, clientBin, cargs...)
	cli.Env = append(os.Environ(), co.ClientEnv()...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	var decErr, cliErr limitedWriter
	dec.Stdout, dec.Stderr = pw, &decErr
	cli.Stdin, cli.Stderr = pr, &cliErr
	for _, c := range []*exec.Cmd{dec, cli} {
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cli.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("replay: start mariadb: %w", err)
	}
	if err := dec.Start(); err != nil {
		pr.Close()
		pw.Close()
		_ = cli.Wait()
		return nil, fmt.Errorf("replay: start mariadb-binlog: %w", err)
	}
	pr.Close()
	pw.Close()
	errDec := dec.Wait()
	errCli := cli.Wait()
	if errCli != nil {
		return nil, fmt.Errorf("replay: mariadb failed applying the decoded binary log: %v: %s", errCli, strings.TrimSpace(cliErr.String()))
	}
	if errDec != nil {
		return nil, fmt.Errorf("replay: mariadb-binlog failed: %v: %s", errDec, strings.TrimSpace(decErr.String()))
	}
	return &ReplayResult{Method: ReplayPipe, Reached: opt.Stop}, nil
}

// limitedWriter keeps the first 8 KiB written to it (a program's
// stderr).
type limitedWriter struct{ b []byte }

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := 8192 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedWriter) String() string { return string(l.b) }
