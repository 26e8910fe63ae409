package cli

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// mysqlEnv is a repository and a MariaDB server for the mysql commands.
type mysqlEnv struct {
	*env
	m     *testutil.MariaDB
	repo  string
	pw    string
	stats string
}

func newMysqlEnv(t *testing.T, opts testutil.MariaDBOptions) *mysqlEnv {
	t.Helper()
	m := testutil.StartMariaDB(t, opts)
	e := newEnv(t)
	repo := e.path("repo")
	initRepo(t, repo, testPassword, 0)
	// The repository's password comes from the environment; the
	// server's from --mysql-password-file.
	return &mysqlEnv{env: e.with("REWIND_REPOSITORY", repo, "REWIND_PASSWORD", testPassword), m: m, repo: repo,
		pw: m.PasswordFile(t), stats: e.path("stats.jsonl")}
}

// conn are the connection flags of the test server's rewind user.
func (me *mysqlEnv) conn() []string {
	return []string{"--socket", me.m.Socket, "--user", "rewind", "--mysql-password-file", me.pw}
}

// mysqlReceiver is `rewind mysql binlog receive` as a child process.
type mysqlReceiver struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

func (me *mysqlEnv) startReceive(t *testing.T, args ...string) *mysqlReceiver {
	t.Helper()
	all := append([]string{"-v", "--json", "mysql", "binlog", "receive", "--stats", me.stats, "--max-backoff", "1s"}, me.conn()...)
	c := me.cmd(append(all, args...)...)
	rc := &mysqlReceiver{cmd: c, done: make(chan error, 1)}
	c.Stdout, c.Stderr = &rc.stdout, &rc.stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { rc.done <- c.Wait() }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		err := <-rc.done
		rc.done <- err
	})
	return rc
}

// stop sends SIGTERM: the receiver must store what it has and exit 0.
func (rc *mysqlReceiver) stop(t *testing.T) MysqlBinlogReceiveJSON {
	t.Helper()
	_ = rc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-rc.done:
		rc.done <- err
		if err != nil {
			t.Fatalf("mysql binlog receive after SIGTERM: %v\nstderr:\n%s", err, rc.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("mysql binlog receive did not exit after SIGTERM\nstderr:\n%s", rc.stderr.String())
	}
	var sum MysqlBinlogReceiveJSON
	if err := json.Unmarshal(rc.stdout.Bytes(), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, rc.stdout.String())
	}
	return sum
}

