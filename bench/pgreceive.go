package main

// The pg receive rows of the PostgreSQL section (issue 12): streaming RPO
// under pgbench at 500 TPS, and the acknowledged commits lost with
// --synchronous when the primary is SIGKILLed and its data directory
// deleted. Both are rewind's alone: pgBackRest has no streaming receiver
// that stores into its repository in this form (its archive-push runs per
// finished segment), so its cells are "–".
//
// Both measures share one cluster, a copy of the run's template, without
// archive_command:
//
//	rewind init, server start
//	rewind pg receive --slot bench --create-slot --stats FILE (asynchronous)
//	rewind pg backup --fast (so that a restore has a base)
//	RPO: pgbench -R 500 -c 4, and a sampler that commits a row every
//	20 ms and reads pg_current_wal_lsn() right after each commit; then the
//	receiver is stopped (SIGTERM) and its --stats file read: for each
//	sampled commit, the first store that covers its LSN
//	synchronous_standby_names = 'rewind', the receiver again with
//	--synchronous; the same RPO run, shorter (an extra raw figure); the
//	receiver goes on
//	loss: 4 writers insert rows and record every acknowledged commit, with
//	pgbench -R 500 beside them; the receiver and then the primary's process
//	group are SIGKILLed, its data directory deleted; rewind pg restore
//	--latest --start; every acknowledged row must be in the restore.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/pg/receive"
	"github.com/rewind-backup/rewind/internal/pg/wal"
)

// pgRPOTitle and pgLossTitle name the two rows in the targets table.
const (
	pgRPOTitle  = "streaming RPO under pgbench at 500 TPS (commit to WAL stored), p99"
	pgLossTitle = "`--synchronous`: acknowledged commits lost (primary SIGKILLed, data directory removed)"
	pgRecvRate  = 500 // pgbench -R
	pgRecvApp   = "rewind"
	pgRecvSlot  = "bench"
)

// pgReceiveRun is what the pg receive measures found, saved in pg.json.
type pgReceiveRun struct {
	Async *pgRPO  `json:"rpo_async,omitempty"`
	Sync  *pgRPO  `json:"rpo_synchronous,omitempty"`
	Loss  *pgLoss `json:"synchronous_loss,omitempty"`
}

// pgRPO is one RPO run: commit (acknowledged to the client) to the WAL
// covering it stored in the repository.
type pgRPO struct {
	Seconds   int           `json:"seconds"`
	Clients   int           `json:"pgbench_clients"`
	Rate      int           `json:"pgbench_rate"`
	TPS       float64       `json:"pgbench_tps"`     // pgbench's own report
	Latency   float64       `json:"pgbench_latency"` // ms, pgbench's average
	Samples   int           `json:"samples"`         // sampled commits
	SampleTPS float64       `json:"sample_tps"`      // the sampler's own commits per second
	Missing   int           `json:"samples_never_stored"`
	Stores    int           `json:"stores"`
	StoreMean int64         `json:"store_mean_bytes"` // what one store wrote (a partial is stored whole each time)
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
}

// pgLoss is the --synchronous kill.
type pgLoss struct {
	Seconds  int           `json:"seconds"`
	Writers  int           `json:"writers"`
	Acked    int           `json:"acknowledged"`
	Lost     int           `json:"lost"`
	LostIDs  []int64       `json:"lost_ids,omitempty"` // the first few
	Restored int           `json:"rows_restored"`
	Restore  time.Duration `json:"restore_ns"` // pg restore --latest --start, wall
}

