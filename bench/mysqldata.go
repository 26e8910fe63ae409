package main

// The MariaDB section's data: a sysbench-style database (sbtest1..N: id
// INT primary key, k INT indexed, c CHAR(120), pad CHAR(60), filled as
// sysbench's prepare fills them, from a fixed seed), a sysbench-like write
// load at a steady rate, and a sampler that commits a row every 20 ms and
// reads where its commit lies in the binary log.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// myRowBytes is about what one sbtest row takes on disk in InnoDB,
// secondary index included: -mysql-size is turned into rows with it.
const myRowBytes = 250

// mySeed makes the database the same in every run.
const mySeed = 20261207

// sbDigits writes n groups of 11 random digits separated by '-', as
// sysbench's c (10 groups) and pad (5 groups) are.
func sbDigits(r *rand.Rand, b *strings.Builder, groups int) {
	for g := 0; g < groups; g++ {
		if g > 0 {
			b.WriteByte('-')
		}
		for i := 0; i < 11; i++ {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
	}
}

// loadSbtest creates the tables and fills them with rows rows each, two
// tables at a time, without binary logging (the log starts empty after
// it) and the secondary index built after the rows, as sysbench does.
func loadSbtest(ctx context.Context, s *myServer, tables, rows int) error {
	if err := s.exec(ctx, "CREATE DATABASE IF NOT EXISTS sbtest; CREATE DATABASE IF NOT EXISTS rwbench; "+
		"CREATE TABLE rwbench.sample (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB"); err != nil {
		return err
	}
	work := make(chan int, tables)
	for t := 1; t <= tables; t++ {
		work <- t
	}
	close(work)
	var wg sync.WaitGroup
	errs := make(chan error, tables)
	for w := 0; w < min(2, tables); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				if err := loadTable(ctx, s, t, rows); err != nil {
					errs <- fmt.Errorf("sbtest%d: %w", t, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func loadTable(ctx context.Context, s *myServer, t, rows int) error {
	db, err := s.db()
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_log_bin = 0, unique_checks = 0, foreign_key_checks = 0"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE sbtest.sbtest%d (
  id INT NOT NULL AUTO_INCREMENT, k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '',
  PRIMARY KEY (id)) ENGINE=InnoDB`, t)); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(mySeed, uint64(t)))
	const batch = 2000
	var b strings.Builder
	for id := 1; id <= rows; {
		b.Reset()
		fmt.Fprintf(&b, "INSERT INTO sbtest.sbtest%d (id, k, c, pad) VALUES ", t)
		for i := 0; i < batch && id <= rows; i, id = i+1, id+1 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "(%d,%d,'", id, 1+r.IntN(rows))
			sbDigits(r, &b, 10)
			b.WriteString("','")
			sbDigits(r, &b, 5)
			b.WriteString("')")
		}
		if _, err := conn.ExecContext(ctx, b.String()); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, fmt.Sprintf("ALTER TABLE sbtest.sbtest%d ADD INDEX k_%d (k)", t, t))
	return err
}

// myChecksum is what the restores are checked against: CHECKSUM TABLE of
// every sbtest table and the sample table's row count.
func myChecksum(ctx context.Context, s *myServer, tables int) (string, error) {
	db, err := s.db()
	if err != nil {
		return "", err
	}
	defer db.Close()
	var names []string
	for t := 1; t <= tables; t++ {
		names = append(names, fmt.Sprintf("sbtest.sbtest%d", t))
	}
	rs, err := db.QueryContext(ctx, "CHECKSUM TABLE "+strings.Join(names, ", ")+", rwbench.sample")
	if err != nil {
		return "", err
	}
	defer rs.Close()
	var parts []string
	for rs.Next() {
		var name string
		var sum sql.NullInt64
		if err := rs.Scan(&name, &sum); err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("%s=%d", name, sum.Int64))
	}
	if err := rs.Err(); err != nil {
		return "", err
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM rwbench.sample").Scan(&n); err != nil {
		return "", err
	}
	return strings.Join(parts, " ") + fmt.Sprintf(" samples=%d", n), nil
}

// myLoad is the write load: clients run sysbench write-only-like
// transactions (an indexed update, a non-indexed update, a delete and an
// insert of the same id, each in a random sbtest table) at rate
// transactions per second in all, each client on its own schedule.
// gate pauses it: each transaction holds a read lock.
type myLoad struct {
	s       *myServer
	tables  int
	rows    int
	clients int
	rate    int
	gate    *sync.RWMutex

	mu   sync.Mutex
	done int
	errs []error
}

// run runs until ctx ends; it returns how many transactions committed.
func (l *myLoad) run(ctx context.Context) (int, error) {
	db, err := l.s.db()
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(l.clients)
	var wg sync.WaitGroup
	every := time.Duration(float64(time.Second) * float64(l.clients) / float64(l.rate))
	for c := 0; c < l.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(mySeed+1, uint64(c)))
			next := time.Now()
			for ctx.Err() == nil {
				if d := time.Until(next); d > 0 {
					if sleepCtx(ctx, d) != nil {
						return
					}
				}
				next = next.Add(every)
				l.gate.RLock()
				err := l.txn(ctx, db, r)
				l.gate.RUnlock()
				l.mu.Lock()
				if err == nil {
					l.done++
				} else if ctx.Err() == nil {
					l.errs = append(l.errs, err)
				}
				stop := len(l.errs) > 10
				l.mu.Unlock()
				if stop {
					return
				}
			}
		}()
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	// A transaction the load could not run (a connection that timed out
	// on a machine busy with other work) is only one fewer commit: the
	// figures are taken from the commits the server acknowledged. More
	// than 1% failed, or an early stop, means the load itself is broken.
	if len(l.errs) > 10 || len(l.errs)*100 > l.done+len(l.errs) {
		return l.done, fmt.Errorf("write load: %d transactions failed, the first: %w", len(l.errs), l.errs[0])
	}
	return l.done, nil
}

// failed is how many transactions the load could not run, and the first
// such error.
func (l *myLoad) failed() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) == 0 {
		return 0, nil
	}
	return len(l.errs), l.errs[0]
}

func (l *myLoad) txn(ctx context.Context, db *sql.DB, r *rand.Rand) error {
	t := 1 + r.IntN(l.tables)
	id := 1 + r.IntN(l.rows)
	var c, pad strings.Builder
	sbDigits(r, &c, 10)
	sbDigits(r, &pad, 5)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	stmts := []struct {
		q    string
		args []any
	}{
		{fmt.Sprintf("UPDATE sbtest.sbtest%d SET k = k + 1 WHERE id = ?", t), []any{1 + r.IntN(l.rows)}},
		{fmt.Sprintf("UPDATE sbtest.sbtest%d SET c = ? WHERE id = ?", t), []any{c.String(), 1 + r.IntN(l.rows)}},
		{fmt.Sprintf("DELETE FROM sbtest.sbtest%d WHERE id = ?", t), []any{id}},
		{fmt.Sprintf("INSERT INTO sbtest.sbtest%d (id, k, c, pad) VALUES (?, ?, ?, ?)", t), []any{id, 1 + r.IntN(l.rows), c.String(), pad.String()}},
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// myCommit is one sampled commit: when the client saw it return, its
// GTID (@@last_gtid), and the binary log position right after it (SHOW
// MASTER STATUS: the commit's events end at or before it).
type myCommit struct {
	Time time.Time
	GTID string
	File string
	Pos  uint64
}

// mySample commits a row into rwbench.sample every 20 ms until ctx ends.
func mySample(ctx context.Context, s *myServer, gate *sync.RWMutex) ([]myCommit, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var out []myCommit
	for ctx.Err() == nil {
		gate.RLock()
		c, err := sampleOne(conn)
		gate.RUnlock()
		if err != nil {
			return out, err
		}
		out = append(out, c)
		if sleepCtx(ctx, 20*time.Millisecond) != nil {
			break
		}
	}
	return out, nil
}

func sampleOne(conn *sql.Conn) (myCommit, error) {
	ctx := context.Background()
	var c myCommit
	if _, err := conn.ExecContext(ctx, "INSERT INTO rwbench.sample (at) VALUES (NOW(6))"); err != nil {
		return c, err
	}
	c.Time = time.Now()
	if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&c.GTID); err != nil {
		return c, err
	}
	rs, err := conn.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return c, err
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	if !rs.Next() {
		return c, errors.New("SHOW MASTER STATUS returned nothing: is the binary log on?")
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rs.Scan(ptrs...); err != nil {
		return c, err
	}
	c.File = string(vals[0])
	fmt.Sscan(string(vals[1]), &c.Pos)
	return c, rs.Err()
}
