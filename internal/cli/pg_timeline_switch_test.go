package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestPgTimelineSwitch is the "Timelines" test: a restore to a
// moment T, promoted (timeline 2) and archiving into the same
// repository, more writes on it, then restores on the new timeline: to a
// moment after the promotion, and to the latest WAL. Each holds the rows
// of timeline 1 up to T and those of timeline 2 up to its target, never
// the rows timeline 1 wrote after T. `rewind timeline` shows the switch.
func TestPgTimelineSwitch(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand(), ArchiveTimeout: "1s",
		Settings: map[string]string{"track_commit_timestamp": "on"}})
	pg.Exec(t, `CREATE TABLE r (id bigserial PRIMARY KEY, tl int NOT NULL DEFAULT 1, ts timestamptz NOT NULL DEFAULT clock_timestamp())`)
	e := p.env(t)
	run := func(args ...string) result {
		c := e.cmd(args...)
		c.Path, c.Args[0] = p.bin, p.bin
		return e.exec(c)
	}
	ctx := context.Background()

	insert := func(c *pgx.Conn, tl, n int) []int64 {
		t.Helper()
		var ids []int64
		for range n {
			var id int64
			if err := c.QueryRow(ctx, `INSERT INTO r (tl) VALUES ($1) RETURNING id`, tl).Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
			time.Sleep(2 * time.Millisecond)
		}
		return ids
	}
	// gap inserts nothing for a moment and returns its middle: a moment
	// no commit is near.
	gap := func() time.Time {
		time.Sleep(150 * time.Millisecond)
		at := time.Now()
		time.Sleep(150 * time.Millisecond)
		return at
	}

	c1, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(ctx)
	a := insert(c1, 1, 20)
	if r := p.runAs(t, pg, pg.DataDir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
		t.Fatalf("pg backup: %v", r)
	}
	b := insert(c1, 1, 30)
	t1 := gap()
	insert(c1, 1, 30) // timeline 1's future after T1: never restored below
	waitArchived(t, pg, pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())"))
	c1.Close(ctx)
	pg.Stop(t, "fast")

	// Restore to T1 and promote; the restored cluster archives into the
	// same repository under the same cluster name.
	restoreTo := func(name string, archive bool, args ...string) *pgx.Conn {
		t.Helper()
		base := pg.MkdirOwned(t, name)
		sock := pg.MkdirOwned(t, name+"-sock")
		target := filepath.Join(base, "data")
		port := pgFreePort(t)
		argv := []string{"pg", "restore", "--target", target, "--start", "--port", strconv.Itoa(port), "--socket-dir", sock}
		if !archive {
			argv = append(argv, "--no-archive")
		}
		if r := run(append(argv, args...)...); r.code != 0 {
			t.Fatalf("pg restore %v: %v", args, r)
		}
		t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", sock, port))
		if err != nil {
			t.Fatalf("restore %v: no connection: %v", args, err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
	ids := func(c *pgx.Conn) []int64 {
		t.Helper()
		rs, err := c.Query(ctx, "select id from r order by id")
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rs, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	timelineOf := func(c *pgx.Conn) int {
		t.Helper()
		var tli int
		if err := c.QueryRow(ctx, "select timeline_id from pg_control_checkpoint()").Scan(&tli); err != nil {
			t.Fatal(err)
		}
		return tli
	}

	c2 := restoreTo("tl2", true, "--at", t1.UTC().Format(time.RFC3339Nano))
	atT1 := slices.Concat(a, b)
	if got := ids(c2); !slices.Equal(got, atT1) {
		t.Fatalf("restore to T1: %d rows, want %d", len(got), len(atT1))
	}
	if _, err := c2.Exec(ctx, "checkpoint"); err != nil {
		t.Fatal(err)
	}
	if tli := timelineOf(c2); tli != 2 {
		t.Fatalf("the promoted cluster is on timeline %d, want 2", tli)
	}
	d := insert(c2, 2, 30)
	t2 := gap()
	e2 := insert(c2, 2, 30)
	var last string
	if err := c2.QueryRow(ctx, "select pg_walfile_name(pg_switch_wal())").Scan(&last); err != nil {
		t.Fatal(err)
	}
	waitArchivedConn(t, c2, last)

	// The new timeline's history file and segments are stored.
	list := run("pg", "wal-list", "--json")
	if list.code != 0 || !strings.Contains(string(list.stdout), "00000002.history") || !strings.Contains(string(list.stdout), last) {
		t.Fatalf("wal-list lacks timeline 2's history or %s: %v", last, list)
	}

	// A restore to T2: timeline 1 up to T1, then timeline 2 up to T2.
	c3 := restoreTo("at-t2", false, "--at", t2.UTC().Format(time.RFC3339Nano))
	if got, want := ids(c3), slices.Concat(atT1, d); !slices.Equal(got, want) {
		t.Errorf("restore to T2 on timeline 2: %d rows (last %v), want %d (last %d)", len(got), tail(got), len(want), want[len(want)-1])
	}
	// The latest: everything timeline 2 archived.
	c4 := restoreTo("latest", false, "--latest")
	if got, want := ids(c4), slices.Concat(atT1, d, e2); !slices.Equal(got, want) {
		t.Errorf("restore --latest after the switch: %d rows (last %v), want %d (last %d)", len(got), tail(got), len(want), want[len(want)-1])
	}
	// Following timeline 1 on purpose: T2 on timeline 1 is where its
	// archive ends (every row it wrote), without timeline 2's rows.
	// (Sequences are logged ahead, so timeline 2's ids may repeat timeline
	// 1's later ones: the tl column tells them apart.)
	c5 := restoreTo("tl1", false, "--latest", "--timeline", "1")
	var n1, n2 int
	if err := c5.QueryRow(ctx, "select count(*) filter (where tl = 1), count(*) filter (where tl = 2) from r").Scan(&n1, &n2); err != nil {
		t.Fatal(err)
	}
	if n1 != len(atT1)+30 || n2 != 0 {
		t.Errorf("restore --latest --timeline 1: %d rows of timeline 1 and %d of timeline 2, want the %d timeline 1 wrote", n1, n2, len(atT1)+30)
	}

	// The timeline names the switch, and a restore to T2 would use the
	// base backup and replay to T2 itself.
	tlr := run("timeline", "--json", "--at", t2.UTC().Format(time.RFC3339Nano))
	if tlr.code != 0 {
		t.Fatalf("timeline: %v", tlr)
	}
	var view []struct {
		Kind     string `json:"kind"`
		Switches []struct {
			Timeline uint32 `json:"timeline"`
			Parent   uint32 `json:"parent"`
		} `json:"timeline_switches"`
		Timeline uint32 `json:"timeline"`
		At       *struct {
			Shows time.Time `json:"shows"`
		} `json:"at"`
	}
	if err := json.Unmarshal(tlr.stdout, &view); err != nil {
		t.Fatalf("timeline --json: %v\n%s", err, tlr.stdout)
	}
	found := false
	for _, s := range view {
		if s.Kind != "postgres" {
			continue
		}
		found = true
		if len(s.Switches) != 1 || s.Switches[0].Timeline != 2 || s.Switches[0].Parent != 1 || s.Timeline != 2 {
			t.Errorf("timeline switches: %+v, want timeline 2 from 1\n%s", s.Switches, tlr.stdout)
		}
		if s.At == nil || !s.At.Shows.Equal(t2.UTC().Truncate(time.Microsecond)) && s.At.Shows.Sub(t2).Abs() > time.Millisecond {
			t.Errorf("timeline --at T2: %+v, want the point at %s\n%s", s.At, t2.UTC(), tlr.stdout)
		}
	}
	if !found {
		t.Fatalf("timeline shows no PostgreSQL source:\n%s", tlr.stdout)
	}
	if r := run("pg", "check"); r.code != 0 {
		t.Errorf("pg check after the switch: %v", r)
	}
}

// waitArchivedConn waits until the server behind c has archived the
// segment last.
func waitArchivedConn(t *testing.T, c *pgx.Conn, last string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var archived string
		var failed int64
		if err := c.QueryRow(context.Background(), "select coalesce(last_archived_wal, ''), failed_count from pg_stat_archiver").Scan(&archived, &failed); err != nil {
			t.Fatal(err)
		}
		if failed != 0 {
			t.Fatalf("archive_command failed on the restored cluster (%d times)", failed)
		}
		if archived >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived after 2 minutes (last archived %q)", last, archived)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
