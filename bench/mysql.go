package main

// The MariaDB section (issue 13): rewind mysql backup / binlog receive /
// restore --at against the way users combine peers today, on one
// sysbench-style database, in the same run.
//
// One server (MariaDB 10.11, binary log on: ROW, GTIDs, sync_binlog=1) is
// made per run and filled with sbtest1..N (-mysql-size, -mysql-tables,
// rows from a fixed seed, without binary logging; RESET MASTER after).
// Then, on that server:
//
//	rewind init, restic init (untimed)
//	rewind mysql binlog receive --stats FILE starts in the background
//	A: rewind mysql backup (timed); mariabackup --backup --target-dir D,
//	   then restic backup D (timed, summed); repository sizes
//	B and C: a sysbench-like write load at -mysql-rate transactions/s for
//	   -mysql-writes, beside a sampler committing a row every 20 ms; the
//	   load pauses around the moment T (a whole second, no commit in
//	   [T-0.3 s, T+1.3 s)) while the database's checksum is taken
//	the receiver catches up and is stopped; RPO from its --stats file;
//	the server is stopped
//	B, peer: restic restore, mariabackup --prepare, --move-back, chown,
//	   start until it answers, mariadb-binlog --start-position (the
//	   backup's) --stop-datetime T of the server's binlogs | mariadb
//	B, rewind: rewind mysql restore --at T --target DIR, chown, start
//	   until it answers
//	each restored server's checksum must be the one at T (untimed)
//
// Every program runs as root (the harness), the servers as the mysql OS
// user. A rewind command that this rewind does not have yet is "not run"
// in the report; the peer side is measured anyway.

import (
	"context"
	"encoding/json"
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

	"github.com/rewind-backup/rewind/internal/ui"
)

// MariaDB section modes (-mysql), as -pg's.
const (
	myOn   = "on"
	myOff  = "off"
	myOnly = "only"
)

// myTitle starts the report's section; a run without it keeps the old one.
const myTitle = "## MariaDB (issue 13): rewind against mariabackup + restic"

// myConfig holds the section's flags.
type myConfig struct {
	mode    string
	sizeMB  int
	tables  int
	writes  time.Duration
	rate    int
	clients int
}

// Sides of the section.
const (
	myRewind = "rewind"
	myPeer   = "peer"
)

// myPhase is one timed part of a step.
type myPhase struct {
	Name   string `json:"name"`
	Sample sample `json:"sample"`
}

// myStep is a step made of phases, run one after the other.
type myStep struct {
	Total  sample    `json:"total"`
	Phases []myPhase `json:"phases"`
}

func (s *myStep) add(name string, x sample) {
	s.Total.Wall += x.Wall
	s.Total.CPU += x.CPU
	s.Total.Sys += x.Sys
	s.Total.RSS = max(s.Total.RSS, x.RSS)
	s.Phases = append(s.Phases, myPhase{name, x})
}

// mySide is what one side measured.
type mySide struct {
	Backup *myStep `json:"backup,omitempty"`
	// RepoAfterBackup is the repository's size after the backup; for the
	// peer LocalCopy is mariabackup's target folder, kept on disk.
	RepoAfterBackup int64 `json:"repository_after_backup"`
	LocalCopy       int64 `json:"local_copy,omitempty"`
	// RepoAfterWrites is the repository after the writes (rewind: the
	// received binlogs in it); for the peer, the server's binlog files
	// it replays from are Binlogs.
	RepoAfterWrites int64   `json:"repository_after_writes"`
	Binlogs         int64   `json:"binlogs,omitempty"`
	Restore         *myStep `json:"restore,omitempty"`
	// NotRun says why a step was not measured.
	NotRun map[string]string `json:"not_run,omitempty"`
}

