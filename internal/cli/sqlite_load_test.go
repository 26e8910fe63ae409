package cli

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// sqliteWriter commits transactions of 1 to 16 rows to db until stop is
// closed, checkpointing a WAL database every 40 transactions (PASSIVE
// and TRUNCATE in turn), and returns the last committed seq through last.
func sqliteWriter(t *testing.T, db *sql.DB, from int64, wal bool, stop <-chan struct{}, last *atomic.Int64, errs chan<- error) {
	next := from
	for i := 0; ; i++ {
		select {
		case <-stop:
			errs <- nil
			return
		default:
		}
		k := int64(1 + i%16)
		if err := sqliteCommit(t, db, next, k); err != nil {
			errs <- fmt.Errorf("commit at %d: %w", next, err)
			return
		}
		next += k
		last.Store(next - 1)
		if wal && i%40 == 39 {
			mode := "PASSIVE"
			if i%80 == 79 {
				mode = "TRUNCATE"
			}
			if _, err := db.Exec("PRAGMA wal_checkpoint(" + mode + ")"); err != nil {
				errs <- fmt.Errorf("checkpoint: %w", err)
				return
			}
		}
	}
}

// TestSqliteBackupUnderLoad runs sqlite backup again and again while a
// writer commits to a WAL database (and checkpoints it) and another to a
// rollback-journal database. Every stored version restores, passes
// integrity_check, and holds a prefix of the committed rows, never fewer
// than the version before.
func TestSqliteBackupUnderLoad(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	dir := e.path("srv")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	walPath, rbPath := filepath.Join(dir, "wal.db"), filepath.Join(dir, "journal.db")
	dbs := map[string]*sql.DB{
		walPath: sqliteSeqDB(t, walPath, "wal", 1),
		rbPath:  sqliteSeqDB(t, rbPath, "delete", 1),
	}
	// Some bulk first, so that a copy takes a while.
	for _, db := range dbs {
		for i := int64(0); i < 20; i++ {
			if err := sqliteCommit(t, db, 2+i*100, 100); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop := make(chan struct{})
	errs := make(chan error, 2)
	last := map[string]*atomic.Int64{walPath: {}, rbPath: {}}
	var wg sync.WaitGroup
	for p, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sqliteWriter(t, db, 2002, p == walPath, stop, last[p], errs)
		}()
	}
	const runs = 8
	for i := range runs {
		r := e.run("sqlite", "backup", "--check", "integrity", walPath, rbPath)
		if r.code != 0 {
			close(stop)
			wg.Wait()
			t.Fatalf("backup %d under load: %v", i, r)
		}
	}
	close(stop)
	wg.Wait()
	for range dbs {
		if err := <-errs; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	sns := snapshotsJSON(t, e)
	if len(sns) != runs {
		t.Fatalf("%d snapshots, want %d", len(sns), runs)
	}
	prev := map[string]int64{}
	distinct := map[string]map[int64]bool{walPath: {}, rbPath: {}}
	for i, sn := range sns {
		target := e.path(fmt.Sprintf("restored-%d", i))
		e.mustRun("restore", sn.ID, "--target", target)
		for p := range dbs {
			n := checkSeqDB(t, filepath.Join(target, p))
			if n < prev[p] || n > last[p].Load() {
				t.Errorf("snapshot %d, %s: %d rows; the version before held %d, the writer committed %d", i, p, n, prev[p], last[p].Load())
			}
			prev[p] = n
			distinct[p][n] = true
		}
		os.RemoveAll(target)
	}
	for p := range dbs {
		t.Logf("%s: %d versions of %d distinct row counts, writer committed up to %d", filepath.Base(p), runs, len(distinct[p]), last[p].Load())
		if last[p].Load() <= 2001 {
			t.Errorf("%s: the writer committed nothing during the backups", p)
		}
	}
}