// receiveMeasures are the rows of rewind pg receive, measured on a cluster
// of their own after both tools' turns.
func (p *pgRun) receiveMeasures(ctx context.Context) []pgExtra {
	rpo := pgExtra{What: pgRPOTitle, Target: "≤ 1 s", Measured: "–", Met: "not measured"}
	loss := pgExtra{What: pgLossTitle, Target: "0", Measured: "–", Met: "not measured"}
	// An unknown subcommand prints the group's help: look for its own.
	out, err := exec.CommandContext(ctx, p.rewind, "pg", "receive", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pg receive") {
		rpo.Met = "not measured: this rewind has no `pg receive`"
		loss.Met = rpo.Met
		return []pgExtra{rpo, loss}
	}
	p.rep.ReceiveRun = &pgReceiveRun{}
	p.recvStart = time.Now()
	fail := func(x *pgExtra, err error) {
		x.Met = "not measured: " + firstLineOf(err.Error())
		p.rep.Notes = append(p.rep.Notes, "pg receive: "+strings.ReplaceAll(err.Error(), "\n", " "))
		p.h.log.Warn("pg receive measure failed", "measure", x.What, "err", err)
	}
	rc, err := p.receiveCluster(ctx)
	if err != nil {
		fail(&rpo, err)
		fail(&loss, err)
		return []pgExtra{rpo, loss}
	}
	defer rc.close()
	p.h.log.Info("pg receive: cluster ready", "took", time.Since(p.recvStart).Round(time.Millisecond))
	if err := p.measureRPO(ctx, rc, &rpo); err != nil {
		fail(&rpo, err)
	}
	if err := p.measureSyncLoss(ctx, rc, &loss); err != nil {
		fail(&loss, err)
	}
	return []pgExtra{rpo, loss}
}

// pgRecvDurations are how long the RPO runs (asynchronous, synchronous)
// and the writers of the loss measure go on.
func (p *pgRun) pgRecvDurations() (async, sync, loss int) {
	if p.h.cfg.smoke {
		return 5, 2, 2
	}
	return 30, 10, 10
}

// recvCluster is the cluster of the pg receive measures and its receiver.
type recvCluster struct {
	p       *pgRun
	data    string
	repo    string
	restore string
	env     []string
	recv    *bgProc
	sync    bool
}

// receiveCluster copies the template, starts it with an asynchronous
// receiver on a new slot, and makes a base backup.
func (p *pgRun) receiveCluster(ctx context.Context) (*recvCluster, error) {
	rc := &recvCluster{p: p, data: filepath.Join(p.dir, "data-receive"), repo: filepath.Join(p.dir, "repo-receive"),
		restore: filepath.Join(p.dir, "restore-receive"),
		env:     []string{"REWIND_PASSWORD_FILE=" + p.pwFile, "XDG_CACHE_HOME=" + filepath.Join(p.dir, "cache"), "HOME=" + p.dir}}
	for _, d := range []string{rc.data, rc.repo, rc.restore} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	if err := p.untimed(ctx, "receive-copy", p.cmd("cp", "-a", "--reflink=auto", filepath.Join(p.dir, "template"), rc.data)); err != nil {
		return nil, err
	}
	if err := p.untimed(ctx, "receive-init", p.cmd(p.rewind, "init", "--repo", rc.repo), rc.env...); err != nil {
		rc.close()
		return nil, err
	}
	if err := rc.conf(""); err != nil {
		rc.close()
		return nil, err
	}
	if err := p.start(ctx, rc.data, "receive"); err != nil {
		rc.close()
		return nil, err
	}
	if err := rc.startReceiver(ctx, "async", false); err != nil {
		rc.close()
		return nil, err
	}
	// The base backup comes after the slot: the WAL from its stop on is
	// the receiver's.
	if err := p.untimed(ctx, "receive-backup", p.cmd(p.rewind, "--repo", rc.repo, "--json", "pg", "backup", "--fast", "--dsn", p.dsn()), rc.env...); err != nil {
		rc.close()
		return nil, err
	}
	if err := p.exec(ctx, "create table rwbench_sample (id bigserial primary key, at timestamptz default clock_timestamp())"); err != nil {
		rc.close()
		return nil, err
	}
	return rc, nil
}

// conf writes the cluster's bench.conf: no archiving, and the standby
// names a commit waits for.
func (rc *recvCluster) conf(standbys string) error {
	return rc.p.writeFile(filepath.Join(rc.data, "bench.conf"),
		[]byte(fmt.Sprintf("archive_mode = off\nsynchronous_standby_names = '%s'\n", standbys)), 0o600)
}