// myRPO is the receiver's RPO under the write load.
type myRPO struct {
	Samples int           `json:"samples"`
	Missing int           `json:"samples_never_stored"`
	Stores  int           `json:"stores"`
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`
}

// myReport is the section's results, saved as mysql.json beside the logs.
type myReport struct {
	Started    time.Time          `json:"started"`
	Finished   time.Time          `json:"finished"`
	LoadStart  string             `json:"load_start"`
	LoadEnd    string             `json:"load_end"`
	Machine    string             `json:"machine"`
	Smoke      bool               `json:"smoke"`
	SizeMB     int                `json:"size_mb"`
	Tables     int                `json:"tables"`
	Rows       int                `json:"rows_per_table"`
	DBBytes    int64              `json:"datadir_bytes"`
	TableBytes int64              `json:"sbtest_bytes"`
	LoadTook   time.Duration      `json:"load_ns"`
	Versions   map[string]string  `json:"versions"`
	Writes     time.Duration      `json:"writes_ns"`
	Rate       int                `json:"rate"`
	Clients    int                `json:"clients"`
	Txns       int                `json:"transactions"`
	TPS        float64            `json:"tps"`
	At         time.Time          `json:"at"`
	BeforeT    time.Duration      `json:"writes_before_t_ns"`
	Sides      map[string]*mySide `json:"sides"`
	RPO        *myRPO             `json:"rpo,omitempty"`
	RPONotRun  string             `json:"rpo_not_run,omitempty"`
	Notes      []string           `json:"notes,omitempty"`
}

// myRun is one run of the section.
type myRun struct {
	h      *harness
	cfg    myConfig
	dir    string
	rewind string
	env    []string // rewind's and restic's environment
	src    *myServer
	rep    *myReport
	rows   int
	have   map[string]bool // rewind's mysql commands present
	recv   *bgProc
	stats  string
	all    []*myServer
}

// myCommands are the rewind commands the section runs, by the name the
// report gives them.
var myCommands = map[string][]string{
	"backup":  {"mysql", "backup"},
	"receive": {"mysql", "binlog", "receive"},
	"restore": {"mysql", "restore"},
}

// hasCommand says whether rewind has the command: its --help names it (an
// unknown subcommand prints the group's help instead).
func hasCommand(ctx context.Context, bin string, words []string) bool {
	out, err := exec.CommandContext(ctx, bin, append(slices.Clone(words), "--help")...).CombinedOutput()
	return err == nil && strings.Contains(string(out), strings.Join(words, " "))
}

// runMySQL runs the section with the rewind binary bin. Servers it started
// are stopped and its folder removed, also on failure.
func runMySQL(ctx context.Context, h *harness, bin string) (*myReport, error) {
	if err := checkMyTools(); err != nil {
		return nil, err
	}
	cfg := h.cfg.my
	m := &myRun{h: h, cfg: cfg, rewind: bin, have: map[string]bool{}, rep: &myReport{
		Started: time.Now(), LoadStart: loadAvg(), Smoke: h.cfg.smoke, SizeMB: cfg.sizeMB, Tables: cfg.tables,
		Versions: map[string]string{}, Writes: cfg.writes, Rate: cfg.rate, Clients: cfg.clients,
		Sides: map[string]*mySide{myRewind: {NotRun: map[string]string{}}, myPeer: {NotRun: map[string]string{}}},
	}}
	_, uid, gid, err := myUser()
	if err != nil {
		return nil, err
	}
	m.dir = filepath.Join(h.runs, "mysql")
	if err := os.RemoveAll(m.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(h.runs, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 && !traversable(h.runs) {
		// The servers' user cannot reach the runs folder (go test's
		// private TMPDIR): a folder of its own on /var/tmp.
		if m.dir, err = os.MkdirTemp("/var/tmp", "rwbench-my-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(m.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(m.dir, uid, gid); err != nil {
		return nil, err
	}
	if !h.cfg.keep {
		defer os.RemoveAll(m.dir)
	}
	defer m.stopAll()
	m.rows = max(100, cfg.sizeMB<<20/myRowBytes/cfg.tables)
	m.rep.Rows = m.rows
	m.env = []string{"REWIND_PASSWORD=" + password, "RESTIC_PASSWORD=" + password,
		"XDG_CACHE_HOME=" + filepath.Join(m.dir, "cache"), "RESTIC_CACHE_DIR=" + filepath.Join(m.dir, "cache-restic"), "TMPDIR=" + filepath.Join(m.dir, "tmp")}
	for name, words := range myCommands {
		m.have[name] = hasCommand(ctx, bin, words)
	}
	m.versions(ctx)
	if err := m.source(ctx); err != nil {
		return nil, fmt.Errorf("MariaDB section, the database: %w", err)
	}
	if err := m.steps(ctx); err != nil {
		return nil, fmt.Errorf("MariaDB section: %w", err)
	}
	m.rep.Finished, m.rep.LoadEnd = time.Now(), loadAvg()
	return m.rep, nil
}

func (m *myRun) versions(ctx context.Context) {
	d, _ := myProgram("mariadbd")
	mb, _ := myProgram("mariabackup")
	rs, _ := exec.LookPath("restic")
	m.rep.Versions["mariadb"] = firstLine(ctx, d, "--version")
	m.rep.Versions["mariabackup"] = firstLine(ctx, mb, "--version")
	m.rep.Versions["restic"] = firstLine(ctx, rs, "version")
	m.rep.Versions[myRewind] = rewindBinVersion(m.h.tools)
	mf := m.h.res.machine
	m.rep.Machine = fmt.Sprintf("%s, nproc %d, %s memory; %s; %s", mf.cpu, mf.nproc, mf.memory, mf.disk, mf.fs)
}

// settings are every server's: the source's and the restored ones'.
func (m *myRun) settings() map[string]string {
	pool, logSize := "512M", "256M"
	if m.h.cfg.smoke {
		pool, logSize = "64M", "48M"
	}
	return map[string]string{
		"server-id":                      "1",
		"log-bin":                        "mysql-bin",
		"log-basename":                   "mysql",
		"binlog_format":                  "ROW",
		"gtid_strict_mode":               "1",
		"sync_binlog":                    "1",
		"innodb_flush_log_at_trx_commit": "1",
		"innodb_buffer_pool_size":        pool,
		"innodb_log_file_size":           logSize,
	}
}

// server describes a server of the section and remembers it for stopAll.
func (m *myRun) server(name, data string) (*myServer, error) {
	s, err := newMyServer(m.dir, name, data, m.settings())
	if err == nil {
		m.all = append(m.all, s)
	}
	return s, err
}

// stopAll kills the receiver and every server still running.
func (m *myRun) stopAll() {
	if m.recv != nil {
		m.recv.kill()
		m.recv = nil
	}
	for _, s := range m.all {
		s.kill()
		if b, err := os.ReadFile(s.logFile); err == nil {
			os.WriteFile(filepath.Join(m.h.runs, "logs", "mysql-server-"+s.name+".log"), b, 0o644)
		}
	}
	if m.stats != "" {
		if b, err := os.ReadFile(m.stats); err == nil {
			os.WriteFile(filepath.Join(m.h.runs, "logs", "mysql-receive-stats.jsonl"), b, 0o644)
		}
	}
}

// source makes the server and its database.
func (m *myRun) source(ctx context.Context) error {
	var err error
	if m.src, err = m.server("source", filepath.Join(m.dir, "data")); err != nil {
		return err
	}
	if err := m.src.install(ctx, m.h); err != nil {
		return err
	}
	if err := m.src.start(ctx, m.h.cfg.timeout); err != nil {
		return err
	}
	start := time.Now()
	m.h.log.Info("MariaDB: loading the database", "tables", m.cfg.tables, "rows per table", m.rows)
	if err := loadSbtest(ctx, m.src, m.cfg.tables, m.rows); err != nil {
		return err
	}
	m.rep.LoadTook = time.Since(start)
	// The binary log starts with the backups: the load was not logged.
	if err := m.src.exec(ctx, "RESET MASTER"); err != nil {
		return err
	}
	if err := m.src.exec(ctx, "CREATE USER 'rewind'@'%' IDENTIFIED BY '"+password+"'; GRANT ALL PRIVILEGES ON *.* TO 'rewind'@'%'; "+
		"CREATE USER 'rewind'@'localhost' IDENTIFIED BY '"+password+"'; GRANT ALL PRIVILEGES ON *.* TO 'rewind'@'localhost'"); err != nil {
		return err
	}
	m.rep.DBBytes, err = diskUsage(m.src.data)
	m.rep.TableBytes, _ = diskUsage(filepath.Join(m.src.data, "sbtest"))
	m.h.log.Info("MariaDB: database loaded", "took", m.rep.LoadTook.Round(time.Second), "datadir", fmtBytes(float64(m.rep.DBBytes)))
	return err
}

// step runs a timed command of the section.
func (m *myRun) timed(ctx context.Context, logName string, argv []string, inputs ...string) (sample, error) {
	s, err := m.h.measure(ctx, cmdSpec{argv: argv}, m.env, "mysql-"+logName, inputs...)
	if err == nil {
		m.h.log.Info("measured", "section", "mysql", "step", logName, "wall", s.Wall.Round(time.Millisecond),
			"cpu", s.CPU.Round(time.Millisecond), "rss_mib", s.RSS>>20)
	}
	return s, err
}

func (m *myRun) untimed(ctx context.Context, logName string, argv ...string) error {
	_, err := m.h.measure(ctx, cmdSpec{argv: argv}, m.env, "mysql-"+logName)
	return err
}

func (m *myRun) note(s string) {
	m.rep.Notes = append(m.rep.Notes, s)
	m.h.log.Warn("MariaDB section", "note", s)
}

// steps runs A, B and C.
func (m *myRun) steps(ctx context.Context) error {
	rw, peer := m.rep.Sides[myRewind], m.rep.Sides[myPeer]
	repo := filepath.Join(m.dir, "repo-rewind")
	rrepo := filepath.Join(m.dir, "repo-restic")
	peerCopy := filepath.Join(m.dir, "mariabackup")
	if err := m.untimed(ctx, "rewind-init", m.rewind, "init", "--repo", repo); err != nil {
		return err
	}
	restic, _ := exec.LookPath("restic")
	if err := m.untimed(ctx, "restic-init", restic, "-r", rrepo, "init"); err != nil {
		return err
	}
	mariabackup, _ := myProgram("mariabackup")

	// The receiver runs from before the backups to the end of the writes.
	if m.have["receive"] {
		if err := m.startReceiver(ctx, repo); err != nil {
			m.note("rewind mysql binlog receive did not start: " + firstLineOf(err.Error()))
			m.have["receive"] = false
		}
	}
	if !m.have["receive"] {
		m.rep.RPONotRun = "this rewind has no working `mysql binlog receive`"
		rw.NotRun["restore"] = "needs `mysql binlog receive`"
	}

	// A: the backups, on the idle server.
	if m.have["backup"] {
		s, err := m.timed(ctx, "rewind-backup", []string{m.rewind, "--repo", repo, "--json", "mysql", "backup",
			"--defaults-file", m.src.client}, m.src.data, repo)
		if err != nil {
			m.note("rewind mysql backup failed: " + firstLineOf(err.Error()))
			rw.NotRun["backup"] = "failed: " + firstLineOf(err.Error())
		} else {
			rw.Backup = &myStep{}
			rw.Backup.add("rewind mysql backup", s)
			rw.RepoAfterBackup, _ = diskUsage(repo)
		}
	} else {
		rw.NotRun["backup"] = "this rewind has no `mysql backup`"
	}
	if rw.Backup == nil {
		rw.NotRun["restore"] = "no backup"
	}
	peer.Backup = &myStep{}
	s, err := m.timed(ctx, "mariabackup-backup", []string{mariabackup, "--backup", "--target-dir=" + peerCopy,
		"--socket=" + m.src.sock, "--user=root"}, m.src.data)
	if err != nil {
		return err
	}
	peer.Backup.add("mariabackup --backup", s)
	if s, err = m.timed(ctx, "restic-backup", []string{restic, "-r", rrepo, "backup", peerCopy}, peerCopy, rrepo); err != nil {
		return err
	}
	peer.Backup.add("restic backup", s)
	peer.RepoAfterBackup, _ = diskUsage(rrepo)
	peer.LocalCopy, _ = diskUsage(peerCopy)

	// B and C: the writes, T among them.
	var want string
	if err := m.writes(ctx, &want); err != nil {
		return err
	}
	if m.recv != nil {
		m.stopReceiver(ctx)
	}
	if err := m.src.stop(); err != nil {
		return err
	}
	if rw.Backup != nil || m.have["receive"] {
		rw.RepoAfterWrites, _ = diskUsage(repo)
	}
	peer.RepoAfterWrites, _ = diskUsage(rrepo)
	binlogs, err := m.binlogs()
	if err != nil {
		return err
	}
	for _, f := range binlogs {
		if fi, err := os.Stat(f); err == nil {
			peer.Binlogs += fi.Size()
		}
	}

	// B: the restores, peer first.
	if err := m.peerRestore(ctx, rrepo, peerCopy, binlogs, want); err != nil {
		return err
	}
	if _, skip := rw.NotRun["restore"]; !skip {
		if !m.have["restore"] {
			rw.NotRun["restore"] = "this rewind has no `mysql restore`"
		} else if err := m.rewindRestore(ctx, repo, want); err != nil {
			m.note("rewind mysql restore: " + strings.ReplaceAll(err.Error(), "\n", " "))
			rw.NotRun["restore"] = "failed: " + firstLineOf(err.Error())
			rw.Restore = nil
		}
	}
	return nil
}

// startReceiver starts rewind mysql binlog receive with a --stats file.
func (m *myRun) startReceiver(ctx context.Context, repo string) error {
	m.stats = filepath.Join(m.dir, "receive-stats.jsonl")
	logPath := filepath.Join(m.h.runs, "logs", "mysql-receive.log")
	argv := []string{m.rewind, "--repo", repo, "-v", "mysql", "binlog", "receive", "--defaults-file", m.src.client,
		"--stats", m.stats}
	bg, err := startBackground(logPath, m.env, argv)
	if err != nil {
		return err
	}
	m.recv = bg
	// Running a second later: it connected, or it would have said why.
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	if bg.exited() {
		m.recv = nil
		return fmt.Errorf("rewind mysql binlog receive exited: %v\n%s", bg.wait(0), logTail(logPath))
	}
	return nil
}

// stopReceiver waits until the receiver has stored the whole binary log
// (its --stats reach SHOW MASTER STATUS; at most 30 s), stops it
// (SIGTERM) and computes the RPO from the samples.
func (m *myRun) stopReceiver(ctx context.Context) {
	var last myCommit
	if c, err := m.lastPosition(ctx); err == nil {
		last = c
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			st, _ := readMyStats(m.stats)
			if len(st) > 0 && st[len(st)-1].covers(last) {
				break
			}
			if sleepCtx(ctx, 200*time.Millisecond) != nil {
				break
			}
		}
	}
	if err := m.recv.stop(); err != nil {
		m.note("rewind mysql binlog receive did not stop cleanly: " + firstLineOf(err.Error()))
	}
	m.recv = nil
}

// lastPosition is the end of the binary log now, as a commit to cover.
func (m *myRun) lastPosition(ctx context.Context) (myCommit, error) {
	var c myCommit
	db, err := m.src.db()
	if err != nil {
		return c, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return c, err
	}
	defer conn.Close()
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&c.GTID); err != nil {
		return c, err
	}
	var file string
	var pos uint64
	rs, err := conn.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return c, err
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	vals := make([]any, len(cols))
	for i := range vals {
		var x []byte
		vals[i] = &x
	}
	if rs.Next() {
		if err := rs.Scan(vals...); err != nil {
			return c, err
		}
		file = string(*vals[0].(*[]byte))
		pos, _ = strconv.ParseUint(string(*vals[1].(*[]byte)), 10, 64)
	}
	c.File, c.Pos = file, pos
	return c, nil
}

// writes runs the load and the sampler for -mysql-writes, pausing around
// T to take the database's checksum there (into want).
func (m *myRun) writes(ctx context.Context, want *string) error {
	gate := &sync.RWMutex{}
	load := &myLoad{s: m.src, tables: m.cfg.tables, rows: m.rows, clients: m.cfg.clients, rate: m.cfg.rate, gate: gate}
	wctx, cancel := context.WithTimeout(ctx, m.cfg.writes)
	defer cancel()
	var wg sync.WaitGroup
	var txns int
	var loadErr, sampleErr error
	var commits []myCommit
	start := time.Now()
	wg.Add(2)
	go func() { defer wg.Done(); txns, loadErr = load.run(wctx) }()
	go func() { defer wg.Done(); commits, sampleErr = mySample(wctx, m.src, gate) }()
	m.h.log.Info("MariaDB: writes", "for", m.cfg.writes, "rate", m.cfg.rate)

	// T near the end: the rest of the writes come after it.
	before := m.cfg.writes - max(5*time.Second, m.cfg.writes/10)
	tErr := sleepCtx(wctx, before)
	if tErr == nil {
		tErr = m.pauseAtT(ctx, gate, want)
	}
	wg.Wait()
	took := time.Since(start)
	if tErr != nil {
		return fmt.Errorf("the moment T: %w", tErr)
	}
	if loadErr != nil {
		return loadErr
	}
	if n, err := load.failed(); n > 0 {
		m.h.log.Warn("MariaDB: some transactions of the load could not run", "failed", n, "first", err)
	}
	if sampleErr != nil {
		return fmt.Errorf("sampler: %w", sampleErr)
	}
	m.rep.Txns, m.rep.TPS = txns, float64(txns)/took.Seconds()
	m.rep.BeforeT = m.rep.At.Sub(start)
	m.h.log.Info("MariaDB: writes done", "transactions", txns, "tps", fmt.Sprintf("%.0f", m.rep.TPS), "at", m.rep.At)
	if m.recv != nil {
		m.rpo(ctx, commits)
	}
	return nil
}

// pauseAtT holds every writer, picks T as the next whole second at least
// 300 ms away, takes the checksum, and releases them 1.3 s after T: every
// commit before has a binlog time before T, every one after a time after
// it, for rewind's "at or before T" and mariadb-binlog's "before T" alike.
func (m *myRun) pauseAtT(ctx context.Context, gate *sync.RWMutex, want *string) error {
	gate.Lock()
	defer gate.Unlock()
	now := time.Now()
	at := now.Truncate(time.Second).Add(time.Second)
	if at.Sub(now) < 300*time.Millisecond {
		at = at.Add(time.Second)
	}
	m.rep.At = at
	sum, err := myChecksum(ctx, m.src, m.cfg.tables)
	if err != nil {
		return err
	}
	*want = sum
	return sleepCtx(ctx, time.Until(at.Add(1300*time.Millisecond)))
}

// rpo waits for the stores after the last sample and computes the RPO.
func (m *myRun) rpo(ctx context.Context, commits []myCommit) {
	if len(commits) == 0 {
		m.rep.RPONotRun = "no commit was sampled"
		return
	}
	last := commits[len(commits)-1]
	deadline := time.Now().Add(15 * time.Second)
	var stores []myStore
	for {
		stores, _ = readMyStats(m.stats)
		if (len(stores) > 0 && stores[len(stores)-1].covers(last)) || time.Now().After(deadline) {
			break
		}
		if sleepCtx(ctx, 200*time.Millisecond) != nil {
			break
		}
	}
	if len(stores) == 0 {
		m.rep.RPONotRun = "the receiver's --stats file has no store (see mysql-receive.log)"
		return
	}
	lags, missing := myLags(stores, commits)
	r := &myRPO{Samples: len(commits), Missing: missing, P50: percentile(lags, 50), P99: percentile(lags, 99), Max: percentile(lags, 100)}
	for _, st := range stores {
		if !st.Time.Before(commits[0].Time) {
			r.Stores++
		}
	}
	m.rep.RPO = r
	m.h.log.Info("measured", "section", "mysql", "step", "binlog RPO", "samples", r.Samples, "missing", r.Missing,
		"p50", r.P50, "p99", r.P99, "max", r.Max)
}

// binlogs lists the source server's binary log files, in order.
func (m *myRun) binlogs() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(m.src.data, "mysql-bin.index"))
	if err != nil {
		return nil, fmt.Errorf("the server's binlog index: %w", err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if !filepath.IsAbs(line) {
			line = filepath.Join(m.src.data, filepath.Base(line))
		}
		out = append(out, line)
	}
	return out, nil
}

// backupBinlogPos reads the consistent point mariabackup wrote into its
// folder: file and position.
func backupBinlogPos(dir string) (string, uint64, error) {
	for _, name := range []string{"mariadb_backup_binlog_info", "xtrabackup_binlog_info"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return "", 0, fmt.Errorf("%s: %q is not FILE POSITION [GTID]", name, b)
		}
		pos, err := strconv.ParseUint(f[1], 10, 64)
		return f[0], pos, err
	}
	return "", 0, fmt.Errorf("no binlog info file in %s (was the binary log on?)", dir)
}

// peerRestore: restic restore, mariabackup --prepare and --move-back,
// chown, the server started until it answers, then the server's binlogs
// from the backup's position to T piped through mariadb-binlog into
// mariadb. Every phase is timed; the checksum is checked after.
func (m *myRun) peerRestore(ctx context.Context, rrepo, peerCopy string, binlogs []string, want string) error {
	side := m.rep.Sides[myPeer]
	side.Restore = &myStep{}
	restic, _ := exec.LookPath("restic")
	mariabackup, _ := myProgram("mariabackup")
	staging := filepath.Join(m.dir, "restore-staging")
	data := filepath.Join(m.dir, "restore-peer")
	if err := emptyFolder(staging); err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	s, err := m.timed(ctx, "peer-restic-restore", []string{restic, "-r", rrepo, "restore", "latest", "--target", staging}, rrepo)
	if err != nil {
		return err
	}
	side.Restore.add("restic restore", s)
	copyDir := filepath.Join(staging, peerCopy) // restic keeps the absolute path
	if s, err = m.timed(ctx, "peer-prepare", []string{mariabackup, "--prepare", "--target-dir=" + copyDir}); err != nil {
		return err
	}
	side.Restore.add("mariabackup --prepare", s)
	file, pos, err := backupBinlogPos(copyDir)
	if err != nil {
		return err
	}
	if s, err = m.timed(ctx, "peer-move-back", []string{mariabackup, "--move-back", "--target-dir=" + copyDir, "--datadir=" + data}); err != nil {
		return err
	}
	side.Restore.add("mariabackup --move-back", s)
	srv, err := m.server("peer", data)
	if err != nil {
		return err
	}
	if err := m.chownStartTimed(ctx, srv, side.Restore); err != nil {
		return err
	}
	// The binlogs from the backup's file on, the first from its position.
	i := slices.IndexFunc(binlogs, func(p string) bool { return filepath.Base(p) == filepath.Base(file) })
	if i < 0 {
		return fmt.Errorf("the backup's binlog %s is not among the server's (%s)", file, ui.Count(int64(len(binlogs)), "file", "files"))
	}
	binlog, _ := myProgram("mariadb-binlog")
	client, _ := myProgram("mariadb")
	from := append([]string{binlog, "--start-position=" + strconv.FormatUint(pos, 10),
		"--stop-datetime=" + m.rep.At.UTC().Format("2006-01-02 15:04:05")}, binlogs[i:]...)
	to := []string{client, "--defaults-file=" + srv.client}
	if s, err = m.pipe(ctx, "peer-replay", from, to, binlogs[i:]...); err != nil {
		return err
	}
	side.Restore.add("mariadb-binlog --stop-datetime T \\| mariadb", s)
	if err := m.check(ctx, srv, want, "the peer's restore"); err != nil {
		return err
	}
	return srv.stop()
}

// chownStartTimed gives the restored data directory to the servers' user
// and starts the server until it answers, both timed.
func (m *myRun) chownStartTimed(ctx context.Context, srv *myServer, step *myStep) error {
	start := time.Now()
	if err := chownTree(srv.data, srv.uid, srv.gid); err != nil {
		return err
	}
	step.add("chown -R mysql", sample{Wall: time.Since(start)})
	syscall.Sync()
	start = time.Now()
	if err := srv.start(ctx, m.h.cfg.timeout); err != nil {
		return err
	}
	step.add("mariadbd until it answers", sample{Wall: time.Since(start)})
	m.h.log.Info("measured", "section", "mysql", "step", "start "+srv.name, "wall", time.Since(start).Round(time.Millisecond))
	return nil
}

// check compares a restored server's checksum with the one at T.
func (m *myRun) check(ctx context.Context, srv *myServer, want, what string) error {
	got, err := myChecksum(ctx, srv, m.cfg.tables)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if got != want {
		return fmt.Errorf("%s is not the database at T (%s): checksums %s, want %s", what, m.rep.At.UTC().Format(time.RFC3339), got, want)
	}
	return nil
}

// rewindRestore: rewind mysql restore --at T --target DIR, chown, start
// until it answers; then the checksum.
func (m *myRun) rewindRestore(ctx context.Context, repo, want string) error {
	side := m.rep.Sides[myRewind]
	side.Restore = &myStep{}
	data := filepath.Join(m.dir, "restore-rewind")
	s, err := m.timed(ctx, "rewind-restore", []string{m.rewind, "--repo", repo, "mysql", "restore",
		"--at", m.rep.At.UTC().Format(time.RFC3339), "--target", data}, repo)
	if err != nil {
		return err
	}
	side.Restore.add("rewind mysql restore --at T", s)
	srv, err := m.server("rewind", data)
	if err != nil {
		return err
	}
	if err := m.chownStartTimed(ctx, srv, side.Restore); err != nil {
		return err
	}
	if err := m.check(ctx, srv, want, "rewind's restore"); err != nil {
		return err
	}
	return srv.stop()
}

// pipe runs from | to as two children, timed together: the wall time from
// the first start to the last exit, CPU summed, the larger peak RSS.
func (m *myRun) pipe(ctx context.Context, logName string, from, to []string, inputs ...string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, m.h.cfg.timeout)
	defer cancel()
	logPath := filepath.Join(m.h.runs, "logs", "mysql-"+logName+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return sample{}, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "$ %s | %s\n", strings.Join(from, " "), strings.Join(to, " "))
	a := exec.CommandContext(ctx, from[0], from[1:]...)
	b := exec.CommandContext(ctx, to[0], to[1:]...)
	a.Env = append(os.Environ(), "TZ=UTC") // --stop-datetime is read in local time
	b.Env = os.Environ()
	a.Stderr, b.Stdout, b.Stderr = logf, logf, logf
	r, w, err := os.Pipe()
	if err != nil {
		return sample{}, err
	}
	a.Stdout, b.Stdin = w, r
	syscall.Sync()
	if err := m.h.setCache(ctx, inputs); err != nil {
		return sample{}, err
	}
	start := time.Now()
	if err := b.Start(); err != nil {
		r.Close()
		w.Close()
		return sample{}, err
	}
	errA := a.Start()
	r.Close()
	w.Close()
	if errA == nil {
		errA = a.Wait()
	}
	errB := b.Wait()
	s := sample{Wall: time.Since(start)}
	for _, c := range []*exec.Cmd{a, b} {
		if c.ProcessState == nil {
			continue
		}
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.CPU += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			s.Sys += time.Duration(ru.Stime.Nano())
			s.RSS = max(s.RSS, ru.Maxrss*1024)
		}
	}
	if err := errors.Join(errA, errB); err != nil {
		return s, fmt.Errorf("%s | %s: %w\n%s", filepath.Base(from[0]), filepath.Base(to[0]), err, logTail(logPath))
	}
	m.h.log.Info("measured", "section", "mysql", "step", logName, "wall", s.Wall.Round(time.Millisecond), "cpu", s.CPU.Round(time.Millisecond))
	return s, nil
}

// startBackground runs a program beside the harness, its output in
// logPath.
func startBackground(logPath string, env, argv []string) (*bgProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "$ %s\n", strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
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

// mysql runs the section after the others when asked for; without it,
// the last run's section of -out is kept.
func (h *harness) mysql(ctx context.Context) error {
	bin := rewindBin(h.tools)
	if h.cfg.my.mode == myOff || bin == "" {
		return nil
	}
	rep, err := runMySQL(ctx, h, bin)
	if err != nil {
		if !h.cfg.optional || ctx.Err() != nil {
			return err
		}
		h.res.note("MariaDB section: " + firstLineOf(err.Error()))
		return nil
	}
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		os.WriteFile(filepath.Join(h.runs, "logs", "mysql.json"), b, 0o644)
	}
	h.res.MySQL = rep
	return nil
}
