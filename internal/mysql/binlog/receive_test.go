package binlog

import (
	"bytes"
	"context"
	"database/sql"
	"github.com/rewind-backup/rewind/internal/repository/repotest"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// conn is how the tests' receiver reaches m: the rewind user over the
// socket.
func conn(t *testing.T, m *testutil.MariaDB) Server {
	t.Helper()
	dsn := "rewind:" + testutil.MariaDBPassword + "@unix(" + m.Socket + ")/"
	return Server{Socket: m.Socket, User: "rewind", Password: testutil.MariaDBPassword, Addr: m.Socket,
		Open: func(ctx context.Context) (*sql.DB, error) {
			db, err := sql.Open("mysql", dsn)
			if err != nil {
				return nil, err
			}
			if err := db.PingContext(ctx); err != nil {
				db.Close()
				return nil, err
			}
			return db, nil
		}}
}

// running is a Receive in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
	sum    *ReceiveSummary
	mu     sync.Mutex
	stores []Stored
}

func startReceive(t *testing.T, r *repository.Repository, opt ReceiveOptions) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{cancel: cancel, done: make(chan error, 1)}
	opt.OnStore = func(s Stored) {
		rr.mu.Lock()
		rr.stores = append(rr.stores, s)
		rr.mu.Unlock()
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	if opt.ServerID == 0 {
		opt.ServerID = 4242
	}
	go func() {
		sum, err := Receive(ctx, r, opt)
		rr.sum = sum
		rr.done <- err
	}()
	t.Cleanup(func() {
		cancel()
	})
	return rr
}

func (rr *running) stop(t *testing.T) *ReceiveSummary {
	t.Helper()
	rr.cancel()
	select {
	case err := <-rr.done:
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Receive did not stop")
	}
	return rr.sum
}

// serverEnd returns the server's current binlog file and position.
func serverEnd(t *testing.T, m *testutil.MariaDB) Position {
	t.Helper()
	rows := m.Query(t, "SHOW MASTER STATUS")
	var p Position
	p.File = rows[0][0]
	var n uint64
	for _, c := range rows[0][1] {
		n = n*10 + uint64(c-'0')
	}
	p.Pos = n
	return p
}