// startReceiver starts rewind pg receive with a --stats file named after
// phase and waits until the server lists it streaming (as the synchronous
// standby when sync).
func (rc *recvCluster) startReceiver(ctx context.Context, phase string, sync bool) error {
	p := rc.p
	args := []string{p.rewind, "--repo", rc.repo, "--password-file", p.pwFile, "-v", "pg", "receive", "--dsn", p.dsn(),
		"--slot", pgRecvSlot, "--create-slot", "--application-name", pgRecvApp, "--stats", rc.stats(phase)}
	if sync {
		args = append(args, "--synchronous")
	}
	bg, err := p.background("receive-"+phase, rc.env, args...)
	if err != nil {
		return err
	}
	rc.recv, rc.sync = bg, sync
	q := fmt.Sprintf(`select count(*), count(*) filter (where sync_state = 'sync')
		from pg_stat_replication where application_name = '%s' and state = 'streaming'`, pgRecvApp)
	deadline := time.Now().Add(time.Minute)
	for {
		var streaming, synced int
		if err := p.query(ctx, q, &streaming, &synced); err == nil && streaming == 1 {
			if !sync || synced == 1 {
				return nil
			}
			// The server counts the receiver as synchronous once it
			// has reported a flush position, which it does after its
			// first store: on an idle server, that waits for some WAL
			// (a running-xacts record comes every 15 s). A commit (an
			// xid assigned) makes some, and returns once stored.
			var xid string
			_ = p.query(ctx, "select pg_current_xact_id()::text", &xid)
		}
		if bg.exited() {
			return fmt.Errorf("rewind pg receive exited: %v\n%s", bg.wait(0), logTail(bg.log))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rewind pg receive is not streaming (synchronous: %v) after a minute\n%s", sync, logTail(bg.log))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (rc *recvCluster) stats(phase string) string {
	return filepath.Join(rc.p.dir, "receive-"+phase+".jsonl")
}

// synchronous makes the receiver the synchronous standby: it is stopped,
// the server told to wait for it, and started again with --synchronous.
func (rc *recvCluster) synchronous(ctx context.Context) error {
	if rc.sync && rc.recv != nil {
		return nil
	}
	if rc.recv != nil {
		if err := rc.recv.stop(); err != nil {
			return err
		}
	}
	if err := rc.conf(pgRecvApp); err != nil {
		return err
	}
	p := rc.p
	var ok bool
	if err := p.query(ctx, "select pg_reload_conf()", &ok); err != nil {
		return err
	}
	err := rc.startReceiver(ctx, "sync", true)
	p.h.log.Info("pg receive: synchronous receiver streaming", "since start", time.Since(rc.p.recvStart).Round(time.Millisecond))
	return err
}

// close kills the receiver, stops the servers and removes the cluster.
func (rc *recvCluster) close() {
	if rc.recv != nil {
		rc.recv.kill()
	}
	rc.p.stopAll()
	for _, l := range []string{filepath.Join(rc.p.dir, "server-receive.log"), filepath.Join(rc.restore, "rewind-start.log"),
		rc.stats("async"), rc.stats("sync")} {
		if b, err := os.ReadFile(l); err == nil {
			os.WriteFile(filepath.Join(rc.p.h.runs, "logs", "pg-receive-"+filepath.Base(l)), b, 0o644)
		}
	}
	os.RemoveAll(rc.data)
	os.RemoveAll(rc.restore)
	if !rc.p.h.cfg.keep {
		os.RemoveAll(rc.repo)
	}
}

// measureRPO: commit to WAL stored under pgbench -R 500, p99 against 1 s;
// then the same, shorter, with --synchronous (a raw figure).
func (p *pgRun) measureRPO(ctx context.Context, rc *recvCluster, x *pgExtra) error {
	secs, syncSecs, _ := p.pgRecvDurations()
	r, err := p.rpoRun(ctx, rc, "async", secs)
	if err != nil {
		return err
	}
	p.rep.ReceiveRun.Async = r
	x.Measured = fmtDur(r.P99)
	x.Met = map[bool]string{true: "yes", false: "**no**"}[r.P99 <= time.Second && r.Missing == 0 && r.Samples > 0]
	if r.Missing > 0 {
		x.Measured += fmt.Sprintf(" (%d of %d sampled commits never stored)", r.Missing, r.Samples)
	}
	// The synchronous figure is an extra: its failure is a note, and the
	// loss measure tries the switch again.
	if err := rc.synchronous(ctx); err != nil {
		p.rep.Notes = append(p.rep.Notes, "pg receive --synchronous RPO not measured: "+firstLineOf(err.Error()))
		return nil
	}
	if r, err = p.rpoRun(ctx, rc, "sync", syncSecs); err != nil {
		p.rep.Notes = append(p.rep.Notes, "pg receive --synchronous RPO not measured: "+firstLineOf(err.Error()))
		return nil
	}
	p.rep.ReceiveRun.Sync = r
	return nil
}

// rpoRun runs pgbench -R 500 for secs seconds beside a sampler and reads
// the receiver's --stats file: an asynchronous receiver is given time to
// store the rest and stopped (SIGTERM), a synchronous one goes on.
func (p *pgRun) rpoRun(ctx context.Context, rc *recvCluster, phase string, secs int) (*pgRPO, error) {
	r := &pgRPO{Seconds: secs, Clients: pgTxnClients, Rate: pgRecvRate}
	logName := "receive-pgbench-" + phase
	benchDone := make(chan error, 1)
	go func() {
		benchDone <- p.untimed(ctx, logName, p.cmd(p.bin("pgbench"), "-n", "-c", strconv.Itoa(pgTxnClients), "-j", "2",
			"-R", strconv.Itoa(pgRecvRate), "-T", strconv.Itoa(secs), "-h", p.sock, "-p", strconv.Itoa(p.port), "postgres"))
	}()
	commits, sampled, serr := p.sample(ctx, time.Duration(secs)*time.Second)
	if err := <-benchDone; err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("sampler: %w", serr)
	}
	r.TPS, r.Latency = pgbenchRate(filepath.Join(p.h.runs, "logs", "pg-"+logName+".log"))
	r.Samples, r.SampleTPS = len(commits), float64(len(commits))/sampled.Seconds()
	var stores []receive.Stored
	if phase == "sync" {
		// Synchronous: a commit returned after its store's --stats line
		// was written. The receiver goes on for the loss measure; its
		// file is read up to its last whole line.
		var err error
		if stores, err = readStatsSoFar(rc.stats(phase), filepath.Join(p.dir, "receive-sync-rpo.jsonl")); err != nil {
			return nil, err
		}
	} else {
		// The newest samples are stored within the receiver's interval
		// (500 ms); a clean stop stores the rest.
		if err := sleepCtx(ctx, 1500*time.Millisecond); err != nil {
			return nil, err
		}
		if err := rc.recv.stop(); err != nil {
			return nil, err
		}
		rc.recv = nil
		p.h.log.Info("pg receive: receiver stopped", "phase", phase, "since start", time.Since(p.recvStart).Round(time.Millisecond))
		var err error
		if stores, err = receive.ReadStats(rc.stats(phase)); err != nil {
			return nil, err
		}
	}
	lags, missing := receive.Lags(stores, commits)
	r.Missing = missing
	// Stores while the load ran (the backup's and the switch's apart).
	for _, st := range stores {
		if len(commits) > 0 && !st.Time.Before(commits[0].Time) {
			r.Stores++
			r.StoreMean += int64(st.Bytes)
		}
	}
	r.StoreMean /= int64(max(1, r.Stores))
	r.P50, r.P99, r.Max = receive.Percentile(lags, 50), receive.Percentile(lags, 99), receive.Percentile(lags, 100)
	p.h.log.Info("measured", "section", "pg", "tool", "rewind pg receive", "phase", phase, "samples", r.Samples,
		"missing", r.Missing, "p50", r.P50, "p99", r.P99, "max", r.Max, "tps", r.TPS)
	return r, nil
}

// readStatsSoFar reads the --stats file of a running receiver up to its
// last whole line (through a copy at tmp).
func readStatsSoFar(path, tmp string) ([]receive.Stored, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return nil, err
	}
	return receive.ReadStats(tmp)
}

