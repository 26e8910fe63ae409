package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestPgPrespool: pg restore --at T spools the WAL recovery needs before
// the server starts, and recovery replays it exactly to T with no
// wal-fetch opening the repository: every segment from the spool, and
// PostgreSQL's probe for the next timeline's history file (which was
// never stored) answered from the pre-spool's history catalog. The
// spool is gone afterwards. The same restore with --prespool 0 opens the
// repository, which is what the pre-spool saves.
func TestPgPrespool(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand(), ArchiveTimeout: "1s",
		Settings: map[string]string{"track_commit_timestamp": "on"}})
	pg.Exec(t, `CREATE TABLE r (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())`)
	e := p.env(t)
	run := func(args ...string) result {
		c := e.cmd(args...)
		c.Path, c.Args[0] = p.bin, p.bin
		return e.exec(c)
	}
	w := startPitrWriter(t, pg.DSN())
	writeFor(t, pg, w, time.Second)
	if r := p.runAs(t, pg, pg.DataDir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
		t.Fatalf("pg backup as the cluster's user: %v", r)
	}
	writeFor(t, pg, w, 3*time.Second)
	w.finish(t)
	waitArchived(t, pg, pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())"))

	var commits []time.Time
	var ids []int64
	for _, row := range pg.Query(t, `select id, to_char(pg_xact_commit_timestamp(xmin) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') from r order by id`) {
		id, _ := strconv.ParseInt(row[0], 10, 64)
		ct, err := time.Parse(time.RFC3339Nano, row[1])
		if err != nil {
			t.Fatal(err)
		}
		ids, commits = append(ids, id), append(commits, ct)
	}
	// A moment between two commits, three quarters into the writes: several
	// segments to replay.
	i := len(commits) * 3 / 4
	at := commits[i].Add(commits[i+1].Sub(commits[i]) / 2)
	var want []int64
	for k, c := range commits {
		if !c.After(at) {
			want = append(want, ids[k])
		}
	}

	n := 0
	var repoNotStored []string // the last restore's "not stored" lines from the repository
	restore := func(extra ...string) (pre *jsonPgPrespool, f jsonPgFetches, took time.Duration) {
		t.Helper()
		n++
		base := pg.MkdirOwned(t, fmt.Sprintf("prespool-%d", n))
		sock := pg.MkdirOwned(t, fmt.Sprintf("prespool-%d-sock", n))
		target := filepath.Join(base, "data")
		port := pgFreePort(t)
		t0 := time.Now()
		r := run(append([]string{"--json", "pg", "restore", "--at", at.UTC().Format(time.RFC3339Nano), "--target", target, "--start", "--no-archive",
			"--port", strconv.Itoa(port), "--socket-dir", sock}, extra...)...)
		took = time.Since(t0)
		t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
		log, _ := os.ReadFile(filepath.Join(target, "rewind-start.log"))
		if r.code != 0 {
			t.Fatalf("restore %v: %v\nthe server's log:\n%s", extra, r, log)
		}
		gotFetches := false
		for _, l := range jsonLines(t, r) {
			switch l.obj["message_type"] {
			case "prespool":
				pre = &jsonPgPrespool{}
				checkDoc(t, "pg.restore.prespool", l.raw, pre)
			case "recovery_fetches":
				checkDoc(t, "pg.restore.fetches", l.raw, &f)
				gotFetches = true
			}
		}
		if !gotFetches {
			t.Fatalf("restore %v printed no recovery_fetches line: %s", extra, r.stdout)
		}
		// The counts are the server log's wal-fetch lines.
		if c := strings.Count(string(log), "from the spool"); c != f.Spool {
			t.Errorf("recovery_fetches.spool %d, the log has %d lines", f.Spool, c)
		}
		ctx := context.Background()
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", sock, port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		rs, err := c.Query(ctx, "select id from r order by id")
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rs, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("restore %v to %s: %d rows (last %v), want the %d committed by then (last %d)", extra, at.Format(time.RFC3339Nano), len(got), tail(got), len(want), want[len(want)-1])
		}
		if _, err := os.Stat(filepath.Join(target, "pg_wal", ".rewind-prefetch")); !os.IsNotExist(err) {
			t.Errorf("restore %v: the spool is left after recovery: %v", extra, err)
		}
		if ents, _ := os.ReadDir(base); len(ents) != 1 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("restore %v: beside the data directory: %v, want nothing else", extra, names)
		}
		repoNotStored = nil
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "pg wal-fetch: ") && strings.Contains(l, "is not stored") && !strings.Contains(l, "pre-spool") {
				repoNotStored = append(repoNotStored, l)
			}
		}
		if f.RepositoryOpens > 0 {
			var lines []string
			for _, l := range strings.Split(string(log), "\n") {
				if strings.Contains(l, "wal-fetch") || strings.Contains(l, "recovery stopping") || strings.Contains(l, "restored log file") {
					lines = append(lines, l)
				}
			}
			t.Logf("restore %v: the server's wal-fetch lines:\n%s", extra, strings.Join(lines, "\n"))
		}
		return pre, f, took
	}

	pre, f, took := restore()
	t.Logf("with pre-spool: %+v, fetches %+v, %s", pre, f, took.Round(time.Millisecond))
	if pre == nil || pre.Segments < 3 || pre.Segments != pre.Planned || pre.TargetTimeline != 1 {
		t.Errorf("pre-spool: %+v, want several segments, all planned spooled, on timeline 1", pre)
	}
	// Every file recovery took came from the spool, and every history
	// probe was answered by the marker. (A read-ahead past the end of the
	// archive may still open the repository for a segment that is not
	// stored: that is not a file taken.)
	if f.Repository != 0 || f.Spool < 3 || f.NotStoredMarker == 0 || f.NotStored != len(repoNotStored) {
		t.Errorf("recovery with pre-spool: %+v; want every file from the spool, the history probes answered from the marker", f)
	}
	for _, l := range repoNotStored {
		if strings.Contains(l, ".history") {
			t.Errorf("a history probe opened the repository: %s", l)
		}
	}

	pre, f, took = restore("--prespool", "0")
	t.Logf("without pre-spool: fetches %+v, %s", f, took.Round(time.Millisecond))
	if pre != nil || f.RepositoryOpens == 0 || f.NotStoredMarker != 0 {
		t.Errorf("recovery without pre-spool: prespool %+v, fetches %+v; want the repository opened", pre, f)
	}
}
