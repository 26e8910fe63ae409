package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/sqlite"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// readVersion reads a version read in place whole.
func readVersion(t *testing.T, ip *sqlite.InPlace) []byte {
	t.Helper()
	b := make([]byte, ip.Size)
	if _, err := io.ReadFull(io.NewSectionReader(ip, 0, ip.Size), b); err != nil {
		t.Fatal(err)
	}
	return b
}

// record is what a capture records of a version read in place.
func record(ip *sqlite.InPlace) *snapshot.SQLiteCapture {
	return &snapshot.SQLiteCapture{Mode: string(ip.Mode), PageSize: ip.PageSize, Pages: ip.Pages, Method: sqlite.MethodReadTx, WALSalts: ip.SaltsHex()}
}

// fromParent builds a version as the archiver's delta does: the parent's
// bytes, with the ranges and the grown tail taken from cur.
func fromParent(parent, cur []byte, ranges []archiver.ByteRange) []byte {
	out := bytes.Clone(parent)
	out = append(out, cur[len(parent):]...)
	for _, r := range ranges {
		if r.Off >= int64(len(out)) {
			continue
		}
		end := min(r.Off+r.Len, int64(len(out)))
		copy(out[r.Off:end], cur[r.Off:end])
	}
	return out
}

// TestChangedSinceUnderWriter reads a database again and again while a
// real SQLite writer commits and checkpoints it: each time the -wal has
// not been restarted since the previous read, the version rebuilt from
// the previous one and the pages ChangedSince names is byte for byte the
// version read whole at the same moment, and those pages are a small
// part of the database.
func TestChangedSinceUnderWriter(t *testing.T) {
	db := filepath.Join(t.TempDir(), "live.db")
	w, err := testutil.StartSQLiteWriter(db, testutil.SQLiteWriterOptions{WAL: true, Rate: 300, CheckpointEvery: 150, Pad: 200, InitialRows: 20000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx := context.Background()
	var parent []byte
	var prec *snapshot.SQLiteCapture
	used, restarts := 0, 0
	var smallest float64 = 1
	for i := 0; i < 60 || (used < 5 && i < 300); i++ {
		ip, err := sqlite.ReadInPlace(ctx, db, 5*time.Second)
		if err != nil {
			// A -wal restarted while it was read: the archiver copies the
			// database with the backup API then.
			t.Logf("read %d: %v", i, err)
			continue
		}
		cur := readVersion(t, ip)
		if prec != nil {
			ranges, why := ip.ChangedSince(prec)
			switch why {
			case "":
				used++
				if got := fromParent(parent, cur, ranges); !bytes.Equal(got, cur) {
					t.Fatalf("read %d: the version built from the parent and %d changed pages differs from the version read whole (first difference at byte %d)", i, len(ranges), firstDiff(got, cur))
				}
				smallest = min(smallest, float64(int64(len(ranges))*int64(ip.PageSize))/float64(ip.Size))
			case sqlite.FallbackRestart, sqlite.FallbackNoSalts, sqlite.FallbackNoWAL:
				// Checkpoints in TRUNCATE mode empty the -wal.
				restarts++
			default:
				t.Fatalf("read %d: read whole: %s", i, why)
			}
		}
		parent, prec = cur, record(ip)
		ip.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads from the parent, %d after a -wal restart or truncation; smallest changed share %.3f", used, restarts, smallest)
	if used < 5 {
		t.Fatalf("only %d reads could use the parent's version", used)
	}
	if smallest > 0.25 {
		t.Fatalf("the -wal named at least %.0f%% of the database every time", smallest*100)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestChangedSinceRestart: once the -wal is restarted after a
// checkpoint, the pages that checkpoint copied are not known, and
// ChangedSince says the version must be read whole.
func TestChangedSinceRestart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.db")
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	execAll(t, db, "CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)", "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
	ctx := context.Background()
	ip0, err := sqlite.ReadInPlace(ctx, p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rec0 := record(ip0)
	ip0.Close()
	if rec0.WALSalts == "" {
		t.Fatal("no -wal salts recorded")
	}
	// A write on the same generation: the parent's version can be used.
	execAll(t, db, "INSERT INTO t VALUES (3, 'c')")
	ip1, err := sqlite.ReadInPlace(ctx, p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, why := ip1.ChangedSince(rec0); why != "" {
		t.Fatalf("same -wal generation read whole: %s", why)
	}
	ip1.Close()
	// A checkpoint, then a write: the -wal starts again from its start.
	for _, mode := range []string{"RESTART", "TRUNCATE", "PASSIVE"} {
		execAll(t, db, "PRAGMA wal_checkpoint("+mode+")", fmt.Sprintf("INSERT INTO t (y) VALUES ('after %s')", mode))
		ip2, err := sqlite.ReadInPlace(ctx, p, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ranges, why := ip2.ChangedSince(rec0)
		ip2.Close()
		if why != sqlite.FallbackRestart || ranges != nil {
			t.Fatalf("after a %s checkpoint and a write: fallback %q with %d ranges, want %q", mode, why, len(ranges), sqlite.FallbackRestart)
		}
	}
}

func execAll(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestSQLiteDeltaBackup backs up a WAL database with the archiver and
// the hook, again after scattered updates, after a checkpoint that
// copies them into the database file, and after a -wal restart: the
// first two later backups read only the pages the -wal names, far less
// than the database, the last one reads it whole and says why, and every
// stored version is byte for byte the version read whole at that moment.
func TestSQLiteDeltaBackup(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	p := filepath.Join(src, "big.db")
	writeFile(t, filepath.Join(src, "note.txt"), []byte("x"))
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	execAll(t, db, "CREATE TABLE t (x INTEGER PRIMARY KEY, y BLOB)",
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 8000) INSERT INTO t SELECT i, randomblob(1000) FROM n",
		"PRAGMA wal_checkpoint(TRUNCATE)", "INSERT INTO t VALUES (8001, 'first')")
	r := newTestRepo(t, dir)
	// whole is the version read whole now, which nothing changes before
	// the next backup.
	whole := func() []byte {
		ip, err := sqlite.ReadInPlace(context.Background(), p, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer ip.Close()
		return readVersion(t, ip)
	}
	// Small chunks, as a database past Options.LargeFile gets.
	sn, _ := backup(t, r, auto(Options{LargeFile: 1 << 20}, 0), src)
	if len(sn.SQLite) != 1 || sn.SQLite[0].WALSalts == "" || sn.SQLite[0].Delta != nil {
		t.Fatalf("first capture's record: %+v", sn.SQLite)
	}
	steps := []struct {
		name     string
		sql      []string
		fallback string
	}{
		{"scattered updates", []string{"UPDATE t SET y = randomblob(1000) WHERE x % 997 = 0"}, ""},
		{"a checkpoint", []string{"PRAGMA wal_checkpoint(PASSIVE)"}, ""},
		{"a -wal restart", []string{"INSERT INTO t VALUES (8002, 'after')"}, sqlite.FallbackRestart},
		{"more updates", []string{"UPDATE t SET y = randomblob(1000) WHERE x % 1499 = 0"}, ""},
	}
	for _, s := range steps {
		execAll(t, db, s.sql...)
		want := whole()
		next, a := backup(t, r, auto(Options{Parent: sn, LargeFile: 1 << 20}, 0), src)
		if a.SQLiteCaptured() != 1 || len(next.SQLite) != 1 {
			t.Fatalf("%s: captured %d, records %+v", s.name, a.SQLiteCaptured(), next.SQLite)
		}
		rec := next.SQLite[0]
		if got := content(t, r, lookup(t, r, next, p)); !bytes.Equal(got, want) {
			t.Fatalf("%s: the stored version (%d bytes) is not the version read whole (%d bytes), first difference at %d; record %+v", s.name, len(got), len(want), firstDiff(got, want), rec.Delta)
		}
		d := rec.Delta
		switch {
		case d == nil:
			t.Fatalf("%s: no delta record", s.name)
		case s.fallback != "" && (d.Used || d.Fallback != s.fallback):
			t.Fatalf("%s: delta %+v, want read whole because %q", s.name, d, s.fallback)
		case s.fallback == "" && (!d.Used || d.BytesRead*4 > int64(len(want)) || d.BytesRead+d.BytesReused != int64(len(want))):
			t.Fatalf("%s: delta %+v of a %d-byte version, want a quarter of it read at most", s.name, d, len(want))
		}
		t.Logf("%s: %+v of %d bytes", s.name, *d, len(want))
		if n := countRows(t, writeTemp(t, want)); n < 8001 {
			t.Fatalf("%s: %d rows", s.name, n)
		}
		sn = next
	}
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "v.db")
	writeFile(t, p, b)
	return p
}