// sample commits one row every 20 ms for d and reads the WAL position
// right after each commit: the commit's record ends at or before it.
func (p *pgRun) sample(ctx context.Context, d time.Duration) ([]receive.Commit, time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	c, err := pgx.Connect(cctx, p.dsn())
	cancel()
	if err != nil {
		return nil, 0, err
	}
	defer c.Close(context.Background())
	var commits []receive.Commit
	start := time.Now()
	for time.Since(start) < d {
		if _, err := c.Exec(ctx, "insert into rwbench_sample default values"); err != nil {
			return nil, 0, err
		}
		at := time.Now()
		var lsn string
		if err := c.QueryRow(ctx, "select pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
			return nil, 0, err
		}
		l, err := wal.ParseLSN(lsn)
		if err != nil {
			return nil, 0, err
		}
		commits = append(commits, receive.Commit{Time: at, LSN: l})
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return nil, 0, err
		}
	}
	return commits, time.Since(start), nil
}

// pgbenchRate reads "tps = " and "latency average = " from pgbench's output.
func pgbenchRate(logPath string) (tps, latency float64) {
	b, _ := os.ReadFile(logPath)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "tps = "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				tps, _ = strconv.ParseFloat(f[0], 64)
			}
		}
		if rest, ok := strings.CutPrefix(line, "latency average = "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				latency, _ = strconv.ParseFloat(f[0], 64)
			}
		}
	}
	return tps, latency
}

