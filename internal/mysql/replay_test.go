package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// replaySource is a test server with a prepared physical backup taken
// with mariabackup directly and the binary log written after it.
type replaySource struct {
	m        *testutil.MariaDB
	prepared string    // the prepared backup (kept pristine: copy it)
	from     BinlogPos // the backup's consistent point
	marks    []BinlogPos
	counts   []int // rows in d.t at each mark
	// scratchID, if set, is the scratch server's server_id.
	scratchID uint32
}

func masterPos(t *testing.T, m *testutil.MariaDB) BinlogPos {
	t.Helper()
	row := m.Query(t, "SHOW MASTER STATUS")
	pos, _ := strconv.ParseUint(row[0][1], 10, 64)
	return BinlogPos{File: row[0][0], Pos: pos}
}

// newReplaySource writes rows before and after a backup, rotating the
// binary log once, and marks the log's end after each batch of
// perBatch single-row transactions.
func newReplaySource(t *testing.T, batches, perBatch int) *replaySource {
	t.Helper()
	mb := testutil.MariaDBProgram(t, "mariabackup")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{ServerID: 7})
	m.Exec(t, "CREATE DATABASE d; CREATE TABLE d.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), ts DATETIME(6))")
	m.Exec(t, "INSERT INTO d.t (v, ts) VALUES ('before', NOW(6))")
	src := &replaySource{m: m}
	work := t.TempDir()
	bk := filepath.Join(work, "backup")
	cmd := exec.Command(mb, "--defaults-file="+m.ConfigFile, "--backup", "--target-dir="+bk)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariabackup --backup: %v\n%s", err, out)
	}
	info, err := os.ReadFile(filepath.Join(bk, "xtrabackup_binlog_info"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(info))
	p, _ := strconv.ParseUint(f[1], 10, 64)
	src.from = BinlogPos{File: f[0], Pos: p}
	db := m.DB(t)
	n := 1
	for b := 0; b < batches; b++ {
		for i := 0; i < perBatch; i++ {
			if _, err := db.Exec("INSERT INTO d.t (v, ts) VALUES (?, NOW(6))", fmt.Sprintf("b%d-%d", b, i)); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if b == batches/2 {
			m.Exec(t, "FLUSH BINARY LOGS")
		}
		src.marks = append(src.marks, masterPos(t, m))
		src.counts = append(src.counts, n)
	}
	m.Exec(t, "CREATE USER 'late'@'localhost' IDENTIFIED BY 'x'")
	cmd = exec.Command(mb, "--prepare", "--target-dir="+bk)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariabackup --prepare: %v\n%s", err, out)
	}
	src.prepared = bk
	return src
}