// waitStored waits until the repository's binlog reaches the server's end.
func waitStored(t *testing.T, open func() *repository.Repository, m *testutil.MariaDB) *Catalog {
	t.Helper()
	want := serverEnd(t, m)
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := open()
		cat, err := Load(context.Background(), r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if s := cat.Source(DefaultSource); s != nil && s.End() == want {
			return cat
		}
		if time.Now().After(deadline) {
			var got Position
			if s := cat.Source(DefaultSource); s != nil {
				got = s.End()
			}
			t.Fatalf("stored binlog ends at %v, server at %v (unreadable %v)", got, want, cat.Unreadable)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sameAsServer checks that every stored file is the server's file (a
// prefix of it for the newest) and that the catalog has no gap.
func sameAsServer(t *testing.T, open func() *repository.Repository, cat *Catalog, m *testutil.MariaDB) []string {
	t.Helper()
	s := cat.Source(DefaultSource)
	if s == nil {
		t.Fatal("nothing stored")
	}
	if g := s.Gaps(); len(g) > 0 {
		t.Fatalf("gaps: %+v", g)
	}
	if len(cat.Conflicts) > 0 {
		t.Fatalf("conflicts: %+v", cat.Conflicts)
	}
	names := s.Names()
	stop, err := s.StopFor(Target{Latest: true})
	if err != nil {
		t.Fatal(err)
	}
	last := names[len(names)-1]
	stop.File = last
	stop.Pos = s.End().Pos
	dir := t.TempDir()
	paths, err := Materialize(context.Background(), open(), cat, Position{names[0], 4}, stop, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(names) {
		t.Fatalf("materialized %d files, %d stored", len(paths), len(names))
	}
	for _, p := range paths {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(m.DataDir, filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(p) == last && len(want) > inUseOffset {
			// The file the server writes is marked in use in its
			// format description event until it is closed; the
			// server sends the event without the mark.
			want[inUseOffset] &^= 1
		}
		if filepath.Base(p) != last && len(got) != len(want) {
			t.Errorf("%s: %d bytes stored, the server's file has %d", filepath.Base(p), len(got), len(want))
		}
		if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
			n := 0
			for n < len(got) && n < len(want) && got[n] == want[n] {
				n++
			}
			t.Fatalf("%s: stored bytes differ from the server's file at offset %d (%d stored, %d on the server)", filepath.Base(p), n, len(got), len(want))
		}
		// The stored transactions are where a scan of the file puts them.
		txns, _, err := ScanFile(got)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var stored []Txn
		for _, sp := range s.Pieces(filepath.Base(p)) {
			stored = append(stored, sp.Txns...)
		}
		if len(txns) != len(stored) {
			t.Fatalf("%s: index lists %d transactions, the file has %d", p, len(stored), len(txns))
		}
		for i := range txns {
			if txns[i] != stored[i] {
				t.Fatalf("%s: transaction %d: index %+v, file %+v", p, i, stored[i], txns[i])
			}
		}
	}
	return paths
}

// inUseOffset is where the in-use flag of a binlog file's format
// description event is.
const inUseOffset = 4 + 17

func TestReceiveStoresServerBinlogExactly(t *testing.T) {
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	open := repotest.Reopener(t)
	m.Exec(t, "CREATE DATABASE app")
	m.Exec(t, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100), at DATETIME(6))")
	rr := startReceive(t, open(), ReceiveOptions{Conn: conn(t, m)})
	for i := range 200 {
		m.Exec(t, "INSERT INTO app.t (v, at) VALUES (?, NOW(6))", strings.Repeat("x", i%50))
		if i == 80 {
			m.Exec(t, "FLUSH BINARY LOGS")
		}
		if i == 150 {
			m.Exec(t, "BEGIN")
			m.Exec(t, "UPDATE app.t SET v = 'y' WHERE id < 10")
			m.Exec(t, "COMMIT")
		}
	}
	cat := waitStored(t, open, m)
	sum := rr.stop(t)
	t.Logf("summary %+v", sum)
	paths := sameAsServer(t, open, cat, m)
	// mariadb-binlog reads the files.
	mb := testutil.MariaDBProgram(t, "mariadb-binlog")
	out, err := exec.Command(mb, paths...).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-binlog: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("INSERT")) && !bytes.Contains(out, []byte("Write_rows")) {
		t.Fatalf("mariadb-binlog output has no row event:\n%.2000s", out)
	}
	rr.mu.Lock()
	n := len(rr.stores)
	rr.mu.Unlock()
	if n == 0 {
		t.Fatal("no store reported")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// status reads one of the server's status variables.
func status(t *testing.T, m *testutil.MariaDB, name string) string {
	t.Helper()
	rows := m.Query(t, "SHOW GLOBAL STATUS LIKE '"+name+"'")
	if len(rows) == 0 {
		t.Fatalf("no status variable %s", name)
	}
	return rows[0][1]
}

// TestReceiveSemiSync: with the server's semi-sync on and --semi-sync,
// a commit returns only once its transaction is in the repository, and
// the server never falls back to asynchronous replication.
func TestReceiveSemiSync(t *testing.T) {
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	open := repotest.Reopener(t)
	m.Exec(t, "CREATE DATABASE app")
	m.Exec(t, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	// On once the server is set up: without a replica, a semi-sync
	// commit waits the whole timeout.
	m.Exec(t, "SET GLOBAL rpl_semi_sync_master_timeout = 30000")
	m.Exec(t, "SET GLOBAL rpl_semi_sync_master_enabled = 1")
	rr := startReceive(t, open(), ReceiveOptions{Conn: conn(t, m), SemiSync: true})
	deadline := time.Now().Add(30 * time.Second)
	for status(t, m, "Rpl_semi_sync_master_clients") != "1" || status(t, m, "Rpl_semi_sync_master_status") != "ON" {
		if time.Now().After(deadline) {
			t.Fatal("the receiver did not become a semi-sync replica")
		}
		select {
		case err := <-rr.done:
			t.Fatalf("Receive ended: %v", err)
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	db := m.DB(t)
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var lat []time.Duration
	// More commits than CompactAfter: a compaction runs in the background
	// while commits go on, and each commit is still found stored.
	for i := range CompactAfter + 8 {
		start := time.Now()
		if _, err := c.ExecContext(ctx, "INSERT INTO app.t (v) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		var gtid string
		if err := c.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid); err != nil {
			t.Fatal(err)
		}
		// Right after the commit returned: the transaction is stored.
		r := open()
		cat, err := Load(ctx, r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cat.StopFor(Target{GTID: gtid}); err != nil {
			select {
			case rerr := <-rr.done:
				t.Fatalf("commit %d (%s) returned, but: %v; Receive ended: %v", i, gtid, err, rerr)
			default:
			}
			t.Fatalf("commit %d (%s) returned, but: %v", i, gtid, err)
		}
	}
	if n := status(t, m, "Rpl_semi_sync_master_no_tx"); n != "0" {
		t.Errorf("the server committed %s transactions without an acknowledgement", n)
	}
	yes := status(t, m, "Rpl_semi_sync_master_yes_tx")
	sum := rr.stop(t)
	if !sum.SemiSync {
		t.Error("the summary says the receiver was not semi-sync")
	}
	r := open()
	files, err := r.List(ctx, backend.BinlogFile)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Stores < CompactAfter || len(files) >= sum.Stores {
		t.Errorf("%d stores left %d binlog index files: no compaction merged them", sum.Stores, len(files))
	}
	slices.Sort(lat)
	t.Logf("semi-sync commit latency (commit to stored and acknowledged) over %d commits: p50 %v, max %v; acknowledged %s", len(lat), lat[len(lat)/2], lat[len(lat)-1], yes)
}

// TestReceiveStoresOnStop: what is received but not stored yet (here: no
// store is due for an hour) is stored when the receiver is stopped.
func TestReceiveStoresOnStop(t *testing.T) {
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	open := repotest.Reopener(t)
	m.Exec(t, "CREATE DATABASE app")
	m.Exec(t, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	rr := startReceive(t, open(), ReceiveOptions{Conn: conn(t, m), Idle: time.Hour, FlushInterval: time.Hour, MinInterval: time.Hour})
	for i := range 20 {
		m.Exec(t, "INSERT INTO app.t (v) VALUES (?)", i)
	}
	want := serverEnd(t, m)
	// Wait until the server has sent it all: its dump thread waits for
	// more.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(m.QueryValue(t, "SELECT COALESCE(MAX(STATE), '') FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'"), "has sent all binlog") {
		if time.Now().After(deadline) {
			t.Fatal("the server's dump thread did not send everything")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := open()
	cat, err := Load(context.Background(), r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s := cat.Source(DefaultSource); s != nil && s.End() == want {
		t.Fatal("everything was stored before the stop: the test proves nothing")
	}
	sum := rr.stop(t)
	if sum.End != want {
		t.Fatalf("stopped with the binlog stored up to %v, the server's ends at %v", sum.End, want)
	}
	sameAsServer(t, open, waitStored(t, open, m), m)
}

// TestReceiveStartGTID: --start-gtid starts at the beginning of the file
// holding the transactions after the GTID.
func TestReceiveStartGTID(t *testing.T) {
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	m.Exec(t, "CREATE DATABASE app")
	m.Exec(t, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	var gtids []string
	for f := range 3 {
		for i := range 3 {
			m.Exec(t, "INSERT INTO app.t (v) VALUES (?)", f*10+i)
		}
		gtids = append(gtids, m.QueryValue(t, "SELECT @@gtid_binlog_pos"))
		if f < 2 {
			m.Exec(t, "FLUSH BINARY LOGS")
		}
	}
	for _, c := range []struct {
		gtid, file string
	}{{gtids[0], "mysql-bin.000002"}, {gtids[1], "mysql-bin.000003"}, {"0-1-1", "mysql-bin.000001"}} {
		open := repotest.Reopener(t)
		rr := startReceive(t, open(), ReceiveOptions{Conn: conn(t, m), StartGTID: c.gtid})
		cat := waitStored(t, open, m)
		rr.stop(t)
		if names := cat.Source(DefaultSource).Names(); names[0] != c.file {
			t.Errorf("--start-gtid %s: stored from %s, want %s", c.gtid, names[0], c.file)
		}
		sameAsServer(t, open, cat, m)
	}
}

// TestReceiveRPO measures, under steady single-row commits and nothing
// else, how long after a commit returned its transaction was stored (a
// log line, not an assertion; the restart test measures it across
// restarts). Every commit must be stored in the end.
func TestReceiveRPO(t *testing.T) {
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	open := repotest.Reopener(t)
	m.Exec(t, "CREATE DATABASE app")
	m.Exec(t, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	rr := startReceive(t, open(), ReceiveOptions{Conn: conn(t, m)})
	ctx := context.Background()
	c, err := m.DB(t).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type commit struct {
		at  time.Time
		seq uint64
	}
	var commits []commit
	end := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		if _, err := c.ExecContext(ctx, "INSERT INTO app.t (v) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		var gtid string
		if err := c.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid); err != nil {
			t.Fatal(err)
		}
		g, err := ParseGTID(gtid)
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, commit{at, g.Seq})
		time.Sleep(5 * time.Millisecond)
	}
	waitStored(t, open, m)
	rr.stop(t)
	rr.mu.Lock()
	stores := rr.stores
	rr.mu.Unlock()
	var lags []time.Duration
	for _, cm := range commits {
		i := slices.IndexFunc(stores, func(s Stored) bool {
			g, err := ParseGTID(s.GTID)
			return err == nil && g.Seq >= cm.seq
		})
		if i < 0 {
			t.Fatalf("commit 0-1-%d never stored", cm.seq)
		}
		lags = append(lags, max(stores[i].Time.Sub(cm.at), 0))
	}
	slices.Sort(lags)
	t.Logf("steady RPO over %d commits, %d stores: p50 %v, p99 %v, max %v", len(lags), len(stores),
		lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
}
