package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
)

const testRepoPassword = "test-repo-pw"

// newTestRepo creates a repository and opens it with its index loaded.
func newTestRepo(t *testing.T) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(ctx, be, []byte(testRepoPassword), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// conn is how the tests reach m: the socket, the user rewind with its
// password file.
func conn(t *testing.T, m *testutil.MariaDB) ConnOptions {
	t.Helper()
	o, err := ConnOptions{Socket: m.Socket, User: "rewind", PasswordFile: m.PasswordFile(t), DefaultsFile: "/dev/null"}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	o.DefaultsFile = ""
	return o
}

func backup(t *testing.T, r *repository.Repository, opt BackupOptions, logical bool) (*BackupResult, error) {
	t.Helper()
	ctx := context.Background()
	p, err := PrepareBackup(ctx, opt, logical)
	if err != nil {
		return nil, err
	}
	opt.Archiver.Hostname = "db1"
	if logical {
		return LogicalBackup(ctx, r, p, opt)
	}
	return Backup(ctx, r, p, opt)
}

// writer commits one row per transaction into d.w until stopped, and
// remembers each row's GTID.
type writer struct {
	mu    sync.Mutex
	gtids map[int64]string
	stop  chan struct{}
	done  chan error
}

func startWriter(t *testing.T, m *testutil.MariaDB) *writer {
	db := m.DB(t)
	db.SetMaxOpenConns(1)
	w := &writer{gtids: map[int64]string{}, stop: make(chan struct{}), done: make(chan error, 1)}
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
			default:
			}
			res, err := c.ExecContext(ctx, "INSERT INTO d.w (v) VALUES (REPEAT('w', 200))")
			if err != nil {
				w.done <- err
				return
			}
			id, _ := res.LastInsertId()
			var g string
			if err := c.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g); err != nil {
				w.done <- err
				return
			}
			w.mu.Lock()
			w.gtids[id] = g
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) finish(t *testing.T) {
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatal(err)
	}
}

func seqNo(t *testing.T, gtid string) int64 {
	t.Helper()
	// domain-server-seq; the tests use one domain.
	parts := strings.Split(gtid, "-")
	n, err := strconv.ParseInt(parts[len(parts)-1], 10, 64)
	if err != nil || len(parts) != 3 {
		t.Fatalf("GTID %q", gtid)
	}
	return n
}

func fillServer(t *testing.T, m *testutil.MariaDB) {
	m.Exec(t, "CREATE DATABASE d")
	m.Exec(t, "CREATE TABLE d.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT) ENGINE=InnoDB")
	m.Exec(t, "CREATE TABLE d.big (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB")
	m.Exec(t, "USE d; INSERT INTO d.big SELECT seq, REPEAT(MD5(seq), 30) FROM seq_1_to_20000")
	m.Exec(t, "CREATE TABLE d.small (id INT PRIMARY KEY) ENGINE=InnoDB")
	m.Exec(t, "INSERT INTO d.small VALUES (1), (2), (3)")
}

// startOn makes a second server (server_id 2) whose data directory is
// restored by restore, and starts it.
func startOn(t *testing.T, restore func(dir string)) *testutil.MariaDB {
	t.Helper()
	m2 := testutil.StartMariaDB(t, testutil.MariaDBOptions{NoStart: true, ServerID: 2})
	if err := os.RemoveAll(m2.DataDir); err != nil {
		t.Fatal(err)
	}
	restore(m2.DataDir)
	m2.Start(t)
	return m2
}