// copyTree copies a folder (regular files and folders) to dst, owned by
// uid/gid.
func copyTree(t *testing.T, src, dst string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if fi.IsDir() {
			if err := os.MkdirAll(out, 0o750); err != nil {
				return err
			}
			return os.Chown(out, uid, gid)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		w, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, in); err != nil {
			w.Close()
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		return os.Chown(out, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// binlogFiles copies the source's binary log files from..to into a new
// folder, as Materialize would write them.
func (src *replaySource) binlogFiles(t *testing.T, from, to BinlogPos) []string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rw-relay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	base, a, _ := binlogSeq(from.File)
	_, b, _ := binlogSeq(to.File)
	var files []string
	for n := a; n <= b; n++ {
		name := fmt.Sprintf("%s.%06d", base, n)
		data, err := os.ReadFile(filepath.Join(src.m.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return files
}

// replayInto restores the prepared backup into a new folder and replays
// to stop with method; it returns the row count and the replay's result.
func (src *replaySource) replayInto(t *testing.T, method ReplayMethod, stop BinlogPos) (int, *ReplayResult) {
	t.Helper()
	ctx := context.Background()
	m := src.m
	data, err := os.MkdirTemp("", "rw-data-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(t, src.prepared, data, m.UID, m.GID)
	files := src.binlogFiles(t, src.from, stop)
	opt := ScratchOptions{Avoid: []uint32{7}, Replay: true, ServerID: src.scratchID}
	if method == ReplayReplica {
		if opt.RelayLog, err = RelayLogs(files, m.UID, m.GID); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := StartScratch(ctx, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sc.Close(); err != nil {
			t.Error(err)
		}
	}()
	res, err := Replay(ctx, sc, ReplayOptions{Method: method, Files: files, From: src.from, Stop: stop})
	if err != nil {
		t.Fatalf("%s replay: %v\n%s", method, err, sc.LogTail())
	}
	var n int
	if err := sc.DB().QueryRow("SELECT COUNT(*) FROM d.t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	var st int
	if err := sc.DB().QueryRow("SELECT COUNT(*) FROM information_schema.processlist WHERE command = 'Slave_SQL'").Scan(&st); err != nil {
		t.Fatal(err)
	}
	if st != 0 {
		t.Errorf("the SQL thread still runs after the replay")
	}
	return n, res
}

// TestReplayBothMethodsStopAtThePoint replays a backup's binary log to
// several stop points, across a rotation, with both methods: each
// restored table holds exactly the rows committed up to the point.
func TestReplayBothMethodsStopAtThePoint(t *testing.T) {
	src := newReplaySource(t, 4, 5)
	for _, method := range []ReplayMethod{ReplayReplica, ReplayPipe} {
		for i, mark := range src.marks {
			n, res := src.replayInto(t, method, mark)
			if n != src.counts[i] {
				t.Errorf("%s replay to %s: %d rows, want %d", method, mark, n, src.counts[i])
			}
			if method == ReplayReplica && res.Reached.Before(mark) {
				t.Errorf("replica replay reached %s, before %s", res.Reached, mark)
			}
		}
	}
	// A scratch server with the source's own server_id still applies
	// every event (replicate_same_server_id).
	src.scratchID = 7
	last := len(src.marks) - 1
	if n, _ := src.replayInto(t, ReplayReplica, src.marks[last]); n != src.counts[last] {
		t.Errorf("replay by a server with the source's server_id: %d rows, want %d", n, src.counts[last])
	}
	src.scratchID = 0
	// The stop point at the backup's own point: nothing to apply.
	if n, _ := src.replayInto(t, ReplayReplica, src.from); n != 1 {
		t.Errorf("replay to the backup's point: %d rows, want 1", n)
	}
}

// TestReplayLeavesAStoppableDataDirectory: after a replica replay and
// Close, the data directory starts as a plain server with no replica
// configured, and the scratch account is gone.
func TestReplayLeavesAStoppableDataDirectory(t *testing.T) {
	src := newReplaySource(t, 2, 3)
	ctx := context.Background()
	data := t.TempDir()
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(t, src.prepared, data, src.m.UID, src.m.GID)
	os.Chown(filepath.Dir(data), src.m.UID, src.m.GID)
	stop := src.marks[len(src.marks)-1]
	files := src.binlogFiles(t, src.from, stop)
	relay, err := RelayLogs(files, src.m.UID, src.m.GID)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := StartScratch(ctx, data, ScratchOptions{RelayLog: relay, Avoid: []uint32{7}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Replay(ctx, sc, ReplayOptions{Method: ReplayReplica, Files: files, From: src.from, Stop: stop}); err != nil {
		t.Fatal(err)
	}
	dir, pid := sc.Dir, sc.Pid()
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the private folder %s is left: %v", dir, err)
	}
	if err := syscallKill0(pid); err == nil {
		t.Errorf("the scratch server (pid %d) still runs after Close", pid)
	}
	for _, f := range []string{"master.info", "relay-log.info"} {
		if _, err := os.Stat(filepath.Join(data, f)); err == nil {
			t.Errorf("%s is left in the data directory", f)
		}
	}
	// A second server on it: clean start, no replica, no scratch user.
	sc2, err := StartScratch(ctx, data, ScratchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sc2.Close()
	var n int
	if err := sc2.DB().QueryRow("SELECT COUNT(*) FROM mysql.user WHERE user = ? ", ScratchUser).Scan(&n); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := sc2.DB().QueryRow("SELECT COUNT(*) FROM d.t").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != src.counts[len(src.counts)-1] {
		t.Errorf("%d rows after restart, want %d", rows, src.counts[len(src.counts)-1])
	}
	st, err := slaveStatus(ctx, mustConn(t, sc2.DB()))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 0 {
		t.Errorf("a replica is configured after the replay: %v", st)
	}
	if !strings.Contains(sc2.LogTail(), "ready for connections") {
		t.Errorf("no clean start in the log:\n%s", sc2.LogTail())
	}
	if strings.Contains(sc.LogTail(), "crash recovery") {
		t.Errorf("the replayed data directory needed crash recovery")
	}
}

func mustConn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestReplayReportsTheFailingEvent: an event the restored data cannot
// take (its table was dropped before the replay) stops the replay with
// the server's error and where it happened.
func TestReplayReportsTheFailingEvent(t *testing.T) {
	src := newReplaySource(t, 2, 2)
	stop := src.marks[1]
	for _, method := range []ReplayMethod{ReplayReplica, ReplayPipe} {
		ctx := context.Background()
		data, _ := os.MkdirTemp("", "rw-data-")
		defer os.RemoveAll(data)
		os.Chmod(data, 0o755)
		copyTree(t, src.prepared, data, src.m.UID, src.m.GID)
		files := src.binlogFiles(t, src.from, stop)
		opt := ScratchOptions{Avoid: []uint32{7}}
		if method == ReplayReplica {
			var err error
			if opt.RelayLog, err = RelayLogs(files, src.m.UID, src.m.GID); err != nil {
				t.Fatal(err)
			}
		}
		sc, err := StartScratch(ctx, data, opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.DB().Exec("DROP TABLE d.t"); err != nil {
			t.Fatal(err)
		}
		_, err = Replay(ctx, sc, ReplayOptions{Method: method, Files: files, From: src.from, Stop: stop})
		sc.Close()
		if err == nil || !strings.Contains(err.Error(), "d.t") && !strings.Contains(err.Error(), "doesn't exist") {
			t.Errorf("%s: replay onto a dropped table: %v, want the server's error", method, err)
		}
		var re *ReplayError
		if method == ReplayReplica && !errors.As(err, &re) {
			t.Errorf("replica: %T, want *ReplayError", err)
		}
	}
}

// TestRelayLogsRefusesAMissingFile: a hole in the numbering is refused.
func TestRelayLogsRefusesAMissingFile(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, n := range []string{"mysql-bin.000001", "mysql-bin.000003"} {
		p := filepath.Join(dir, n)
		os.WriteFile(p, nil, 0o600)
		files = append(files, p)
	}
	if _, err := RelayLogs(files, -1, -1); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("RelayLogs with a hole: %v", err)
	}
	if _, err := RelayLogs(files[:1], -1, -1); err != nil {
		t.Error(err)
	}
	idx, _ := os.ReadFile(filepath.Join(dir, "mysql-bin.index"))
	if strings.TrimSpace(string(idx)) != files[0] {
		t.Errorf("index %q", idx)
	}
}

// TestReplayMethodsTimed replays the same binary log (many small
// transactions) with both methods and logs the times; it asserts only
// that both restore the same rows. REWIND_REPLAY_ROWS sets the size.
func TestReplayMethodsTimed(t *testing.T) {
	rows := 3000
	if v := os.Getenv("REWIND_REPLAY_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	src := newReplaySource(t, 1, rows)
	stop := src.marks[0]
	took := map[ReplayMethod]time.Duration{}
	for _, method := range []ReplayMethod{ReplayReplica, ReplayPipe} {
		n, res := src.replayInto(t, method, stop)
		if n != src.counts[0] {
			t.Errorf("%s: %d rows, want %d", method, n, src.counts[0])
		}
		took[method] = res.Took
	}
	t.Logf("replay of %d single-row transactions: replica (relay log) %s, pipe (mariadb-binlog | mariadb) %s",
		rows, took[ReplayReplica].Round(time.Millisecond), took[ReplayPipe].Round(time.Millisecond))
}

func TestParseBackupCnf(t *testing.T) {
	got := parseBackupCnf("# x\n[mysqld]\ninnodb_page_size=16384\ninnodb_data_file_path=ibdata1:12M:autoextend\ninnodb_log_file_size=1\ninnodb_undo_tablespaces = 3\ninnodb_page_size2=4\n[client]\ninnodb_undo_tablespaces=9\n")
	want := map[string]string{"innodb-page-size": "16384", "innodb-data-file-path": "ibdata1:12M:autoextend", "innodb-undo-tablespaces": "3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := parseBackupCnf("[mysqld]\ninnodb_page_size=1 2\n"); len(got) != 0 {
		t.Errorf("a value with a space: %v", got)
	}
}

func FuzzParseBackupCnf(f *testing.F) {
	f.Add("[mysqld]\ninnodb_page_size=16384\n")
	f.Add("[mariadbd]\ninnodb-undo-tablespaces=2\n#\n;x\n[")
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range parseBackupCnf(s) {
			if !innodbCarried[strings.ReplaceAll(k, "-", "_")] || strings.ContainsAny(v, " \n\"'") {
				t.Fatalf("%q=%q", k, v)
			}
			// The value goes into an option file line: it must not end it.
			if strings.Contains(scratchConfig(map[string]string{k: v}), "\n\n") {
				t.Fatalf("%q=%q", k, v)
			}
		}
	})
}

func syscallKill0(pid int) error { return syscall.Kill(pid, 0) }