// measureSyncLoss: with the receiver synchronous, writers commit rows and
// record each acknowledged one under pgbench -R 500; the receiver and the
// primary are SIGKILLed mid-flight, its data directory deleted, and the
// latest state restored from the repository.
func (p *pgRun) measureSyncLoss(ctx context.Context, rc *recvCluster, x *pgExtra) error {
	_, _, secs := p.pgRecvDurations()
	const writers = 4
	l := &pgLoss{Seconds: secs, Writers: writers}
	if err := rc.synchronous(ctx); err != nil {
		return err
	}
	if err := p.exec(ctx, "create table rwbench_loss (id bigint primary key, filler text)"); err != nil {
		return err
	}
	// pgbench beside the writers; it ends with the server, its error is
	// expected.
	bench, err := p.background("receive-pgbench-loss", nil, p.bin("pgbench"), "-n", "-c", strconv.Itoa(pgTxnClients), "-j", "2",
		"-R", strconv.Itoa(pgRecvRate), "-T", strconv.Itoa(secs+120), "-h", p.sock, "-p", strconv.Itoa(p.port), "postgres")
	if err != nil {
		return err
	}
	defer bench.kill()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var acked []int64
	var wg sync.WaitGroup
	var werr error
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(wctx, p.dsn())
			if err != nil {
				mu.Lock()
				werr = errors.Join(werr, err)
				mu.Unlock()
				return
			}
			defer c.Close(context.Background())
			for id := int64(w); wctx.Err() == nil; id += writers {
				if _, err := c.Exec(wctx, "insert into rwbench_loss values ($1, repeat('s', 200))", id); err != nil {
					return // the server is gone (or the writer cancelled)
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	if err := sleepCtx(ctx, time.Duration(secs)*time.Second); err != nil {
		return err
	}
	// The worst moment: the receiver dies with the server, mid-commit, so
	// that nothing it received but had not stored can be saved by a clean
	// exit.
	rc.recv.kill()
	rc.recv = nil
	if err := p.killServer(rc.data); err != nil {
		return err
	}
	cancel()
	wg.Wait()
	bench.kill()
	if werr != nil {
		return fmt.Errorf("writers: %w", werr)
	}
	l.Acked = len(acked)
	if err := os.RemoveAll(rc.data); err != nil {
		return err
	}
	p.started = slices.DeleteFunc(p.started, func(s string) bool { return s == rc.data })
	p.h.log.Info("pg receive: killed", "since start", time.Since(p.recvStart).Round(time.Millisecond))
	if l.Acked == 0 {
		return errors.New("no commit was acknowledged before the kill (see pg-receive-sync.log)")
	}

	if err := p.mkdir(rc.restore); err != nil {
		return err
	}
	p.started = append(p.started, rc.restore)
	start := time.Now()
	if err := p.untimed(ctx, "receive-restore", p.cmd(p.rewind, "--repo", rc.repo, "--password-file", p.pwFile, "pg", "restore",
		"--latest", "--target", rc.restore, "--start", "--no-archive"), rc.env...); err != nil {
		return fmt.Errorf("%w\n%s", err, logTail(filepath.Join(rc.restore, "rewind-start.log")))
	}
	l.Restore = time.Since(start)
	p.h.log.Info("pg receive: restored", "took", l.Restore.Round(time.Millisecond), "since start", time.Since(p.recvStart).Round(time.Millisecond))
	got, err := p.ids(ctx, "select id from rwbench_loss order by id")
	if err != nil {
		return fmt.Errorf("restored cluster: %w", err)
	}
	l.Restored = len(got)
	slices.Sort(acked)
	for _, id := range acked {
		if _, ok := slices.BinarySearch(got, id); !ok {
			l.Lost++
			if len(l.LostIDs) < 10 {
				l.LostIDs = append(l.LostIDs, id)
			}
		}
	}
	p.rep.ReceiveRun.Loss = l
	p.h.log.Info("measured", "section", "pg", "tool", "rewind pg receive --synchronous", "acknowledged", l.Acked,
		"lost", l.Lost, "restored", l.Restored)
	x.Measured = fmt.Sprintf("%d of %s acknowledged", l.Lost, fmtCount(l.Acked))
	x.Met = map[bool]string{true: "yes", false: "**no**"}[l.Lost == 0]
	return p.stop(ctx, rc.restore, "receive-restored")
}

// killServer SIGKILLs the postmaster's process group (pg_ctl makes it a
// group leader) and waits until every process of it is gone.
func (p *pgRun) killServer(data string) error {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(firstLineOf(string(b))))
	if err != nil || pid <= 0 {
		return fmt.Errorf("%s: no PID in postmaster.pid", data)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill the server's group %d: %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(-pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the server's processes (group %d) still run 30 s after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// exec runs one SQL statement that returns no row.
func (p *pgRun) exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, p.dsn())
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

// ids runs a query returning one bigint column.
func (p *pgRun) ids(ctx context.Context, sql string) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, p.dsn())
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rs, err := c.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rs, pgx.RowTo[int64])
}