// TestPhysicalBackupRestore backs up a server while a writer commits,
// restores the backup with RestoreBase, starts a server on it, and finds
// exactly the rows whose GTIDs are at or before the recorded one.
func TestPhysicalBackupRestore(t *testing.T) {
	testutil.MariaDBProgram(t, "mariabackup")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	fillServer(t, m)
	r := newTestRepo(t)
	w := startWriter(t, m)
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	res, err := backup(t, r, BackupOptions{Conn: conn(t, m)}, false)
	took := time.Since(t0)
	time.Sleep(200 * time.Millisecond)
	w.finish(t)
	if err != nil {
		t.Fatal(err)
	}
	sn := res.Snapshot
	info := sn.MySQL
	t.Logf("physical backup took %s: %d files, %d bytes, added %d", took, sn.Summary.TotalFiles, sn.Summary.TotalBytes, sn.Summary.DataAdded)
	if info == nil || info.Method != "physical" || info.GTID == "" || info.BinlogFile == "" || info.BinlogPos == 0 {
		t.Fatalf("MySQL record %+v", info)
	}
	if info.DataDir != m.DataDir || len(sn.Paths) != 1 || sn.Paths[0] != m.DataDir {
		t.Fatalf("datadir %q, paths %v, want %s", info.DataDir, sn.Paths, m.DataDir)
	}
	if info.ServerID != 1 || !strings.Contains(info.ServerVersion, "MariaDB") || !strings.HasPrefix(info.Tool, "mariabackup 1") {
		t.Fatalf("MySQL record %+v", info)
	}
	if os.Geteuid() == 0 && int(info.UID) != m.UID {
		t.Fatalf("recorded owner %d, the datadir's is %d", info.UID, m.UID)
	}
	if !hasTag(sn, "mysql") {
		t.Fatalf("tags %v", sn.Tags)
	}
	consistent := seqNo(t, info.GTID)

	// A restore target must be empty.
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "x"), nil, 0o600)
	if _, err := RestoreBase(context.Background(), r, sn, busy, RestoreBaseOptions{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("non-empty target: %v", err)
	}

	var bi *BaseInfo
	m2 := startOn(t, func(dir string) {
		bi, err = RestoreBase(context.Background(), r, sn, dir, RestoreBaseOptions{})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("restore %s, prepare %s", bi.Restore, bi.Prepare)
	if bi.GTID != info.GTID || bi.BinlogFile != info.BinlogFile || bi.BinlogPos != info.BinlogPos {
		t.Fatalf("BaseInfo %+v, record %+v", bi, info)
	}
	if got := m2.QueryValue(t, "SELECT COUNT(*) FROM d.small"); got != "3" {
		t.Fatalf("d.small has %s rows", got)
	}
	if got := m2.QueryValue(t, "SELECT COUNT(*) FROM d.big"); got != "20000" {
		t.Fatalf("d.big has %s rows", got)
	}
	var want []int64
	w.mu.Lock()
	for id, g := range w.gtids {
		if seqNo(t, g) <= consistent {
			want = append(want, id)
		}
	}
	total := len(w.gtids)
	w.mu.Unlock()
	rows := m2.Query(t, "SELECT id FROM d.w ORDER BY id")
	if len(rows) != len(want) {
		t.Fatalf("restored d.w has %d rows; %d of the %d committed have a GTID at or before %s", len(rows), len(want), total, info.GTID)
	}
	for _, row := range rows {
		id, _ := strconv.ParseInt(row[0], 10, 64)
		w.mu.Lock()
		g, ok := w.gtids[id]
		w.mu.Unlock()
		if !ok || seqNo(t, g) > consistent {
			t.Fatalf("restored row %d has GTID %q, after the backup's %s", id, g, info.GTID)
		}
	}
	if len(want) == 0 || len(want) == total {
		t.Logf("note: the writer's %d rows were all on one side of the consistent point", total)
	}
	// The restored server's binary log starts after the backup's GTID
	// once gtid_slave_pos says where the backup is (as a replica set up
	// from it would).
	m2.Exec(t, "SET GLOBAL gtid_slave_pos = ?", info.GTID)
	if got := m2.QueryValue(t, "SELECT @@gtid_slave_pos"); got != info.GTID {
		t.Fatalf("gtid_slave_pos %q", got)
	}
	// The restored files belong to the server's user (mariabackup
	// --prepare ran as root and made some of them).
	if os.Geteuid() == 0 {
		for _, name := range []string{"d/w.ibd", "ib_logfile0", "ibdata1", "d"} {
			fi, err := os.Stat(filepath.Join(m2.DataDir, name))
			if err != nil {
				t.Fatal(err)
			}
			if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != m.UID {
				t.Errorf("%s belongs to %d, want %d", name, uid, m.UID)
			}
		}
	}
}

func hasTag(sn *snapshot.Snapshot, tag string) bool {
	for _, x := range sn.Tags {
		if x == tag {
			return true
		}
	}
	return false
}

// TestBackupUnchangedDedups: a second backup of an idle server adds little.
func TestBackupUnchangedDedups(t *testing.T) {
	testutil.MariaDBProgram(t, "mariabackup")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	fillServer(t, m)
	r := newTestRepo(t)
	first, err := backup(t, r, BackupOptions{Conn: conn(t, m)}, false)
	if err != nil {
		t.Fatal(err)
	}
	sn1 := first.Snapshot
	second, err := backup(t, r, BackupOptions{Conn: conn(t, m), Archiver: archiver.Options{Parent: sn1}}, false)
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := sn1.Summary, second.Snapshot.Summary
	t.Logf("first backup: %d bytes in %d files, added %d (%d stored); second, unchanged: added %d (%d stored), %d files unchanged",
		s1.TotalBytes, s1.TotalFiles, s1.DataAdded, s1.DataStored, s2.DataAdded, s2.DataStored, s2.FilesUnchanged)
	if s2.DataAdded*4 > s1.DataAdded {
		t.Fatalf("an unchanged server's second backup added %d bytes, the first %d", s2.DataAdded, s1.DataAdded)
	}
}

// TestBackupCorruptStream: damage in mariabackup's stream saves no snapshot.
func TestBackupCorruptStream(t *testing.T) {
	testutil.MariaDBProgram(t, "mariabackup")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	r := newTestRepo(t)
	for name, filter := range map[string]func(io.Reader) io.Reader{
		"flipped": func(in io.Reader) io.Reader { return &flipper{r: in, at: 200000} },
		"cut":     func(in io.Reader) io.Reader { return io.LimitReader(in, 300000) },
	} {
		_, err := backup(t, r, BackupOptions{Conn: conn(t, m), Filter: filter}, false)
		if err == nil || !strings.Contains(err.Error(), "no snapshot was saved") {
			t.Fatalf("%s: got %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	sns, err := snapshot.List(context.Background(), r, nil)
	if err != nil || len(sns) != 0 {
		t.Fatalf("snapshots %d, %v", len(sns), err)
	}
}

type flipper struct {
	r   io.Reader
	n   int64
	at  int64
	hit bool
}

func (f *flipper) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if !f.hit && f.n+int64(n) > f.at {
		p[f.at-f.n] ^= 0x55
		f.hit = true
	}
	f.n += int64(n)
	return n, err
}

// TestBackupBadInput: a wrong password, a stopped server and a missing
// mariabackup are refused with what to do, before anything is stored; a
// server without a binary log is backed up without a binlog position.
func TestBackupBadInput(t *testing.T) {
	testutil.MariaDBProgram(t, "mariabackup")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{NoBinlog: true})
	ctx := context.Background()

	bad := conn(t, m)
	bad.Password = "wrong"
	_, err := PrepareBackup(ctx, BackupOptions{Conn: bad}, false)
	var ce ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "refused user \"rewind\"") {
		t.Fatalf("wrong password: %v", err)
	}

	path := os.Getenv("PATH")
	t.Setenv("PATH", t.TempDir())
	_, err = PrepareBackup(ctx, BackupOptions{Conn: conn(t, m)}, false)
	if err == nil || !strings.Contains(err.Error(), "apt-get install mariadb-backup") {
		t.Fatalf("no mariabackup: %v", err)
	}
	t.Setenv("PATH", path)

	r := newTestRepo(t)
	res, err := backup(t, r, BackupOptions{Conn: conn(t, m)}, false)
	if err != nil {
		t.Fatal(err)
	}
	if i := res.Snapshot.MySQL; i.GTID != "" || i.BinlogFile != "" || i.BinlogPos != 0 {
		t.Fatalf("a server without binlog: %+v", i)
	}

	m.Stop(t)
	_, err = PrepareBackup(ctx, BackupOptions{Conn: conn(t, m)}, false)
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "is it running?") {
		t.Fatalf("stopped server: %v", err)
	}
}

func TestParseBinlogInfo(t *testing.T) {
	for in, want := range map[string]BinlogInfo{
		"mysql-bin.000001\t796\t0-1-3\n":   {"mysql-bin.000001", 796, "0-1-3"},
		"mysql-bin.000002\t4\t0-1-3,1-2-9": {"mysql-bin.000002", 4, "0-1-3,1-2-9"},
		"mysql-bin.000002\t4\n":            {"mysql-bin.000002", 4, ""},
		"":                                 {},
	} {
		got, err := ParseBinlogInfo([]byte(in))
		if err != nil || got != want {
			t.Errorf("%q: got %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"x", "f\tnot-a-number", "\t5"} {
		if _, err := ParseBinlogInfo([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

var _ = bytes.Equal
var _ sql.DB

// TestBackupLeastPrivilege: the grants docs/MYSQL.md gives a backup user
// are enough for both kinds of backup.
func TestBackupLeastPrivilege(t *testing.T) {
	testutil.MariaDBProgram(t, "mariabackup")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	fillServer(t, m)
	m.Exec(t, "CREATE USER 'backup'@'localhost' IDENTIFIED BY 'bk-pw'")
	m.Exec(t, "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SELECT, SHOW VIEW, TRIGGER, EVENT ON *.* TO 'backup'@'localhost'")
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("bk-pw\n"), 0o600)
	o, err := ConnOptions{Socket: m.Socket, User: "backup", PasswordFile: pw, DefaultsFile: "/dev/null"}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	o.DefaultsFile = ""
	r := newTestRepo(t)
	for _, logical := range []bool{false, true} {
		res, err := backup(t, r, BackupOptions{Conn: o}, logical)
		if err != nil {
			t.Fatalf("logical %v: %v", logical, err)
		}
		if res.Snapshot.MySQL.GTID == "" {
			t.Fatalf("logical %v: no GTID", logical)
		}
	}
}

func TestRestoreBaseRefuses(t *testing.T) {
	r := newTestRepo(t)
	_, err := RestoreBase(context.Background(), r, &snapshot.Snapshot{}, t.TempDir(), RestoreBaseOptions{})
	if !errors.Is(err, ErrNotMySQLBackup) {
		t.Fatalf("a files snapshot: %v", err)
	}
	_, err = RestoreBase(context.Background(), r, &snapshot.Snapshot{MySQL: &snapshot.MySQLInfo{Method: "logical", DumpPath: DumpPath}}, t.TempDir(), RestoreBaseOptions{})
	if !errors.Is(err, ErrLogicalBackup) {
		t.Fatalf("a logical snapshot: %v", err)
	}
}
