package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// pitrWriter commits one row at a time, a few milliseconds apart, into
// table r (id bigserial, ts timestamptz default clock_timestamp()).
type pitrWriter struct {
	mu   sync.Mutex
	ids  []int64
	stop chan struct{}
	done chan error
}

func startPitrWriter(t *testing.T, dsn string) *pitrWriter {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	w := &pitrWriter{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer c.Close(ctx)
		for {
			select {
			case <-w.stop:
				w.done <- nil
				return
			case <-time.After(3 * time.Millisecond):
			}
			var id int64
			if err := c.QueryRow(ctx, `INSERT INTO r DEFAULT VALUES RETURNING id`).Scan(&id); err != nil {
				w.done <- err
				return
			}
			w.mu.Lock()
			w.ids = append(w.ids, id)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *pitrWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

func (w *pitrWriter) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// writeFor lets w write for d, ending a WAL segment every half second so
// that archive_command stores it promptly.
func writeFor(t *testing.T, pg *testutil.PG, w *pitrWriter, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(500 * time.Millisecond)
		pg.Exec(t, "select pg_switch_wal()")
	}
	if w.count() == 0 {
		t.Fatal("the writer committed nothing")
	}
}

// pitrRow is a committed row: its id, the time the server's commit
// record carries (track_commit_timestamp) and its ts column.
type pitrRow struct {
	id     int64
	commit time.Time
	ts     time.Time
}

// TestPgPITR is the "Restore precision" test: WAL archived with
// wal-push, a writer committing a row every few milliseconds, a base
// backup, and restores to moments between two rows' commits, to an LSN
// and to a restore point, each holding exactly the rows committed up to
// there; and the targets that cannot be restored, refused or reported.
func TestPgPITR(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand(), ArchiveTimeout: "1s",
		Settings: map[string]string{"track_commit_timestamp": "on"}})
	pg.Exec(t, `CREATE TABLE r (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())`)
	e := p.env(t)
	// rewind runs from the copy the cluster's user can execute: its path
	// is what restore_command names.
	run := func(e *env, args ...string) result {
		c := e.cmd(args...)
		c.Path, c.Args[0] = p.bin, p.bin
		return e.exec(c)
	}

	w := startPitrWriter(t, pg.DSN())
	writeFor(t, pg, w, time.Second)
	if r := p.runAs(t, pg, pg.DataDir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
		t.Fatalf("pg backup as the cluster's user: %v", r)
	}
	writeFor(t, pg, w, 2*time.Second)
	w.finish(t)
	// A quiet moment: an LSN and a restore point after every row so far.
	var beforePoint []int64
	for _, row := range pg.Query(t, "select id from r order by id") {
		id, _ := strconv.ParseInt(row[0], 10, 64)
		beforePoint = append(beforePoint, id)
	}
	lsn := pg.QueryValue(t, "select pg_current_wal_lsn()")
	pg.Exec(t, "select pg_create_restore_point('rp1')")
	w = startPitrWriter(t, pg.DSN())
	writeFor(t, pg, w, 2*time.Second)
	w.finish(t)
	waitArchived(t, pg, pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())"))

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

	var sns []struct {
		ID      string `json:"id"`
		Summary struct {
			BackupEnd time.Time `json:"backup_end"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil || len(sns) != 1 {
		t.Fatalf("snapshots: %v %+v", err, sns)
	}
	backupEnd := sns[0].Summary.BackupEnd

	n := 0
	restore := func(args ...string) (*pgx.Conn, string) {
		t.Helper()
		n++
		base := pg.MkdirOwned(t, fmt.Sprintf("pitr-%d", n))
		sock := pg.MkdirOwned(t, fmt.Sprintf("pitr-%d-sock", n))
		target := filepath.Join(base, "data")
		port := pgFreePort(t)
		if r := run(e, append([]string{"pg", "restore", "--target", target, "--start", "--no-archive",
			"--port", strconv.Itoa(port), "--socket-dir", sock}, args...)...); r.code != 0 {
			log, _ := os.ReadFile(filepath.Join(target, "rewind-start.log"))
			t.Fatalf("restore failed: %v\nthe restored server's log:\n%s", r, log)
		}
		t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
		ctx := context.Background()
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", sock, port))
		if err != nil {
			t.Fatalf("restore %v: no connection: %v", args, err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c, target
	}
	restoredIDs := func(c *pgx.Conn) []int64 {
		t.Helper()
		var inRecovery bool
		if err := c.QueryRow(context.Background(), "select pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
			t.Fatalf("restored cluster in recovery %v: %v", inRecovery, err)
		}
		rs, err := c.Query(context.Background(), "select id from r order by id")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rs, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}

	// Three moments midway between two consecutive commits after the
	// backup's end: exactly the rows committed (and written) up to then.
	var after []int
	for i := 0; i+1 < len(rows); i++ {
		if rows[i].commit.After(backupEnd) {
			after = append(after, i)
		}
	}
	if len(after) < 20 {
		t.Fatalf("only %d rows committed after the backup", len(after))
	}
	for k, frac := range []float64{0.2, 0.55, 0.9} {
		i := after[int(frac*float64(len(after)-1))]
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
		// The moment in UTC, then in another zone: both are rewind's forms.
		arg := at.UTC().Format(time.RFC3339Nano)
		if k == 1 {
			arg = at.In(time.FixedZone("", 5*3600+30*60)).Format(time.RFC3339Nano)
		}
		c, target := restore("--at", arg)
		if got := restoredIDs(c); !slices.Equal(got, want) {
			t.Errorf("--at %s: restored %d rows (ids %v..), want the %d committed at or before it (last %d)", arg, len(got), tail(got), len(want), want[len(want)-1])
		}
		if k == 0 {
			auto, err := os.ReadFile(filepath.Join(target, "postgresql.auto.conf"))
			if err != nil {
				t.Fatal(err)
			}
			conf := string(auto)
			wantCmd := fmt.Sprintf("restore_command = '%s pg wal-fetch --repo %s --password-file %s --cluster main %%f %%p'", p.bin, p.repo, p.pwFile)
			for _, s := range []string{wantCmd, "recovery_target_time = '" + at.UTC().Format("2006-01-02 15:04:05.000000") + "+00'",
				"recovery_target_inclusive = true", "recovery_target_action = 'promote'", "recovery_target_timeline = 'latest'"} {
				if !strings.Contains(conf, s) {
					t.Errorf("postgresql.auto.conf lacks %q:\n%s", s, conf)
				}
			}
			if strings.Contains(conf, testPassword) {
				t.Errorf("postgresql.auto.conf holds the password:\n%s", conf)
			}
		}
	}

	// An LSN and a restore point taken while nothing was written: every
	// row before them, none after.
	c, _ := restore("--lsn", lsn)
	if got := restoredIDs(c); !slices.Equal(got, beforePoint) {
		t.Errorf("--lsn %s: restored %d rows, want %d", lsn, len(got), len(beforePoint))
	}
	c, _ = restore("--name", "rp1")
	if got := restoredIDs(c); !slices.Equal(got, beforePoint) {
		t.Errorf("--name rp1: restored %d rows, want %d", len(got), len(beforePoint))
	}

	// Before the first backup's end: refused, naming the earliest moment.
	early := backupEnd.Add(-time.Second).UTC().Format(time.RFC3339Nano)
	r := run(e, "pg", "restore", "--at", early, "--target", e.path("early"))
	if r.code != 1 || !strings.Contains(string(r.stderr), "earliest moment that can be restored is") ||
		!strings.Contains(string(r.stderr), backupEnd.UTC().Format(time.RFC3339Nano)) {
		t.Errorf("--at before the backup's end: want exit 1 naming %s, got %v", backupEnd.UTC().Format(time.RFC3339Nano), r)
	}
	// In the future: refused.
	r = run(e, "pg", "restore", "--at", time.Now().Add(time.Hour).Format(time.RFC3339), "--target", e.path("future"))
	if r.code != 1 || !strings.Contains(string(r.stderr), "is in the future") {
		t.Errorf("--at in the future: %v", r)
	}
	// A restore point that does not exist: recovery ends without reaching
	// it, and rewind says so.
	base := pg.MkdirOwned(t, "pitr-missing")
	target := filepath.Join(base, "data")
	r = run(e, "pg", "restore", "--name", "no-such-point", "--target", target, "--start", "--no-archive",
		"--port", strconv.Itoa(pgFreePort(t)), "--socket-dir", pg.MkdirOwned(t, "pitr-missing-sock"))
	t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
	if r.code != 1 || !strings.Contains(string(r.stderr), "recovery ended before reaching the restore target") {
		t.Errorf("--name of a missing restore point: %v", r)
	}
	// A password that is not in a file cannot be named by restore_command.
	r = run(e.without("REWIND_PASSWORD_FILE").with("REWIND_PASSWORD", testPassword), "pg", "restore", "--latest", "--target", e.path("envpw"))
	if r.code != 1 || !strings.Contains(string(r.stderr), "give --password-file") {
		t.Errorf("restore with the password from REWIND_PASSWORD: %v", r)
	}
}

func tail(ids []int64) []int64 {
	if len(ids) > 3 {
		return ids[len(ids)-3:]
	}
	return ids
}
