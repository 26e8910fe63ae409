package cli

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// myRow is one row the writer committed: its id, the writer's clock
// when it sent the INSERT (ts), the server's statement time (srv, the
// time its binlog events carry), the commit's GTID and when the commit
// returned.
type myRow struct {
	id        int64
	ts, srv   time.Time
	gtid      string
	committed time.Time
}

// myWriter commits one timestamped row per transaction into d.t.
type myWriter struct {
	mu   sync.Mutex
	rows []myRow
	stop chan struct{}
	done chan error
}

func startMyWriter(t *testing.T, m *testutil.MariaDB) *myWriter {
	t.Helper()
	db := m.DB(t)
	db.SetMaxOpenConns(1)
	w := &myWriter{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		ctx := context.Background()
		c, err := db.Conn(ctx)
		if err != nil {
			w.done <- err
			return
		}
		defer c.Close()
		for {
			select {
			case <-w.stop:
				w.done <- nil
				return
			case <-time.After(7 * time.Millisecond):
			}
			ts := time.Now().UTC()
			res, err := c.ExecContext(ctx, "INSERT INTO d.t (ts, srv) VALUES (?, NOW(6))", ts.Format("2006-01-02 15:04:05.000000"))
			if err != nil {
				w.done <- err
				return
			}
			id, _ := res.LastInsertId()
			r := myRow{id: id, ts: ts, committed: time.Now()}
			var srv string
			if err := c.QueryRowContext(ctx, "SELECT @@last_gtid, DATE_FORMAT(srv, '%Y-%m-%d %H:%i:%s.%f') FROM d.t WHERE id = ?", id).Scan(&r.gtid, &srv); err != nil {
				w.done <- err
				return
			}
			r.srv, _ = time.Parse("2006-01-02 15:04:05.000000", srv)
			w.mu.Lock()
			w.rows = append(w.rows, r)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *myWriter) finish(t *testing.T) []myRow {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	return w.rows
}

// myTestRepo opens the test repository in this process (the backup and
// the receiver run here; the restores are the binary's).
func myTestRepo(t *testing.T, e *env) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, e.path("repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func myConn(t *testing.T, m *testutil.MariaDB) mysql.ConnOptions {
	t.Helper()
	o, err := mysql.ConnOptions{Socket: m.Socket, User: "rewind", PasswordFile: m.PasswordFile(t), DefaultsFile: "/dev/null"}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	o.DefaultsFile = ""
	return o
}

// myBackup takes a physical backup of m into the repository (what
// rewind mysql backup does) and returns its snapshot ID.
func myBackup(t *testing.T, e *env, m *testutil.MariaDB) string {
	t.Helper()
	ctx := context.Background()
	r := myTestRepo(t, e)
	host, _ := os.Hostname()
	opt := mysql.BackupOptions{Conn: myConn(t, m), Archiver: archiver.Options{Hostname: host}}
	p, err := mysql.PrepareBackup(ctx, opt, false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mysql.Backup(ctx, r, p, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res.Snapshot.ID.String()
}

// myReceiver runs the binlog receiver (rewind mysql binlog receive) in
// this process until stopped.
type myReceiver struct {
	cancel context.CancelFunc
	done   chan error
}

func startMyReceiver(t *testing.T, e *env, m *testutil.MariaDB) *myReceiver {
	t.Helper()
	r := myTestRepo(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	rc := &myReceiver{cancel: cancel, done: make(chan error, 1)}
	host, _ := os.Hostname()
	go func() {
		_, err := binlog.Receive(ctx, r, binlog.ReceiveOptions{Conn: binlogServer(myConn(t, m)), ServerID: 4242, Host: host})
		rc.done <- err
	}()
	t.Cleanup(func() { cancel() })
	return rc
}

func (rc *myReceiver) finish(t *testing.T) {
	t.Helper()
	time.Sleep(1500 * time.Millisecond) // the last events stored (flush interval 1 s)
	rc.cancel()
	if err := <-rc.done; err != nil {
		t.Fatalf("binlog receive: %v", err)
	}
}

// myTarget is a new restore target the server's OS user can reach.
func myTarget(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rw-target-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "data")
}

// restoredIDs starts a scratch server on a restored data directory and
// returns the ids in d.t.
func restoredIDs(t *testing.T, dir string) []int64 {
	t.Helper()
	sc, err := mysql.StartScratch(context.Background(), dir, mysql.ScratchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sc.Close(); err != nil {
			t.Error(err)
		}
	}()
	return tableIDs(t, sc.DB(), "d.t")
}

func tableIDs(t *testing.T, db *sql.DB, table string) []int64 {
	t.Helper()
	rows, err := db.Query("SELECT id FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// idsUpTo are the ids of the rows whose binlog event second is at or
// before sec (the first row is the one written before the writer).
func idsUpTo(rows []myRow, keep func(myRow) bool) []int64 {
	out := []int64{1}
	for _, r := range rows {
		if keep(r) {
			out = append(out, r.id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sameIDs(a, b []int64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func describeIDs(ids []int64) string {
	if len(ids) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d rows, %d..%d", len(ids), ids[0], ids[len(ids)-1])
}

// myHistory is a source server with two physical backups and the binary
// log received in the repository throughout, while a writer committed.
type myHistory struct {
	e       *env
	m       *testutil.MariaDB
	rows    []myRow
	backups []string
	marks   []time.Time // after the first backup, after the second
}

func newMyHistory(t *testing.T) *myHistory {
	t.Helper()
	testutil.MariaDBProgram(t, "mariabackup")
	e := newRepo(t, 0)
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{ServerID: 1})
	m.Exec(t, "CREATE DATABASE d; CREATE TABLE d.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, ts DATETIME(6) NOT NULL, srv DATETIME(6) NOT NULL)")
	m.Exec(t, "INSERT INTO d.t (ts, srv) VALUES (NOW(6), NOW(6))")
	h := &myHistory{e: e, m: m}
	rc := startMyReceiver(t, e, m)
	w := startMyWriter(t, m)
	time.Sleep(1200 * time.Millisecond)
	h.backups = append(h.backups, myBackup(t, e, m))
	h.marks = append(h.marks, time.Now())
	time.Sleep(1500 * time.Millisecond)
	m.Exec(t, "FLUSH BINARY LOGS")
	time.Sleep(1200 * time.Millisecond)
	h.backups = append(h.backups, myBackup(t, e, m))
	h.marks = append(h.marks, time.Now())
	time.Sleep(1500 * time.Millisecond)
	h.rows = w.finish(t)
	rc.finish(t)
	for _, r := range h.rows {
		if d := r.srv.Sub(r.ts); d < -time.Second || d > time.Second {
			t.Fatalf("row %d: the server's time %s is far from the writer's %s", r.id, r.srv, r.ts)
		}
	}
	return h
}

// restoreJSON runs mysql restore --json and decodes its summary.
func restoreJSON(t *testing.T, e *env, args ...string) jsonMysqlRestore {
	t.Helper()
	res := e.mustRun(append([]string{"mysql", "restore", "--json"}, args...)...)
	var out jsonMysqlRestore
	decodeStrict(t, lastJSONLine(t, res.stdout), &out)
	return out
}

// TestMysqlRestorePrecision: for several whole seconds T, restore --at T
// holds exactly the rows whose binlog event second is at or before T;
// --gtid and --latest stop where they say. Both backups are used.
func TestMysqlRestorePrecision(t *testing.T) {
	h := newMyHistory(t)
	// From the second after the first backup returned (its consistent
	// point is before) to the one before the last row's (the last
	// second may not be wholly stored: such a target is refused).
	first, last := h.marks[0].Truncate(time.Second).Add(time.Second), h.rows[len(h.rows)-1].srv.Truncate(time.Second).Add(-time.Second)
	used := map[string]bool{}
	var moments []time.Time
	for s := first; !s.After(last); s = s.Add(time.Second) {
		moments = append(moments, s)
	}
	if len(moments) > 5 {
		moments = []time.Time{moments[0], moments[1], moments[len(moments)/2], moments[len(moments)-2], moments[len(moments)-1]}
	}
	for i, T := range moments {
		target := myTarget(t)
		args := []string{"--at", T.UTC().Format(time.RFC3339), "--target", target}
		if i%2 == 1 {
			args = append(args, "--replay", "pipe")
		}
		out := restoreJSON(t, h.e, args...)
		used[out.SnapshotID] = true
		want := idsUpTo(h.rows, func(r myRow) bool { return !r.srv.Truncate(time.Second).After(T) })
		got := restoredIDs(t, target)
		if !sameIDs(got, want) {
			t.Errorf("--at %s: restored %s, want %s (stop %+v)", T.UTC().Format(time.RFC3339), describeIDs(got), describeIDs(want), out.Stop)
		}
		if out.Stop != nil && out.Stop.Time.After(T) {
			t.Errorf("--at %s: the stop point's time %s is after the target", T, out.Stop.Time)
		}
		t.Logf("--at %s (%s): restore %.2fs, prepare %.2fs, binlog %.2fs, replay %.2fs, shutdown %.2fs",
			T.UTC().Format(time.TimeOnly), out.ReplayMethod, out.RestoreSeconds, out.PrepareSeconds, out.MaterializeSeconds, out.ReplaySeconds, out.ShutdownSeconds)
	}
	if !used[h.backups[0]] || !used[h.backups[1]] {
		t.Errorf("the restores used backups %v, want both of %v", used, h.backups)
	}
	// --gtid: a transaction in the middle, and everything up to it.
	k := len(h.rows) * 2 / 3
	target := myTarget(t)
	out := restoreJSON(t, h.e, "--gtid", h.rows[k].gtid, "--target", target)
	if got, want := restoredIDs(t, target), idsUpTo(h.rows[:k+1], func(myRow) bool { return true }); !sameIDs(got, want) {
		t.Errorf("--gtid %s: restored %s, want %s", h.rows[k].gtid, describeIDs(got), describeIDs(want))
	}
	if out.Stop == nil || out.Stop.GTID != h.rows[k].gtid {
		t.Errorf("--gtid: stop %+v", out.Stop)
	}
	// --latest: every row.
	target = myTarget(t)
	restoreJSON(t, h.e, "--latest", "--target", target)
	if got, want := restoredIDs(t, target), idsUpTo(h.rows, func(myRow) bool { return true }); !sameIDs(got, want) {
		t.Errorf("--latest: restored %s, want %s", describeIDs(got), describeIDs(want))
	}
	// The restored directory is the backup's owner's, and nothing runs
	// on it (no pid file, no socket).
	if owner := mysql.OwnerOf(target); owner != h.m.OSUser {
		t.Errorf("the restored directory is %s's, want %s's", owner, h.m.OSUser)
	}

	// --table --dump: the dump loads into a fresh server with the rows
	// of the moment.
	T := moments[len(moments)/2]
	dump := filepath.Join(t.TempDir(), "t.sql")
	res := h.e.mustRun("mysql", "restore", "--at", T.UTC().Format(time.RFC3339), "--table", "d.t", "--dump", dump, "--json")
	var td jsonMysqlTableDump
	decodeStrict(t, lastJSONLine(t, res.stdout), &td)
	if td.Table != "d.t" || td.File != dump || td.Bytes == 0 || td.Stop == nil {
		t.Errorf("--table --json: %+v", td)
	}
	fresh := testutil.StartMariaDB(t, testutil.MariaDBOptions{ServerID: 5})
	fresh.Exec(t, "CREATE DATABASE e")
	load := exec.Command(testutil.MariaDBProgram(t, "mariadb"), "--defaults-file="+fresh.ConfigFile, "e")
	f, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	load.Stdin = f
	if b, err := load.CombinedOutput(); err != nil {
		t.Fatalf("load the dump: %v\n%s", err, b)
	}
	want := idsUpTo(h.rows, func(r myRow) bool { return !r.srv.Truncate(time.Second).After(T) })
	if got := tableIDs(t, fresh.DB(t), "e.t"); !sameIDs(got, want) {
		t.Errorf("--table d.t --at %s: the dump holds %s, want %s", T, describeIDs(got), describeIDs(want))
	}
	// An unknown table is refused naming the tables there; nothing is left.
	res = h.e.expectCode(1, "mysql", "restore", "--latest", "--table", "d.nope", "--dump", dump+"2")
	if !strings.Contains(string(res.stderr), "tables of d: t") {
		t.Errorf("unknown table: %s", res.stderr)
	}
	if _, err := os.Stat(dump + "2"); err == nil {
		t.Errorf("a dump file was written for an unknown table")
	}

	// verify passes on the good repository, and is recorded.
	res = h.e.mustRun("mysql", "verify", "--json")
	var v jsonMysqlVerify
	decodeStrict(t, lastJSONLine(t, res.stdout), &v)
	if v.Result != "success" || v.CheckOK == nil || !*v.CheckOK || v.Tables == 0 || v.EventID == "" {
		t.Errorf("verify: %+v", v)
	}
	ev := h.e.mustRun("events", "--repo", h.e.path("repo"), "--job", "mysql verify", "--json")
	if !strings.Contains(string(ev.stdout), v.EventID[:8]) && !strings.Contains(string(ev.stdout), v.EventID) {
		t.Errorf("the drill is not in the event log: %s", ev.stdout)
	}

	// The timeline lists the server beside the files: one continuous
	// range from the first backup, the binlog after it, no gap; the
	// backups are not file sources.
	srcs := timelineJSON(t, h.e)
	var my *jsonTimelineSource
	for i := range srcs {
		switch srcs[i].Kind {
		case "mysql":
			my = &srcs[i]
		case "files":
			t.Errorf("a MariaDB backup is listed as files: %+v", srcs[i])
		}
	}
	if my == nil || my.ServerID != 1 || len(my.Ranges) != 1 || !my.Ranges[0].Continuous || my.Ranges[0].Snapshots != 2 ||
		my.Ranges[0].BinlogStoredUpTo == nil || len(my.Gaps) != 0 || my.Ranges[0].To.Before(h.rows[len(h.rows)-1].srv.Truncate(time.Second)) {
		t.Errorf("timeline: %+v", my)
	}
	srcs = timelineJSON(t, h.e, "--at", moments[0].UTC().Format(time.RFC3339))
	for _, s := range srcs {
		if s.Kind == "mysql" && (s.At == nil || !s.At.Restorable || s.At.SnapshotID != h.backups[0] || s.At.ReplayBinlogTo == nil) {
			t.Errorf("timeline --at %s: %+v", moments[0], s.At)
		}
	}

	myBadInput(t, h)
}

// myBadInput: each refusal names what is wrong, and writes nothing.
func myBadInput(t *testing.T, h *myHistory) {
	e := h.e
	full := filepath.Dir(myTarget(t))
	os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o600)
	res := e.expectCode(1, "mysql", "restore", "--latest", "--target", full)
	if !strings.Contains(string(res.stderr), "not empty") {
		t.Errorf("target not empty: %s", res.stderr)
	}
	before := h.rows[0].srv.Add(-time.Hour)
	for _, c := range []struct {
		name string
		args []string
		says string
	}{
		{"before the first backup", []string{"--at", h.rows[0].srv.Truncate(time.Second).UTC().Format(time.RFC3339)}, "earliest moment"},
		{"before anything stored", []string{"--at", before.UTC().Format(time.RFC3339)}, "first stored"},
		{"unknown gtid", []string{"--gtid", "0-1-999999"}, "not stored"},
		{"two targets", []string{"--latest", "--gtid", "0-1-3"}, "give one restore target"},
		{"bad gtid", []string{"--gtid", "zero"}, "0-1-42"},
		{"bad replay", []string{"--latest", "--replay", "fast"}, "--replay"},
	} {
		target := myTarget(t)
		res := e.run(append([]string{"mysql", "restore", "--target", target}, c.args...)...)
		if res.code != 1 || !strings.Contains(string(res.stderr), c.says) {
			t.Errorf("%s: want exit 1 saying %q, got %v", c.name, c.says, res)
		}
		if _, err := os.Stat(target); err == nil {
			t.Errorf("%s: the target %s was made", c.name, target)
		}
	}
	// A moment after the newest stored binlog: the receiver is stopped.
	target := myTarget(t)
	res = e.run("mysql", "restore", "--at", time.Now().Add(-2*time.Second).UTC().Format(time.RFC3339), "--target", target)
	if res.code != 1 || !strings.Contains(string(res.stderr), "after the newest stored binary log") {
		t.Errorf("after the last stored event: %v", res)
	}
}

// TestMysqlRestoreGap: a stretch of the binary log missing from the
// repository refuses a restore past it (naming the last reachable
// moment) before anything is written, still allows one before it, and
// fails a drill, which is recorded.
func TestMysqlRestoreGap(t *testing.T) {
	testutil.MariaDBProgram(t, "mariabackup")
	e := newRepo(t, 0)
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{ServerID: 1})
	m.Exec(t, "CREATE DATABASE d; CREATE TABLE d.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, ts DATETIME(6) NOT NULL, srv DATETIME(6) NOT NULL)")
	m.Exec(t, "INSERT INTO d.t (ts, srv) VALUES (NOW(6), NOW(6))")
	rc := startMyReceiver(t, e, m)
	backupID := myBackup(t, e, m)
	for i := 0; i < 5; i++ {
		m.Exec(t, "INSERT INTO d.t (ts, srv) VALUES (NOW(6), NOW(6))")
	}
	time.Sleep(1100 * time.Millisecond)
	rc.finish(t)
	// The server goes on without the receiver, and a later binlog file
	// is stored alone: nothing in the repository joins it to the first.
	m.Exec(t, "FLUSH BINARY LOGS")
	m.Exec(t, "INSERT INTO d.t (ts, srv) VALUES (NOW(6), NOW(6))")
	m.Exec(t, "FLUSH BINARY LOGS")
	for i := 0; i < 3; i++ {
		m.Exec(t, "INSERT INTO d.t (ts, srv) VALUES (NOW(6), NOW(6))")
	}
	name := m.QueryValue(t, "SELECT SUBSTRING_INDEX(@@log_bin_basename, '/', -1)") + ".000003"
	data, err := os.ReadFile(filepath.Join(m.DataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	txns, n, err := binlog.ScanFile(data)
	if err != nil || len(txns) == 0 {
		t.Fatalf("scan %s: %v, %d transactions", name, err, len(txns))
	}
	r := myTestRepo(t, e)
	p := binlog.Piece{Name: name, Start: 0, End: uint64(n), Txns: txns, Checksum: true, Stored: time.Now(),
		FirstTime: time.Unix(txns[0].Time, 0).UTC(), LastTime: time.Unix(txns[len(txns)-1].Time, 0).UTC()}
	host, _ := os.Hostname()
	if _, err := binlog.Store(context.Background(), r, []binlog.Piece{p}, [][]byte{data[:n]}, binlog.StoreOptions{ServerID: 1, Host: host}); err != nil {
		t.Fatal(err)
	}
	target := myTarget(t)
	res := e.run("mysql", "restore", "--latest", "--target", target)
	if res.code != 1 || !strings.Contains(string(res.stderr), "gap") || !strings.Contains(string(res.stderr), "last moment reachable") {
		t.Errorf("restore across the gap: %v", res)
	}
	if _, err := os.Stat(target); err == nil {
		t.Errorf("the refused restore made %s", target)
	}
	res = e.run("mysql", "verify", "--json")
	var v jsonMysqlVerify
	decodeStrict(t, lastJSONLine(t, res.stdout), &v)
	if res.code != 1 || v.Result != "failed" || !strings.Contains(v.Error, "gap") || v.EventID == "" {
		t.Errorf("verify across the gap: exit %d, %+v\n%s", res.code, v, res.stderr)
	}
	if !strings.Contains(string(res.stderr), "restore drill failed") {
		t.Errorf("verify: %s", res.stderr)
	}
	myInterrupt(t, e, backupID)
	myStart(t, e, backupID)
	// The timeline names the gap; the server is restorable up to it.
	for _, s := range timelineJSON(t, e) {
		if s.Kind == "mysql" && (len(s.Gaps) != 1 || len(s.Ranges) != 1 || !strings.Contains(s.Gaps[0].Description, "mysql-bin.000003")) {
			t.Errorf("timeline across the gap: %+v", s)
		}
	}
}

// lastJSONLine is the last line of a --json output (progress status
// lines come before it).
func lastJSONLine(t *testing.T, out []byte) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return []byte(lines[len(lines)-1])
}

// jsonMysqlStop is the strict form of the stop object.
type jsonMysqlStop struct {
	Source string    `json:"source"`
	File   string    `json:"file"`
	Pos    uint64    `json:"pos"`
	GTID   string    `json:"gtid"`
	Time   time.Time `json:"time"`
}

// jsonMysqlRestore is the strict form of mysql restore --json.
type jsonMysqlRestore struct {
	MessageType        string         `json:"message_type"`
	SnapshotID         string         `json:"snapshot_id"`
	Target             string         `json:"target"`
	BackupGTID         string         `json:"backup_gtid"`
	BackupFile         string         `json:"backup_binlog_file"`
	BackupPos          uint64         `json:"backup_binlog_pos"`
	BackupTime         time.Time      `json:"backup_time"`
	Stop               *jsonMysqlStop `json:"stop"`
	ReplayMethod       string         `json:"replay_method"`
	BinlogFiles        int            `json:"binlog_files"`
	Files              int64          `json:"files"`
	Bytes              int64          `json:"bytes"`
	RestoreSeconds     float64        `json:"restore_seconds"`
	PrepareSeconds     float64        `json:"prepare_seconds"`
	MaterializeSeconds float64        `json:"materialize_seconds"`
	ReplaySeconds      float64        `json:"replay_seconds"`
	ShutdownSeconds    float64        `json:"shutdown_seconds"`
	TotalSeconds       float64        `json:"total_seconds"`
	Pid                int            `json:"pid"`
	Socket             string         `json:"socket"`
}

// jsonMysqlTableDump is the strict form of mysql restore --table --json.
type jsonMysqlTableDump struct {
	MessageType string         `json:"message_type"`
	SnapshotID  string         `json:"snapshot_id"`
	Table       string         `json:"table"`
	File        string         `json:"file"`
	Bytes       int64          `json:"bytes"`
	Stop        *jsonMysqlStop `json:"stop"`
}

// jsonMysqlVerify is the strict form of mysql verify --json.
type jsonMysqlVerify struct {
	Result         string         `json:"result"`
	Error          string         `json:"error"`
	SnapshotID     string         `json:"snapshot_id"`
	Target         string         `json:"target"`
	Stop           *jsonMysqlStop `json:"stop"`
	RestoreSeconds float64        `json:"restore_seconds"`
	ReplaySeconds  float64        `json:"replay_seconds"`
	CheckSeconds   float64        `json:"check_seconds"`
	RTOSeconds     float64        `json:"rto_seconds"`
	Files          int64          `json:"files"`
	Bytes          int64          `json:"bytes"`
	Tables         int            `json:"tables"`
	CheckOK        *bool          `json:"check_ok"`
	CheckFailed    []string       `json:"check_failed"`
	EventID        string         `json:"event_id"`
}

func init() {
	schemaTypes["mysql.restore"] = reflect.TypeFor[jsonMysqlRestore]()
	schemaTypes["mysql.restore.table"] = reflect.TypeFor[jsonMysqlTableDump]()
	schemaTypes["mysql.verify"] = reflect.TypeFor[jsonMysqlVerify]()
}

// myInterrupt: a Ctrl-C while the scratch server of --table runs stops it
// and removes the scratch folder.
func myInterrupt(t *testing.T, e *env, backupID string) {
	t.Helper()
	scratch, err := os.MkdirTemp("", "rw-scratch-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	os.Chmod(scratch, 0o755)
	c := e.cmd("mysql", "restore", backupID, "--table", "d.t", "--dump", filepath.Join(t.TempDir(), "t.sql"), "--scratch", scratch)
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var pidFile string
	for deadline := time.Now().Add(2 * time.Minute); pidFile == ""; time.Sleep(10 * time.Millisecond) {
		m, _ := filepath.Glob(filepath.Join(scratch, "rewind-mysql-*", "mariadbd.pid"))
		if len(m) > 0 {
			pidFile = m[0]
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatal("the scratch server did not start")
		}
	}
	var pidText []byte
	for i := 0; i < 100 && len(pidText) == 0; i++ {
		pidText, _ = os.ReadFile(pidFile)
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err == nil {
		t.Logf("the dump finished before the interrupt arrived")
	}
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Errorf("the scratch folder after an interrupt holds %v (stderr: %s)", ents, stderr.String())
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(pidText))); err == nil && syscall.Kill(pid, 0) == nil {
		t.Errorf("the scratch server (pid %d) still runs after the interrupt; rewind said: %s", pid, stderr.String())
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// myStart: restore --start leaves mariadbd running on the restored
// directory, reachable on the socket it names with the original's
// accounts, and stoppable with SIGTERM.
func myStart(t *testing.T, e *env, backupID string) {
	t.Helper()
	target := myTarget(t)
	out := restoreJSON(t, e, backupID, "--target", target, "--start")
	if out.Pid == 0 || out.Socket == "" || out.Stop != nil {
		t.Fatalf("restore --start: %+v", out)
	}
	defer func() {
		syscall.Kill(out.Pid, syscall.SIGTERM)
		for i := 0; i < 600 && syscall.Kill(out.Pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if syscall.Kill(out.Pid, 0) == nil {
			t.Errorf("the started server (pid %d) did not stop on SIGTERM", out.Pid)
			syscall.Kill(out.Pid, syscall.SIGKILL)
		}
	}()
	db, err := sql.Open("mysql", "root@unix("+out.Socket+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM d.t").Scan(&n); err != nil {
		t.Fatalf("query the started server: %v", err)
	}
	if n != 1 {
		t.Errorf("the backup restored to its own point holds %d rows, want 1", n)
	}
}