// bgProc is a program running beside the harness as the cluster's user,
// its output in runs/logs/pg-NAME.log.
type bgProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (p *pgRun) background(name string, env []string, argv ...string) (*bgProc, error) {
	logPath := filepath.Join(p.h.runs, "logs", "pg-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "$ %s\n", strings.Join(argv, " "))
	spec := p.cmd(argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), env...), spec.env...)
	cmd.Dir = spec.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: spec.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	bg := &bgProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		bg.err = cmd.Wait()
		logf.Close()
		close(bg.done)
	}()
	return bg, nil
}

func (bg *bgProc) exited() bool {
	select {
	case <-bg.done:
		return true
	default:
		return false
	}
}

// wait waits up to d (0: not at all) and returns the exit error.
func (bg *bgProc) wait(d time.Duration) error {
	select {
	case <-bg.done:
		return bg.err
	case <-time.After(d):
		return fmt.Errorf("%s still runs after %s", filepath.Base(bg.cmd.Path), d)
	}
}

// stop sends SIGTERM: the program must exit 0 within a minute.
func (bg *bgProc) stop() error {
	_ = bg.cmd.Process.Signal(syscall.SIGTERM)
	if err := bg.wait(time.Minute); err != nil {
		bg.kill()
		return fmt.Errorf("%s after SIGTERM: %w\n%s", filepath.Base(bg.cmd.Path), err, logTail(bg.log))
	}
	return nil
}

