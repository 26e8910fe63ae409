package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/testutil"
)

type pgSnap struct {
	ID       string `json:"id"`
	Postgres *struct {
		StartLSN string `json:"start_lsn"`
		Timeline uint32 `json:"timeline"`
		Copy     bool   `json:"copy"`
	} `json:"postgres"`
}

func pgSnapshots(t *testing.T, e *env) []pgSnap {
	t.Helper()
	var sns []pgSnap
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil {
		t.Fatal(err)
	}
	return sns
}

func pgCheckJSON(t *testing.T, e *env, code int, args ...string) PgCheckJSON {
	t.Helper()
	r := e.expectCode(code, append([]string{"pg", "check", "--json"}, args...)...)
	var out PgCheckJSON
	if err := json.Unmarshal(r.stdout, &out); err != nil {
		t.Fatalf("pg check --json: %v\n%s", err, r.stdout)
	}
	return out
}

// TestPgRetention: a cluster archiving with wal-push, three base backups
// with WAL between them (and a copy backup); forget --keep-last 2 and
// prune leave exactly the WAL from the start segment of the oldest kept
// backup on (computed here from the names), plus history files; the
// oldest kept backup restores; pg check passes, and reports a gap
// after the oldest backup as MISSING with exit 1.
func TestPgRetention(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand()})
	e := p.env(t)
	backup := func(args ...string) {
		t.Helper()
		r := p.runAs(t, pg, pg.DataDir, append([]string{"pg", "backup", "--dsn", pg.DSN(), "--fast"}, args...)...)
		if r.code != 0 {
			t.Fatalf("pg backup: %v", r)
		}
	}
	switchWAL(t, pg, 2)
	backup()
	switchWAL(t, pg, 2)
	backup()
	switchWAL(t, pg, 2)
	backup("--copy")
	switchWAL(t, pg, 1)
	backup()
	last := switchWAL(t, pg, 2)
	waitArchived(t, pg, last[len(last)-1])

	sns := pgSnapshots(t, e)
	if len(sns) != 4 || !sns[2].Postgres.Copy || sns[1].Postgres.Copy {
		t.Fatalf("snapshots: %+v", sns)
	}
	var before []string
	for _, f := range walList(t, e).Clusters[0].Files {
		before = append(before, f.Name)
	}
	if c := pgCheckJSON(t, e, 0); !c.OK || len(c.Clusters[0].Backups) != 4 {
		t.Fatalf("pg check before forget: %+v", c)
	}

	// keep-last 3 drops the first backup: the second is the oldest kept.
	e.mustRun("forget", "--keep-last", "3", "--prune")
	p.chown(t)
	kept := pgSnapshots(t, e)
	if len(kept) != 3 || kept[0].ID != sns[1].ID {
		t.Fatalf("kept %+v", kept)
	}
	start, err := wal.ParseLSN(kept[0].Postgres.StartLSN)
	if err != nil {
		t.Fatal(err)
	}
	segSize := uint32(walList(t, e).Clusters[0].SegmentSize)
	startSeg := wal.SegmentName(kept[0].Postgres.Timeline, uint64(start)/uint64(segSize), segSize)
	var want []string
	for _, n := range before {
		if strings.HasSuffix(n, ".history") || n >= startSeg {
			want = append(want, n)
		}
	}
	if len(want) == len(before) {
		t.Fatalf("nothing to remove: start segment %s, stored %v", startSeg, before)
	}
	var after []string
	for _, f := range walList(t, e).Clusters[0].Files {
		after = append(after, f.Name)
	}
	sort.Strings(after)
	sort.Strings(want)
	if !slices.Equal(after, want) {
		t.Fatalf("after forget and prune: %v\nwant (from %s on) %v", after, startSeg, want)
	}
	e.mustRun("check", "--read-data")
	if c := pgCheckJSON(t, e, 0, "--read-data"); !c.OK || c.Clusters[0].Read != len(want) {
		t.Fatalf("pg check after forget: %+v", c)
	}

	// Forgetting the second backup leaves the copy as the oldest: the copy
	// does not move the window, so the horizon goes to the last backup.
	e.mustRun("forget", sns[1].ID, "--prune")
	p.chown(t)
	c := pgCheckJSON(t, e, 0)
	lastStart, _ := wal.ParseLSN(sns[3].Postgres.StartLSN)
	if c.Clusters[0].Horizon != wal.LSN(uint64(lastStart)/uint64(segSize)*uint64(segSize)).String() {
		t.Fatalf("horizon %s, want the start segment of %s (%s)", c.Clusters[0].Horizon, sns[3].ID, lastStart)
	}

	// The oldest kept backup (the copy) restores and starts.
	base := pg.MkdirOwned(t, "restore")
	sock := pg.MkdirOwned(t, "restore-sock")
	target := filepath.Join(base, "data")
	port := pgFreePort(t)
	e.mustRun("pg", "restore", sns[2].ID, "--target", target, "--start", "--port", strconv.Itoa(port), "--socket-dir", sock)
	t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })

	// A segment archived by a no-op: a gap after the oldest backup.
	pg.Exec(t, "alter system set archive_command = '/bin/true'")
	pg.Exec(t, "select pg_reload_conf()")
	skipped := switchWAL(t, pg, 1)[0]
	waitArchived(t, pg, skipped)
	pg.Exec(t, fmt.Sprintf("alter system set archive_command = '%s'", strings.ReplaceAll(p.archiveCommand(), "'", "''")))
	pg.Exec(t, "select pg_reload_conf()")
	more := switchWAL(t, pg, 1)
	waitArchived(t, pg, more[0])
	c = pgCheckJSON(t, e, 1)
	cl := c.Clusters[0]
	if c.OK || len(cl.Missing) != 1 || cl.Missing[0].First != skipped || cl.Missing[0].Last != skipped || !cl.Missing[0].Needed {
		t.Fatalf("pg check with %s not archived: %+v", skipped, c)
	}
	if r := e.expectCode(1, "pg", "check"); !strings.Contains(string(r.stdout), "MISSING  timeline 1: "+skipped) {
		t.Fatalf("pg check text: %s", r.stdout)
	}
}
