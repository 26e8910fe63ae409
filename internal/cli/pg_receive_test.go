package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/pg/receive"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// receiver is `rewind pg receive` running as the cluster's OS user.
type receiver struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

func startReceive(t *testing.T, p *pgRepo, pg *testutil.PG, args ...string) *receiver {
	t.Helper()
	c := pg.Command(p.bin, append([]string{"--repo", p.repo, "--password-file", p.pwFile, "-v", "pg", "receive", "--dsn", pg.DSN()}, args...)...)
	rc := &receiver{cmd: c, done: make(chan error, 1)}
	c.Stdout, c.Stderr = &rc.stdout, &rc.stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { rc.done <- c.Wait() }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-rc.done
		rc.done <- nil
	})
	return rc
}

// stop sends SIGTERM and waits: the receiver must exit 0.
func (rc *receiver) stop(t *testing.T) {
	t.Helper()
	_ = rc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-rc.done:
		rc.done <- err
		if err != nil {
			t.Fatalf("pg receive after SIGTERM: %v\nstderr:\n%s", err, rc.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("pg receive did not exit after SIGTERM\nstderr:\n%s", rc.stderr.String())
	}
}

// kill sends SIGKILL and waits.
func (rc *receiver) kill() {
	_ = rc.cmd.Process.Kill()
	err := <-rc.done
	rc.done <- err
}

// waitStreaming waits until the server lists the receiver as a WAL
// sender's client streaming (with state sync when sync).
func waitStreaming(t *testing.T, pg *testutil.PG, rc *receiver, sync bool) {
	t.Helper()
	q := "select count(*) from pg_stat_replication where application_name = 'rewind' and state = 'streaming'"
	if sync {
		q += " and sync_state = 'sync'"
	}
	for i := 0; i < 300; i++ {
		if pg.QueryValue(t, q) == "1" {
			return
		}
		select {
		case err := <-rc.done:
			rc.done <- err
			t.Fatalf("pg receive exited: %v\nstderr:\n%s", err, rc.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("pg receive is not streaming\nstderr:\n%s", rc.stderr.String())
}

// pgRestoreAndConnect restores with args into a new directory, starts it
// and connects.
func pgRestoreAndConnect(t *testing.T, p *pgRepo, pg *testutil.PG, e *env, name string, args ...string) *pgx.Conn {
	t.Helper()
	base := pg.MkdirOwned(t, name)
	sock := pg.MkdirOwned(t, name+"-sock")
	target := filepath.Join(base, "data")
	port := pgFreePort(t)
	c := e.cmd(append([]string{"pg", "restore", "--target", target, "--start", "--no-archive",
		"--port", strconv.Itoa(port), "--socket-dir", sock}, args...)...)
	c.Path, c.Args[0] = p.bin, p.bin
	if r := e.exec(c); r.code != 0 {
		log, _ := os.ReadFile(filepath.Join(target, "rewind-start.log"))
		t.Fatalf("restore %v failed: %v\nthe restored server's log:\n%s", args, r, log)
	}
	t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", sock, port))
	if err != nil {
		t.Fatalf("restore %v: no connection: %v", args, err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func queryIDs(t *testing.T, c *pgx.Conn, q string) []int64 {
	t.Helper()
	rs, err := c.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rs, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// startPgbench runs pgbench (2 clients, rate-limited) for d in the
// background.
func startPgbench(t *testing.T, pg *testutil.PG, d time.Duration) func() {
	t.Helper()
	if out, err := pg.Command("pgbench", "-i", "-s", "1", "-q").CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	c := pg.Command("pgbench", "-c", "2", "-R", "300", "-T", strconv.Itoa(int(d/time.Second)+1), "-n")
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = c.Process.Signal(syscall.SIGINT)
		_ = c.Wait()
	}
}

// TestPgReceivePrecision is the "Restore precision" test for
// streamed WAL: no archive_command, only pg receive; a writer commits one
// row every few milliseconds under pgbench load; restores to moments
// midway between two commits hold exactly the rows committed by then, the
// last from WAL stored only as a partial segment.
func TestPgReceivePrecision(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{Settings: map[string]string{"track_commit_timestamp": "on"}})
	pg.Exec(t, `CREATE TABLE r (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())`)
	e := p.env(t)
	pg.Exec(t, "select pg_create_physical_replication_slot('rw', true)")
	if r := p.runAs(t, pg, pg.DataDir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
		t.Fatalf("pg backup: %v", r)
	}
	stats := filepath.Join(p.dir, "stats.jsonl")
	rc := startReceive(t, p, pg, "--slot", "rw", "--stats", stats)
	waitStreaming(t, pg, rc, false)
	stopBench := startPgbench(t, pg, 5*time.Second)
	w := startPitrWriter(t, pg.DSN())
	time.Sleep(5 * time.Second)
	w.finish(t)
	stopBench()
	// The last rows reach the repository within the interval.
	time.Sleep(2 * time.Second)
	rc.stop(t)
	if !strings.Contains(rc.stdout.String(), "received") {
		t.Errorf("pg receive printed no summary: %s", rc.stdout.String())
	}
	sl, _ := os.ReadFile(stats)
	if !strings.Contains(string(sl), ".partial") {
		t.Errorf("no partial segment was stored:\n%s", sl)
	}

	var rows []pitrRow
	for _, row := range pg.Query(t, `select id, to_char(pg_xact_commit_timestamp(xmin) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') from r order by id`) {
		id, _ := strconv.ParseInt(row[0], 10, 64)
		ct, err1 := time.Parse(time.RFC3339Nano, row[1])
		ts, err2 := time.Parse(time.RFC3339Nano, row[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("row %v: %v %v", row, err1, err2)
		}
		rows = append(rows, pitrRow{id, ct, ts})
	}
	if len(rows) < 50 {
		t.Fatalf("only %d rows", len(rows))
	}
	// Moments midway between consecutive commits at least 2ms apart,
	// the last near the end (in the partial segment).
	for k, frac := range []float64{0.3, 0.7, 0.98} {
		i := int(frac * float64(len(rows)-2))
		for i+1 < len(rows) && rows[i+1].commit.Sub(rows[i].commit) < 2*time.Millisecond {
			i++
		}
		at := rows[i].commit.Add(rows[i+1].commit.Sub(rows[i].commit) / 2)
		var want, byTS []int64
		for _, row := range rows {
			if !row.commit.After(at) {
				want = append(want, row.id)
			}
			if !row.ts.After(at) {
				byTS = append(byTS, row.id)
			}
		}
		if !slices.Equal(want, byTS) {
			t.Fatalf("moment %s: the rows committed by then (%d) are not those written by then (%d)", at.Format(time.RFC3339Nano), len(want), len(byTS))
		}
		c := pgRestoreAndConnect(t, p, pg, e, fmt.Sprintf("recv-%d", k), "--at", at.UTC().Format(time.RFC3339Nano))
		if got := queryIDs(t, c, "select id from r order by id"); !slices.Equal(got, want) {
			t.Errorf("--at %s: restored %d rows (ids %v..), want the %d committed at or before it (last %d)", at.Format(time.RFC3339Nano), len(got), tail(got), len(want), want[len(want)-1])
		}
	}
}

// TestPgReceiveSynchronous: with the receiver in synchronous_standby_names,
// every commit the client saw acknowledged is in a restore made after the
// primary and the receiver were SIGKILLed and the primary's data directory
// deleted.
func TestPgReceiveSynchronous(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{Settings: map[string]string{"synchronous_standby_names": "'rewind'"}})
	e := p.env(t)
	rc := startReceive(t, p, pg, "--slot", "rs", "--create-slot", "--synchronous")
	waitStreaming(t, pg, rc, true)
	pg.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, filler text)`)
	if r := p.runAs(t, pg, pg.DataDir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
		t.Fatalf("pg backup: %v", r)
	}
	var mu sync.Mutex
	var acked []int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, pg.DSN())
			if err != nil {
				t.Logf("writer %d: %v", c, err)
				return
			}
			for id := int64(c); ctx.Err() == nil; id += 4 {
				if _, err := conn.Exec(ctx, `INSERT INTO t VALUES ($1, repeat('s', 200))`, id); err != nil {
					if ctx.Err() == nil {
						t.Logf("writer %d: %v", c, err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	// Commits go on for a second after the first 30 were acknowledged
	// (storing the backup's segments first may take a while).
	for i := 0; i < 600; i++ {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 30 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	// The worst moment: the receiver dies with the server, in the middle
	// of the commits, so that nothing it received but had not stored yet
	// can be saved by a clean exit.
	rc.kill()
	pg.Kill(t)
	cancel()
	wg.Wait()
	if err := os.RemoveAll(pg.DataDir); err != nil {
		t.Fatal(err)
	}
	if len(acked) < 20 {
		t.Fatalf("only %d commits acknowledged\nreceiver's stderr:\n%s", len(acked), rc.stderr.String())
	}
	c := pgRestoreAndConnect(t, p, pg, e, "sync", "--latest")
	got := queryIDs(t, c, "select id from t order by id")
	slices.Sort(acked)
	var lost []int64
	for _, id := range acked {
		if _, ok := slices.BinarySearch(got, id); !ok {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged commits lost (ids %v...)", len(lost), len(acked), lost[:min(5, len(lost))])
	}
	t.Logf("%d commits acknowledged, %d rows restored", len(acked), len(got))
}

// TestPgReceiveCrash kills pg receive at random moments while a writer
// commits and segments switch; restarted each time, it stores no segment
// twice with other content, and pg check is clean.
func TestPgReceiveCrash(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	pg.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, filler text)`)
	e := p.env(t)
	pg.Exec(t, "select pg_create_physical_replication_slot('rc', true)")
	if r := p.runAs(t, pg, pg.DataDir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
		t.Fatalf("pg backup: %v", r)
	}
	w := startPgWriter(t, pg.DSN(), 1)
	for i := 0; i < 4; i++ {
		rc := startReceive(t, p, pg, "--slot", "rc", "--interval", "100ms")
		time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
		if i%2 == 0 {
			pg.Exec(t, "select pg_switch_wal()")
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
		rc.kill()
		// It ran until killed: nothing stopped it early.
		if strings.Contains(rc.stderr.String(), "level=ERROR") || strings.Contains(rc.stderr.String(), "rewind:") {
			t.Fatalf("pg receive run %d failed before it was killed:\n%s", i, rc.stderr.String())
		}
	}
	w.finish(t)
	// The server restarts under a running receiver: it reconnects and
	// goes on.
	rc := startReceive(t, p, pg, "--json", "--slot", "rc")
	waitStreaming(t, pg, rc, false)
	pg.Stop(t, "fast")
	pg.Start(t)
	waitStreaming(t, pg, rc, false)
	w2 := startPgWriter(t, pg.DSN(), 1_000_000)
	time.Sleep(time.Second)
	rows := w.count() + len(w2.finish(t))
	time.Sleep(2 * time.Second)
	rc.stop(t)
	var sum PgReceiveJSON
	if err := json.Unmarshal(rc.stdout.Bytes(), &sum); err != nil || sum.Reconnects < 1 || sum.Slot != "rc" {
		t.Errorf("pg receive --json after a server restart: %v %+v\n%s", err, sum, rc.stdout.String())
	}
	r := e.mustRun("pg", "wal-list")
	if strings.Contains(string(r.stderr), "other content") || strings.Contains(string(r.stderr), "warning") {
		t.Errorf("wal-list after crashes: %s", r.stderr)
	}
	if r := e.run("pg", "check"); r.code != 0 {
		t.Errorf("pg check after crashes: %v", r)
	}
	// The restore holds every row.
	c := pgRestoreAndConnect(t, p, pg, e, "crash", "--latest")
	want := queryIDs(t, c, "select count(*) from t")
	if len(want) != 1 || want[0] != int64(rows) {
		t.Errorf("restored %v rows, want %d", want, rows)
	}
}

// TestPgReceiveBadInput: a missing slot and another cluster's server are
// refused with clear errors, and nothing is stored.
func TestPgReceiveBadInput(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	e := p.env(t)
	before := p.storedFiles(t)
	r := e.run("pg", "receive", "--dsn", pg.DSN(), "--slot", "nosuch")
	if r.code != 1 || !strings.Contains(string(r.stderr), `replication slot does not exist: "nosuch"`) || !strings.Contains(string(r.stderr), "--create-slot") {
		t.Errorf("missing slot: %v", r)
	}
	if after := p.storedFiles(t); !slices.Equal(before, after) {
		t.Errorf("a missing slot stored files: %v", after)
	}
	// WAL of this cluster stored, then another server under the name.
	rc := startReceive(t, p, pg, "--slot", "a", "--create-slot")
	waitStreaming(t, pg, rc, false)
	pg.Exec(t, "create table x as select generate_series(1, 1000) i")
	time.Sleep(1500 * time.Millisecond)
	rc.stop(t)
	other := testutil.StartPostgres(t, testutil.PGOptions{})
	other.Exec(t, "select pg_create_physical_replication_slot('a', true)")
	before = p.storedFiles(t)
	orc := startReceive(t, p, other, "--slot", "a")
	select {
	case err := <-orc.done:
		orc.done <- err
		msg := orc.stderr.String()
		if err == nil || !strings.Contains(msg, "WAL from another cluster") || !strings.Contains(msg, strconv.FormatUint(other.SystemID(t), 10)) {
			t.Errorf("another cluster: %v\n%s", err, msg)
		}
	case <-time.After(30 * time.Second):
		orc.kill()
		t.Errorf("pg receive from another cluster's server was not refused:\n%s", orc.stderr.String())
	}
	if after := p.storedFiles(t); !slices.Equal(before, after) {
		t.Errorf("another cluster stored files: %v", after)
	}
}

// TestPgReceiveRPO measures (it asserts nothing about time) how soon a
// commit's WAL is stored under pgbench at about 500 transactions a
// second: set REWIND_RECEIVE_RPO=1 (and REWIND_RECEIVE_RPO_SECONDS).
func TestPgReceiveRPO(t *testing.T) {
	if os.Getenv("REWIND_RECEIVE_RPO") == "" {
		t.Skip("a measurement: set REWIND_RECEIVE_RPO=1")
	}
	secs := 30
	if v, err := strconv.Atoi(os.Getenv("REWIND_RECEIVE_RPO_SECONDS")); err == nil {
		secs = v
	}
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	pg.Exec(t, `CREATE TABLE m (id bigserial PRIMARY KEY, ts timestamptz DEFAULT clock_timestamp())`)
	stats := filepath.Join(p.dir, "stats.jsonl")
	args := []string{"--slot", "rpo", "--create-slot", "--stats", stats}
	if os.Getenv("REWIND_RECEIVE_RPO_SYNC") != "" {
		args = append(args, "--synchronous")
	}
	rc := startReceive(t, p, pg, args...)
	waitStreaming(t, pg, rc, false)
	if out, err := pg.Command("pgbench", "-i", "-s", "10", "-q").CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	bench := pg.Command("pgbench", "-c", "4", "-j", "2", "-R", "500", "-T", strconv.Itoa(secs), "-n")
	var benchOut bytes.Buffer
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var commits []receive.Commit
	end := time.Now().Add(time.Duration(secs) * time.Second)
	for time.Now().Before(end) {
		if _, err := c.Exec(ctx, "INSERT INTO m DEFAULT VALUES"); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		var lsn string
		if err := c.QueryRow(ctx, "select pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		l, _ := wal.ParseLSN(lsn)
		commits = append(commits, receive.Commit{Time: at, LSN: l})
		time.Sleep(10 * time.Millisecond)
	}
	_ = bench.Wait()
	time.Sleep(2 * time.Second)
	rc.stop(t)
	stores, err := receive.ReadStats(stats)
	if err != nil {
		t.Fatal(err)
	}
	lags, missing := receive.Lags(stores, commits)
	t.Logf("pgbench: %s", lastLines(benchOut.String(), 4))
	t.Logf("%d commits sampled, %d never stored, %d stores; RPO p50 %v, p99 %v, max %v",
		len(commits), missing, len(stores), receive.Percentile(lags, 50), receive.Percentile(lags, 99), receive.Percentile(lags, 100))
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], " | ")
}

// TestPgReceiveTimeline: the receiver streams from a standby, which is
// promoted; it stores the new timeline's history file, goes on on
// timeline 2, and a restore of the latest state holds the rows written
// on both timelines.
func TestPgReceiveTimeline(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	e := p.env(t)
	pg.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, filler text)`)
	if r := p.runAs(t, pg, pg.DataDir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
		t.Fatalf("pg backup: %v", r)
	}
	// A standby of pg.
	sb := testutil.StartPostgres(t, testutil.PGOptions{NoStart: true})
	if err := os.RemoveAll(sb.DataDir); err != nil {
		t.Fatal(err)
	}
	if out, err := sb.Command("pg_basebackup", "-D", sb.DataDir, "-R", "-X", "stream", "-d", pg.DSN()).CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	for name, text := range map[string]string{
		"rewind_port.conf":     fmt.Sprintf("port = %d\n", sb.Port),
		"postgresql.auto.conf": "", // appended below
	} {
		path := filepath.Join(sb.DataDir, name)
		if name == "postgresql.auto.conf" {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(f, "unix_socket_directories = '%s'\n", sb.SocketDir)
			f.Close()
			continue
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Chown(path, sb.UID, sb.GID)
	}
	sb.Start(t)
	rc := startReceive(t, p, sb, "--json", "--slot", "tl", "--create-slot")
	waitStreaming(t, sb, rc, false)
	w := startPgWriter(t, pg.DSN(), 1)
	time.Sleep(time.Second)
	before := w.finish(t)
	for i := 0; i < 100 && sb.QueryValue(t, "select count(*) from t") != strconv.Itoa(len(before)); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	pg.Stop(t, "fast")
	if out, err := sb.Command("pg_ctl", "-D", sb.DataDir, "-w", "promote").CombinedOutput(); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	w2 := startPgWriter(t, sb.DSN(), 1_000_000)
	time.Sleep(2 * time.Second)
	after := w2.finish(t)
	time.Sleep(3 * time.Second)
	rc.stop(t)
	var sum PgReceiveJSON
	if err := json.Unmarshal(rc.stdout.Bytes(), &sum); err != nil || sum.Timeline != 2 || sum.Histories < 1 {
		t.Errorf("pg receive --json after the promotion: %v %+v\n%s\n%s", err, sum, rc.stdout.String(), rc.stderr.String())
	}
	l := walList(t, e)
	names := []string{}
	for _, f := range l.Clusters[0].Files {
		names = append(names, f.Name)
	}
	if !slices.Contains(names, "00000002.history") {
		t.Errorf("no 00000002.history stored: %v", names)
	}
	c := pgRestoreAndConnect(t, p, pg, e, "tl", "--latest")
	got := queryIDs(t, c, "select count(*) from t")
	if want := int64(len(before) + len(after)); len(got) != 1 || got[0] != want {
		t.Errorf("restored %v rows, want %d (%d on timeline 1, %d on 2)", got, want, len(before), len(after))
	}
}
