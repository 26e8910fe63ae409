package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/testutil"
)

type pgDeltaInfo struct {
	Parent         string `json:"parent"`
	FromLSN        string `json:"from_lsn"`
	ToLSN          string `json:"to_lsn"`
	Used           bool   `json:"used"`
	Fallback       string `json:"fallback"`
	ChangedBlocks  int64  `json:"changed_blocks"`
	SegmentsStored int    `json:"segments_stored"`
	SegmentsLocal  int    `json:"segments_local"`
	Files          int64  `json:"files"`
	BytesRead      int64  `json:"bytes_read"`
	BytesReused    int64  `json:"bytes_reused"`
}

// TestPgWALDelta: a base backup after 1% of a table's rows changed reads
// only the blocks the archived WAL names, and restores to the same table;
// after a gap in the archived WAL the next one reads whole files and
// restores too.
func TestPgWALDelta(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand(), ArchiveTimeout: "1s"})
	const rows = 80000
	pg.Exec(t, fmt.Sprintf(`CREATE TABLE t (id bigint PRIMARY KEY, filler text) WITH (autovacuum_enabled = off);
		INSERT INTO t SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, %d) g;`, rows))
	pg.Exec(t, `CREATE TABLE u (id bigint, filler text) WITH (autovacuum_enabled = off);
		INSERT INTO u SELECT g, repeat('u', 100) FROM generate_series(1, 3000) g;`)
	pg.Exec(t, `VACUUM (FREEZE, ANALYZE) t`)
	relBytes, _ := strconv.ParseInt(pg.QueryValue(t, "SELECT pg_relation_size('t')"), 10, 64)

	// backup returns the bytes it read of the data directory (without the
	// WAL segments grafted into the snapshot), its ID and delta record.
	backup := func() (int64, string, *pgDeltaInfo) {
		t.Helper()
		r := p.runAs(t, pg, pg.DataDir, "--json", "pg", "backup", "--dsn", pg.DSN(), "--fast")
		if r.code != 0 {
			t.Fatalf("pg backup: %v", r)
		}
		lines := jsonLines(t, r)
		sum := lines[len(lines)-1].obj
		var sns []struct {
			ID       string `json:"id"`
			Postgres struct {
				Delta    *pgDeltaInfo `json:"delta"`
				WALFiles []string     `json:"wal_files"`
			} `json:"postgres"`
		}
		if err := json.Unmarshal(p.runAs(t, pg, pg.DataDir, "snapshots", "--json").stdout, &sns); err != nil {
			t.Fatal(err)
		}
		last := sns[len(sns)-1]
		return int64(sum["bytes_read"].(float64)) - int64(len(last.Postgres.WALFiles))<<24, last.ID, last.Postgres.Delta
	}
	checksum := func(q func(string) string) string {
		return q("SELECT md5(string_agg(id::text || ':' || filler, ',' ORDER BY id)) FROM t") + " " +
			q("SELECT md5(string_agg(id::text || ':' || filler, ',' ORDER BY id, filler)) FROM u")
	}
	n := 0
	restore := func(id, want string) {
		t.Helper()
		n++
		base := pg.MkdirOwned(t, fmt.Sprintf("delta-%d", n))
		sock := pg.MkdirOwned(t, fmt.Sprintf("delta-%d-sock", n))
		target := filepath.Join(base, "data")
		port := pgFreePort(t)
		if r := p.runAs(t, pg, base, "pg", "restore", id, "--target", target, "--start", "--no-archive", "--port", strconv.Itoa(port), "--socket-dir", sock); r.code != 0 {
			t.Fatalf("restore %s: %v", id, r)
		}
		t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", sock, port))
		if err != nil {
			t.Fatalf("restore %s: no connection: %v", id, err)
		}
		defer conn.Close(ctx)
		got := checksum(func(q string) string {
			var s string
			if err := conn.QueryRow(ctx, q).Scan(&s); err != nil {
				t.Fatal(err)
			}
			return s
		})
		if got != want {
			t.Errorf("restore of %s: table checksum %s, the source had %s", id, got, want)
		}
		out, err := pg.Command("pg_amcheck", "--all", "--heapallindexed", "--install-missing", "-h", sock, "-p", strconv.Itoa(port), "-U", "postgres").CombinedOutput()
		if err != nil {
			t.Errorf("pg_amcheck on the restore of %s: %v\n%s", id, err, out)
		}
	}
	source := func() string { return checksum(func(q string) string { return pg.QueryValue(t, q) }) }

	full, _, d0 := backup()
	if d0 != nil {
		t.Errorf("the first backup has no parent, yet a delta record: %+v", d0)
	}
	// 1% of the rows, a contiguous range of ids, and the first row alone
	// (block 0, in a chunk of its own: a test that leaves that block out
	// of the changed set fails); the WAL is archived.
	pg.Exec(t, fmt.Sprintf(`UPDATE t SET filler = 'changed ' || id WHERE id > %d AND id <= %d`, rows/2, rows/2+rows/100))
	pg.Exec(t, `UPDATE t SET filler = 'first' WHERE id = 1`)
	// t grows (its new tail is read), and u is truncated by VACUUM and
	// grows back (its SMGR truncate record makes it read whole; the rows
	// inserted again reference their pages too, so this restores right
	// even without that rule: it is a safeguard for pages extended
	// without WAL).
	pg.Exec(t, fmt.Sprintf(`INSERT INTO t SELECT g, 'new' FROM generate_series(%d, %d) g`, rows+1, rows+200))
	pg.Exec(t, `DELETE FROM u WHERE id > 1000`)
	pg.Exec(t, `VACUUM u`)
	pg.Exec(t, `INSERT INTO u SELECT g, repeat('v', 100) FROM generate_series(1001, 3000) g`)
	pg.Exec(t, `CHECKPOINT`)
	waitArchived(t, pg, pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())"))
	want := source()
	deltaRead, id, d := backup()
	fullRead := full
	t.Logf("full backup read %d bytes, delta backup %d; table %d bytes; delta %+v", fullRead, deltaRead, relBytes, d)
	if d == nil || !d.Used || d.Fallback != "" || d.ChangedBlocks == 0 || d.SegmentsStored == 0 {
		t.Fatalf("the second backup did not use the WAL: %+v", d)
	}
	if d.BytesRead >= relBytes/4 || d.BytesReused < relBytes/2 {
		t.Errorf("delta read %d bytes and reused %d of a %d-byte table: want under 25%% read", d.BytesRead, d.BytesReused, relBytes)
	}
	if deltaRead >= fullRead/4 {
		t.Errorf("the delta backup read %d bytes, the full one %d", deltaRead, fullRead)
	}
	restore(id, want)

	// A gap: WAL "archived" by a command that stores nothing, then removed
	// from pg_wal by checkpoints. The next backup reads whole files.
	pg.Exec(t, `ALTER SYSTEM SET archive_command = '/bin/true'`)
	pg.Exec(t, `SELECT pg_reload_conf()`)
	for i := 0; i < 3; i++ {
		pg.Exec(t, fmt.Sprintf(`UPDATE t SET filler = 'gap %d ' || id WHERE id <= %d`, i, rows/100))
		pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())")
	}
	pg.Exec(t, `CHECKPOINT`)
	pg.Exec(t, `CHECKPOINT`)
	pg.Exec(t, `ALTER SYSTEM RESET archive_command`)
	pg.Exec(t, `SELECT pg_reload_conf()`)
	want = source()
	gapRead, id, d := backup()
	t.Logf("after the gap: read %d bytes; delta %+v", gapRead, d)
	if gapRead < relBytes {
		t.Errorf("after the gap the backup read %d bytes, less than the table (%d)", gapRead, relBytes)
	}
	if d == nil || d.Used || !strings.Contains(d.Fallback, "WAL") {
		t.Fatalf("after a gap in the WAL: want a fallback naming the WAL, got %+v", d)
	}
	restore(id, want)
}