// kill sends SIGKILL and waits.
func (bg *bgProc) kill() {
	_ = bg.cmd.Process.Kill()
	<-bg.done
}

// fmtDur prints a short duration: ms below a second.
func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmtSecs(d.Seconds())
}

// receiveMarkdown is the section's text on the pg receive rows and their
// raw figures.
func (rep *pgReport) receiveMarkdown(b *strings.Builder) {
	rr := rep.ReceiveRun
	if rr == nil {
		return
	}
	b.WriteString("\n### PostgreSQL: `rewind pg receive` (rewind only)\n\n")
	b.WriteString("pgBackRest has no streaming receiver that stores WAL into its repository as it is written (its `archive-push` " +
		"stores each segment once the server has finished it), so these rows have no pgBackRest figure and no ratio: " +
		"they are rewind's against issue 12's absolute targets. " +
		"They run after both turns on a copy of the same database, without archive_command: " +
		fmt.Sprintf("`rewind pg receive --slot %s --create-slot --stats FILE` as the cluster's user, then `rewind pg backup --fast`. ", pgRecvSlot) +
		fmt.Sprintf("RPO: `pgbench -R %d -c %d` beside a sampler that commits a row every 20 ms and reads `pg_current_wal_lsn()` right after the commit returns; "+
			"a sampled commit's RPO is the time from that return to the receiver's first store (its `--stats` line) whose end LSN covers it. ", pgRecvRate, pgTxnClients) +
		"The same run with `--synchronous` (listed in `synchronous_standby_names`, so a commit returns only once its WAL is stored) is a raw figure; " +
		"there the LSN read after a commit can lie past it (other clients' WAL), so a lag above 0 is that later WAL's. " +
		"A store's size (\"mean size\") is the partial segment's length at that store; only what follows its last final chunk boundary is hashed, chunked and saved again. " +
		"Loss: with the synchronous receiver, 4 writers insert rows and record each acknowledged commit, beside the same pgbench; " +
		"the receiver and then the primary's process group are SIGKILLed mid-flight, its data directory is deleted, " +
		"`rewind pg restore --latest --start` brings the cluster back, and every acknowledged row must be in it.\n\n")
	b.WriteString("| figure | rewind | pgBackRest |\n|---|---:|---:|\n")
	for _, x := range []struct {
		name string
		r    *pgRPO
	}{{"asynchronous", rr.Async}, {"`--synchronous`", rr.Sync}} {
		if x.r == nil {
			fmt.Fprintf(b, "| RPO, %s: not measured (see the notes) | – | – |\n", x.name)
			continue
		}
		r := x.r
		fmt.Fprintf(b, "| RPO, %s: commit to WAL stored, p50 / p99 / max | %s / %s / %s | – |\n", x.name, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max))
		fmt.Fprintf(b, "| RPO, %s: pgbench -R %d for %d s: TPS achieved (latency average) | %.0f TPS (%.1f ms) | – |\n", x.name, r.Rate, r.Seconds, r.TPS, r.Latency)
		fmt.Fprintf(b, "| RPO, %s: commits sampled (per second); never stored; stores during the load (mean size) | %s (%.0f/s); %d; %s (%s) | – |\n",
			x.name, fmtCount(r.Samples), r.SampleTPS, r.Missing, fmtCount(r.Stores), fmtBytes(float64(r.StoreMean)))
	}
	if l := rr.Loss; l != nil {
		fmt.Fprintf(b, "| loss, `--synchronous`: acknowledged commits checked (%d writers, %d s); lost; rows restored | %s; %d; %s | – |\n",
			l.Writers, l.Seconds, fmtCount(l.Acked), l.Lost, fmtCount(l.Restored))
		fmt.Fprintf(b, "| loss: `pg restore --latest --start` until recovery's end | %s | – |\n", fmtSecs(l.Restore.Seconds()))
	} else {
		b.WriteString("| loss, `--synchronous`: not measured (see the notes) | – | – |\n")
	}
}