// waitDumping waits until the server has a binlog dump thread: the
// receiver connected and streams (a receiver whose first connection fails
// exits, as it should).
func waitDumping(t *testing.T, m *testutil.MariaDB, rc *mysqlReceiver) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for m.QueryValue(t, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'") == "0" {
		select {
		case err := <-rc.done:
			rc.done <- err
			t.Fatalf("the receiver exited: %v\nstderr:\n%s", err, rc.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver does not stream\nstderr:\n%s", rc.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill SIGKILLs the receiver.
func (rc *mysqlReceiver) kill(t *testing.T) {
	t.Helper()
	_ = rc.cmd.Process.Kill()
	err := <-rc.done
	rc.done <- err
}

// serverPos is SHOW MASTER STATUS.
func serverPos(t *testing.T, m *testutil.MariaDB) binlog.Position {
	t.Helper()
	row := m.Query(t, "SHOW MASTER STATUS")[0]
	n, err := strconv.ParseUint(row[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return binlog.Position{File: row[0], Pos: n}
}

// loadBinlog reads the repository's binlog catalog in process.
func (me *mysqlEnv) loadBinlog(t *testing.T) *binlog.Catalog {
	t.Helper()
	r := openRepoDir(t, me.repo, true)
	defer r.Close()
	cat, err := binlog.Load(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// waitBinlog waits until the stored binary log ends where the server's
// does.
func (me *mysqlEnv) waitBinlog(t *testing.T, rc *mysqlReceiver) *binlog.Catalog {
	t.Helper()
	want := serverPos(t, me.m)
	deadline := time.Now().Add(90 * time.Second)
	for {
		cat := me.loadBinlog(t)
		var got binlog.Position
		if s := cat.Source(binlog.DefaultSource); s != nil {
			got = s.End()
		}
		if got == want {
			return cat
		}
		select {
		case err := <-rc.done:
			rc.done <- err
			t.Fatalf("the receiver exited (%v) with the stored binary log at %v, the server's at %v\nstderr:\n%s", err, got, want, rc.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored binary log ends at %v, the server's at %v\nreceiver stderr:\n%s", got, want, rc.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inUseOffset is the in-use flag of a binlog file's format description
// event: set in the file the server writes, not in what it sends.
const inUseOffset = 4 + 17

// sameBinlogAsServer materializes every stored file and compares it with
// the server's own (the newest one may be a prefix), and checks there is
// no gap and no conflict.
func (me *mysqlEnv) sameBinlogAsServer(t *testing.T, cat *binlog.Catalog) []string {
	t.Helper()
	s := cat.Source(binlog.DefaultSource)
	if len(cat.Conflicts) > 0 || len(cat.Unreadable) > 0 {
		t.Fatalf("conflicts %v, unreadable %v", cat.Conflicts, cat.Unreadable)
	}
	if g := s.Gaps(); len(g) > 0 {
		t.Fatalf("gaps: %+v", g)
	}
	names := s.Names()
	end := s.End()
	r := openRepoDir(t, me.repo, true)
	defer r.Close()
	dir := t.TempDir()
	paths, err := binlog.Materialize(context.Background(), r, cat, binlog.Position{File: names[0], Pos: 4},
		binlog.StopPoint{Source: s.Name, File: end.File, Pos: end.Pos}, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		name := filepath.Base(p)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(me.m.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(want) > inUseOffset {
			want[inUseOffset] &^= 1
		}
		if name != end.File && len(got) != len(want) {
			t.Errorf("%s: %d bytes stored, the server's file has %d", name, len(got), len(want))
		}
		if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
			t.Fatalf("%s: the stored bytes are not the server's (%d stored, %d on the server)", name, len(got), len(want))
		}
	}
	return paths
}

// commit is a commit the writer saw return.
type commit struct {
	at  time.Time
	seq uint64
}

// writer commits rows into app.t until stopped, riding out server
// restarts, and records when each commit returned and its GTID.
type writer struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	commits []commit
}

func startWriter(t *testing.T, m *testutil.MariaDB, pause time.Duration) *writer {
	t.Helper()
	m.Exec(t, "CREATE DATABASE IF NOT EXISTS app")
	m.Exec(t, "CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200), at DATETIME(6))")
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	db, err := sql.Open("mysql", m.DSN())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer db.Close()
		ctx := context.Background()
		var c *sql.Conn
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				if c != nil {
					c.Close()
				}
				return
			default:
			}
			if c == nil {
				if c, err = db.Conn(ctx); err != nil {
					c = nil
					time.Sleep(100 * time.Millisecond)
					continue
				}
			}
			_, err := c.ExecContext(ctx, "INSERT INTO app.t (v, at) VALUES (?, NOW(6))", strings.Repeat("r", i%150))
			var gtid string
			if err == nil {
				err = c.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid)
			}
			if err != nil {
				c.Close()
				c = nil
				time.Sleep(100 * time.Millisecond)
				continue
			}
			at := time.Now()
			if g, err := binlog.ParseGTID(gtid); err == nil {
				w.mu.Lock()
				w.commits = append(w.commits, commit{at, g.Seq})
				w.mu.Unlock()
			}
			time.Sleep(pause)
		}
	}()
	return w
}

func (w *writer) finish() []commit {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.commits
}

// rpo returns, per commit, how long after it returned the receiver had
// stored it (from the --stats lines), sorted.
func rpo(t *testing.T, statsFile string, commits []commit) (lags []time.Duration, missing int) {
	t.Helper()
	f, err := os.Open(statsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type st struct {
		seq uint64
		at  time.Time
	}
	var stores []st
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s binlog.Stored
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if g, err := binlog.ParseGTID(s.GTID); err == nil {
			stores = append(stores, st{g.Seq, s.Time})
		}
	}
	slices.SortFunc(stores, func(a, b st) int { return a.at.Compare(b.at) })
	for _, c := range commits {
		i := slices.IndexFunc(stores, func(s st) bool { return s.seq >= c.seq })
		if i < 0 {
			missing++
			continue
		}
		lags = append(lags, max(stores[i].at.Sub(c.at), 0))
	}
	slices.Sort(lags)
	return lags, missing
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p/100*float64(len(sorted)-1))]
}

// TestMysqlBinlogReceiveRestarts: a writer commits while the receiver is
// SIGKILLed and started again and the server is restarted and killed;
// afterwards the stored binary log is the server's, byte for byte, with
// no gap and no event twice, and mysql check is clean.
func TestMysqlBinlogReceiveRestarts(t *testing.T) {
	me := newMysqlEnv(t, testutil.MariaDBOptions{})
	w := startWriter(t, me.m, 2*time.Millisecond)
	rc := me.startReceive(t)
	waitDumping(t, me.m, rc)
	time.Sleep(1500 * time.Millisecond)
	rc.kill(t)
	time.Sleep(300 * time.Millisecond)
	killed := me.loadBinlog(t).Source(binlog.DefaultSource).End()
	rc = me.startReceive(t)
	// The new receiver streams once it stores past where the killed one
	// ended (the writer is committing); the killed one's dump thread may
	// linger on the server.
	deadline := time.Now().Add(60 * time.Second)
	for me.loadBinlog(t).Source(binlog.DefaultSource).End() == killed {
		select {
		case err := <-rc.done:
			rc.done <- err
			t.Fatalf("the receiver exited: %v\nstderr:\n%s", err, rc.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted receiver stores nothing\nstderr:\n%s", rc.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	me.m.Restart(t)
	time.Sleep(1500 * time.Millisecond)
	me.m.Kill(t)
	me.m.Start(t)
	time.Sleep(1500 * time.Millisecond)
	me.m.Exec(t, "FLUSH BINARY LOGS")
	time.Sleep(500 * time.Millisecond)
	commits := w.finish()
	cat := me.waitBinlog(t, rc)
	sum := rc.stop(t)
	if sum.Reconnects < 2 {
		t.Errorf("the receiver reconnected %d times over two server restarts", sum.Reconnects)
	}
	paths := me.sameBinlogAsServer(t, cat)
	if len(paths) < 4 {
		t.Errorf("%d binlog files stored; restarts and a flush should have made at least 4", len(paths))
	}
	// Every transaction the writer saw commit is in the index.
	s := cat.Source(binlog.DefaultSource)
	seen := map[uint64]bool{}
	s.Txns(func(_ string, x binlog.Txn) bool {
		g, _ := binlog.ParseGTID(x.GTID)
		if seen[g.Seq] {
			t.Errorf("transaction %s indexed twice", x.GTID)
		}
		seen[g.Seq] = true
		return true
	})
	for _, c := range commits {
		if !seen[c.seq] {
			t.Fatalf("committed transaction 0-1-%d is not in the stored binary log", c.seq)
		}
	}
	r := me.mustRun("--json", "mysql", "check")
	var chk MysqlCheckJSON
	if err := json.Unmarshal(r.stdout, &chk); err != nil || !chk.OK {
		t.Fatalf("mysql check: %v\n%s", err, r)
	}
	lags, missing := rpo(t, me.stats, commits)
	t.Logf("RPO over %d commits (%d not matched): p50 %v, p99 %v, max %v; reconnects %d, files %d",
		len(lags), missing, pct(lags, 50), pct(lags, 99), pct(lags, 100), sum.Reconnects, len(paths))
}

// TestMysqlBinlogBadInput: a server without a binary log, a password the
// server refuses, and damaged binlog in the repository each get a clear
// message and exit status 1.
func TestMysqlBinlogBadInput(t *testing.T) {
	me := newMysqlEnv(t, testutil.MariaDBOptions{NoBinlog: true})
	r := me.run(append([]string{"mysql", "binlog", "receive"}, me.conn()...)...)
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "binary log is off") {
		t.Errorf("server without binlog: %s", r)
	}
	bad := me.path("wrong-pw")
	if err := os.WriteFile(bad, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = me.run("mysql", "binlog", "receive", "--socket", me.m.Socket, "--user", "rewind", "--mysql-password-file", bad)
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "refused user") {
		t.Errorf("wrong password: %s", r)
	}
	if names, _ := os.ReadDir(filepath.Join(me.repo, "binlog")); len(names) != 0 {
		t.Errorf("%d binlog index files stored after failed receives", len(names))
	}
}

// TestMysqlCheckDamage: a binlog index file removed leaves a gap, and a
// pack holding binlog bytes damaged makes a piece unreadable; mysql check
// reports each and exits 1.
func TestMysqlCheckDamage(t *testing.T) {
	me := newMysqlEnv(t, testutil.MariaDBOptions{})
	rc := me.startReceive(t)
	w := startWriter(t, me.m, time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	w.finish()
	me.waitBinlog(t, rc)
	rc.stop(t)
	me.mustRun("mysql", "check")

	// Damage one pack: the pieces in it no longer read back.
	var packs []string
	_ = filepath.WalkDir(filepath.Join(me.repo, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			packs = append(packs, p)
		}
		return nil
	})
	if len(packs) == 0 {
		t.Fatal("no pack stored")
	}
	slices.Sort(packs)
	p := packs[len(packs)/2]
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data)/2; i += 7 {
		data[i] ^= 0x5a
	}
	_ = os.Chmod(p, 0o600)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := me.run("--json", "mysql", "check", "--read-data")
	var chk MysqlCheckJSON
	if err := json.Unmarshal(r.stdout, &chk); err != nil || r.code != ExitFatal || chk.OK || len(chk.Sources) != 1 || len(chk.Sources[0].Corrupt) == 0 {
		t.Fatalf("damaged pack: %v\n%s", err, r)
	}

	// Remove the binlog index file of a piece in the middle: a gap.
	idx, _ := os.ReadDir(filepath.Join(me.repo, "binlog"))
	if len(idx) < 3 {
		t.Fatalf("%d binlog index files; want at least 3", len(idx))
	}
	cat := me.loadBinlog(t)
	s := cat.Source(binlog.DefaultSource)
	all := s.AllPieces()
	mid := all[len(all)/2]
	if err := os.Remove(filepath.Join(me.repo, "binlog", mid.File.String())); err != nil {
		t.Fatal(err)
	}
	r = me.run("mysql", "check")
	if r.code != ExitFatal || !strings.Contains(string(r.stdout), "MISSING") || !strings.Contains(string(r.stderr), "problem") {
		t.Fatalf("removed index file: %s", r)
	}
}

// TestMysqlBinlogRetention: with the receiver storing the binary log and
// two logical backups in different binlog files, forget --keep-last 1
// --prune removes the binlog files before the kept backup's and nothing
// from there on; mysql check is clean before and after, and the binary log
// from the kept backup's consistent point still materializes.
func TestMysqlBinlogRetention(t *testing.T) {
	me := newMysqlEnv(t, testutil.MariaDBOptions{})
	me.m.Exec(t, "CREATE DATABASE app")
	me.m.Exec(t, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	rc := me.startReceive(t)
	insert := func(n int) {
		for i := range n {
			me.m.Exec(t, "INSERT INTO app.t (v) VALUES (?)", i)
		}
	}
	backup := func() {
		t.Helper()
		me.mustRun(append([]string{"mysql", "backup", "--logical"}, me.conn()...)...)
	}
	insert(5)
	me.m.Exec(t, "FLUSH BINARY LOGS")
	insert(5)
	backup()
	me.m.Exec(t, "FLUSH BINARY LOGS")
	insert(5)
	me.m.Exec(t, "FLUSH BINARY LOGS")
	insert(5)
	backup()
	insert(5)
	me.waitBinlog(t, rc)
	rc.stop(t)
	sns := mysqlSnapshots(t, me.env)
	if len(sns) != 2 || sns[1].MySQL == nil || sns[0].MySQL.BinlogFile == sns[1].MySQL.BinlogFile {
		t.Fatalf("snapshots: %+v", sns)
	}
	keep := sns[1].MySQL.BinlogFile
	before := me.loadBinlog(t).Source(binlog.DefaultSource).Names()
	r := me.mustRun("--json", "mysql", "check")
	var chk MysqlCheckJSON
	if err := json.Unmarshal(r.stdout, &chk); err != nil || !chk.OK || len(chk.Sources[0].Backups) != 2 || chk.Sources[0].Horizon != sns[0].MySQL.BinlogFile {
		t.Fatalf("mysql check before forget: %v %+v", err, chk)
	}

	me.mustRun("forget", "--keep-last", "1", "--prune")
	cat := me.loadBinlog(t)
	after := cat.Source(binlog.DefaultSource).Names()
	var want []string
	for _, n := range before {
		if n >= keep {
			want = append(want, n)
		}
	}
	if !slices.Equal(after, want) || len(want) == len(before) {
		t.Fatalf("after forget and prune: %v; stored before %v, the kept backup is in %s", after, before, keep)
	}
	r = me.mustRun("--json", "mysql", "check", "--read-data")
	chk = MysqlCheckJSON{}
	if err := json.Unmarshal(r.stdout, &chk); err != nil || !chk.OK || chk.Sources[0].KeepFrom != keep || len(chk.Sources[0].Backups) != 1 {
		t.Fatalf("mysql check after prune: %v %+v", err, chk)
	}
	s := cat.Source(binlog.DefaultSource)
	stop, err := s.StopFor(binlog.Target{Latest: true})
	if err != nil {
		t.Fatal(err)
	}
	rp := openRepoDir(t, me.repo, true)
	defer rp.Close()
	paths, err := binlog.Materialize(context.Background(), rp, cat, binlog.Position{File: keep, Pos: sns[1].MySQL.BinlogPos}, stop, t.TempDir())
	if err != nil || len(paths) == 0 {
		t.Fatalf("materialize from the kept backup: %v %v", paths, err)
	}
}
