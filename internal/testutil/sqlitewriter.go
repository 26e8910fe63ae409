package testutil

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver of database/sql
)

// SQLiteWriterOptions shape the load of a SQLiteWriter.
type SQLiteWriterOptions struct {
	// WAL puts the database in WAL mode; else it uses a rollback journal
	// (journal_mode DELETE).
	WAL bool
	// Rate is the commits per second to aim at; 0 commits as fast as it
	// can.
	Rate int
	// CheckpointEvery, in WAL mode, runs PRAGMA wal_checkpoint every so
	// many commits (PASSIVE, with RESTART and TRUNCATE in turn); 0 never.
	CheckpointEvery int
	// Pad is the size of the random blob each row carries; InitialRows
	// rows are written (as one transaction) before Start returns, so
	// that the database has a size to copy.
	Pad         int
	InitialRows int
	// NoWrites makes the database (schema and initial rows) and commits
	// nothing: a later writer on the same file goes on from its rows.
	NoWrites bool
}

// SQLiteWriter commits rows to a real SQLite database (modernc.org/sqlite)
// in the background, so that a test can capture the database under load
// and check what each stored version holds.
//
// Each commit n (from 1, or after the rows an earlier writer left) inserts row n into table t (seq, pad) and row n
// into table u (seq), in one transaction; every seventh commit is
// preceded by a transaction that inserts row -n into t and rolls back. So
// a consistent version holds, for some k, exactly rows 1..k in both
// tables and no negative row (CheckSQLiteVersion).
type SQLiteWriter struct {
	Path string
	db   *sql.DB
	opt  SQLiteWriterOptions

	base int64 // the last row an earlier writer committed

	mu      sync.Mutex
	commits []time.Time // commits[i]: when commit base+i+1 returned
	err     error
	cancel  context.CancelFunc
	done    chan struct{}
}

// StartSQLiteWriter creates the database at path and starts committing.
func StartSQLiteWriter(path string, opt SQLiteWriterOptions) (*SQLiteWriter, error) {
	mode := "delete"
	if opt.WAL {
		mode = "wal"
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode("+mode+")&_pragma=synchronous(normal)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, pad BLOB)",
		"CREATE TABLE IF NOT EXISTS u(seq INTEGER PRIMARY KEY)",
	} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	if opt.InitialRows > 0 {
		// The initial rows go in a table of their own: the checks of t
		// and u do not see them.
		if _, err := db.Exec("CREATE TABLE IF NOT EXISTS bulk(id INTEGER PRIMARY KEY, pad BLOB)"); err != nil {
			db.Close()
			return nil, err
		}
		tx, err := db.Begin()
		if err != nil {
			db.Close()
			return nil, err
		}
		for i := range opt.InitialRows {
			if _, err := tx.Exec("INSERT INTO bulk VALUES(?, randomblob(?))", i+1, opt.Pad); err != nil {
				tx.Rollback()
				db.Close()
				return nil, err
			}
		}
		if err := tx.Commit(); err != nil {
			db.Close()
			return nil, err
		}
		if opt.WAL {
			db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &SQLiteWriter{Path: path, db: db, opt: opt, cancel: cancel, done: make(chan struct{})}
	if err := db.QueryRow("SELECT coalesce(max(seq), 0) FROM t").Scan(&w.base); err != nil {
		db.Close()
		return nil, err
	}
	if opt.NoWrites {
		close(w.done)
		return w, nil
	}
	go w.run(ctx)
	return w, nil
}

func (w *SQLiteWriter) run(ctx context.Context) {
	defer close(w.done)
	var tick *time.Ticker
	if w.opt.Rate > 0 {
		tick = time.NewTicker(time.Second / time.Duration(w.opt.Rate))
		defer tick.Stop()
	}
	modes := []string{"RESTART", "PASSIVE", "TRUNCATE", "PASSIVE"}
	for n := w.base + 1; ; n++ {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		if err := w.commit(n); err != nil {
			w.mu.Lock()
			w.err = fmt.Errorf("commit %d: %w", n, err)
			w.mu.Unlock()
			return
		}
		if w.opt.WAL && w.opt.CheckpointEvery > 0 && n%int64(w.opt.CheckpointEvery) == 0 {
			m := modes[(n/int64(w.opt.CheckpointEvery))%int64(len(modes))]
			// A busy checkpoint is not an error: it checkpoints less.
			w.db.Exec("PRAGMA wal_checkpoint(" + m + ")")
		}
	}
}

func (w *SQLiteWriter) commit(n int64) error {
	if n%7 == 0 {
		tx, err := w.db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec("INSERT INTO t VALUES(?, randomblob(?))", -n, w.opt.Pad); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Rollback(); err != nil {
			return err
		}
	}
	tx, err := w.db.Begin()
	if err != nil {
		return err
	}
	if _, err := tx.Exec("INSERT INTO t VALUES(?, randomblob(?))", n, w.opt.Pad); err != nil {
		tx.Rollback()
		return err
	}
	if _, err := tx.Exec("INSERT INTO u VALUES(?)", n); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	w.mu.Lock()
	w.commits = append(w.commits, time.Now())
	w.mu.Unlock()
	return nil
}

// Committed returns the row of the last commit that returned (the rows
// of an earlier writer on the file included).
func (w *SQLiteWriter) Committed() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.base + int64(len(w.commits))
}

// First returns the row of this writer's first commit.
func (w *SQLiteWriter) First() int64 { return w.base + 1 }

// CommitTime returns when the commit of row n returned; n is from First
// to Committed.
func (w *SQLiteWriter) CommitTime(n int64) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.commits[n-w.base-1]
}

// Stop stops the writer, closes the database and returns the row of its
// last commit, and the error that stopped it early, if one did. It may be
// called again.
func (w *SQLiteWriter) Stop() (int64, error) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	cerr := w.db.Close()
	return w.base + int64(len(w.commits)), errors.Join(w.err, cerr)
}

// CheckSQLiteVersion opens a stored version of a SQLiteWriter's database
// (restored, with whatever was restored beside it) and checks it: PRAGMA
// integrity_check passes, and it holds rows 1..k of t and of u for some k,
// which it returns, and no row that was never committed.
func CheckSQLiteVersion(path string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		return 0, fmt.Errorf("integrity_check: %w", err)
	}
	if res != "ok" {
		return 0, fmt.Errorf("integrity_check: %s", res)
	}
	var n, hi, lo, nu, hu int64
	if err := db.QueryRow("SELECT count(*), coalesce(max(seq), 0), coalesce(min(seq), 1) FROM t").Scan(&n, &hi, &lo); err != nil {
		return 0, err
	}
	if err := db.QueryRow("SELECT count(*), coalesce(max(seq), 0) FROM u").Scan(&nu, &hu); err != nil {
		return 0, err
	}
	switch {
	case lo < 1:
		return 0, fmt.Errorf("holds row %d of t, which was rolled back, never committed", lo)
	case n != hi:
		return 0, fmt.Errorf("t holds %d rows up to %d: not a prefix of the commits", n, hi)
	case nu != n || hu != hi:
		return 0, fmt.Errorf("t holds rows up to %d (%d rows) but u up to %d (%d rows): half a commit", hi, n, hu, nu)
	}
	return n, nil
}
