package main

// The PostgreSQL section (issue 12): rewind pg backup / wal-push / restore
// against pgBackRest on the same pgbench database, in the same run.
//
// One pgbench database (pgbench -i at -pg-scale) is initialised once per run
// into a stopped template data directory. Each tool's turn starts from a
// fresh copy of that template (cp -a of the stopped cluster: same system
// identifier, same files, same WAL position), with only archive_command
// differing, and goes through the same steps:
//
//	repository init (untimed) and server start
//	full base backup (timed), WAL archive caught up, repository size
//	pgbench -t: 1% of the accounts rows' worth of TPC-B transactions
//	WAL archive caught up, repository size
//	incremental base backup (timed), WAL archive caught up, repository size
//	a few more transactions, the moment T, a few more (so that recovery
//	sees a commit after T), WAL archive caught up, server stopped
//	restore to T until the cluster is promoted and answers (timed)
//	check: the restored pgbench_history has exactly the rows it had at T
//
// Both tools run as the cluster's OS user (postgres when the harness runs as
// root), as they would under archive_command.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL section modes (-pg).
const (
	pgOn   = "on"   // after the file sets
	pgOff  = "off"  // not run; the report keeps the section of the last run
	pgOnly = "only" // alone; its section of -out is replaced in place
)

// pgTitle starts the report's section; a run without it keeps the old one.
const pgTitle = "## PostgreSQL (issue 12): rewind against pgBackRest"

// pgConfig holds the section's flags.
type pgConfig struct {
	mode   string
	scale  int
	binDir string
}

// pgStanza is the pgBackRest stanza the harness configures.
const pgStanza = "bench"

// Tool names of the section.
const (
	pgRewind     = "rewind"
	pgBackRest   = "pgbackrest"
	pgStepFull   = "full base backup"
	pgStepIncr   = "incremental base backup"
	pgStepRest   = "restore to T"
	pgTxnClients = 4
)

// pgToolRun is what one tool's turn measured.
type pgToolRun struct {
	Full    sample `json:"full"`
	Incr    sample `json:"incremental"`
	Restore sample `json:"restore"` // wall from the restore command to a promoted server answering; CPU of the tool's processes
	// RestorePhases splits the restore's wall time.
	RestorePhases map[string]time.Duration `json:"restore_phases_ns"`
	// Repository sizes (du) after the full backup (WAL archive caught up),
	// before the incremental (after pgbench, archive caught up) and after it.
	SizeFull   int64   `json:"size_after_full"`
	SizeBefore int64   `json:"size_before_incremental"`
	SizeIncr   int64   `json:"size_after_incremental"`
	TPS        float64 `json:"pgbench_tps"`
	RowsAtT    int64   `json:"history_rows_at_t"`
	// FullBase and IncrBase are what each base backup stored itself,
	// without the WAL archive: rewind's data_added_packed, pgBackRest's
	// growth of backup/.
	FullBase int64 `json:"full_base_bytes"`
	IncrBase int64 `json:"incremental_base_bytes"`
	// IncrRead is what rewind's incremental read (bytes_read); -1 unknown.
	IncrRead int64 `json:"incremental_bytes_read"`
	// Recovery is what the restored server's log says.
	Recovery pgRecovery `json:"recovery"`
	// Touched is how far pgbench's updates spread over pgbench_accounts.
	Touched pgTouched `json:"touched"`
}

// pgRecovery is read from the restored server's log.
type pgRecovery struct {
	Segments   int           `json:"segments_fetched"`  // "restored log file" lines
	Redo       time.Duration `json:"redo_ns"`           // "redo done ... elapsed"
	Checkpoint time.Duration `json:"end_checkpoint_ns"` // the end-of-recovery checkpoint's total
	ToRedo     time.Duration `json:"start_to_redo_ns"`  // first log line to "starting point-in-time recovery"
	FilesTook  time.Duration `json:"files_restored_ns"` // rewind: "restored ... in X" (its restore of the files)
}

// pgTouched counts, among the pgbench_accounts rows pgbench updated, the
// 8 KiB pages they were on and the aligned groups of 8 pages (64 KiB, the
// small-chunk profile's average chunk) holding one of them.
type pgTouched struct {
	Rows    int64 `json:"rows"`
	Pages   int64 `json:"pages"`
	Of      int64 `json:"relpages"`
	Groups  int64 `json:"groups_64k"`
	GroupOf int64 `json:"groups_64k_of"`
}

func (r *pgToolRun) added() int64 { return r.SizeIncr - r.SizeBefore }

// pgReport is the section's results, saved as JSON beside the logs.
type pgReport struct {
	Started      time.Time             `json:"started"`
	Finished     time.Time             `json:"finished"`
	LoadStart    string                `json:"load_start"`
	LoadEnd      string                `json:"load_end"`
	Machine      string                `json:"machine"`
	Scale        int                   `json:"scale"`
	DBBytes      int64                 `json:"database_bytes"`
	InitTook     time.Duration         `json:"pgbench_init_ns"`
	Transactions int                   `json:"transactions"`
	Versions     map[string]string     `json:"versions"`
	Order        []string              `json:"order"`
	Tools        map[string]*pgToolRun `json:"tools"`
	Receive      []pgExtra             `json:"receive"`
	ReceiveRun   *pgReceiveRun         `json:"receive_run,omitempty"`
	Notes        []string              `json:"notes,omitempty"`
}

// pgExtra is a measure of rewind alone against an absolute target (the
// pg receive rows).
type pgExtra struct {
	What     string `json:"what"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      string `json:"met"`
}

// pgRun is one run of the section: where things are and who runs them.
type pgRun struct {
	h       *harness
	cfg     pgConfig
	dir     string // owned by the cluster's user: template, data, repositories
	sock    string // unix socket folder
	port    int
	cred    *syscall.Credential
	uid     int
	gid     int
	rewind  string // a copy of rewind the cluster's user can run
	pwFile  string
	pgbr    string // pgbackrest
	conf    string // pgbackrest's configuration file
	started []string
	rep     *pgReport
	// recvStart is when the pg receive measures started (for their log).
	recvStart time.Time
}

// pgPrograms are the PostgreSQL programs the section runs.
var pgPrograms = []string{"initdb", "pg_ctl", "pgbench", "postgres"}

// checkPgTools says clearly what is missing before anything starts.
func checkPgTools(binDir string) (string, error) {
	for _, p := range pgPrograms {
		if _, err := os.Stat(filepath.Join(binDir, p)); err != nil {
			return "", fmt.Errorf("PostgreSQL section: %s not found in %s (install PostgreSQL 15: scripts/postgres.sh as root, or give -pg-bindir; -pg off skips the section)", p, binDir)
		}
	}
	pgbr, err := exec.LookPath("pgbackrest")
	if err != nil {
		return "", errors.New("PostgreSQL section: pgbackrest not found in PATH (scripts/postgres.sh installs Debian's pgbackrest; -pg off skips the section)")
	}
	return pgbr, nil
}

// runPG runs the section with the rewind binary bin and returns its report.
// Servers it started are stopped and its folder removed, also on failure.
func runPG(ctx context.Context, h *harness, bin string) (rep *pgReport, err error) {
	cfg := h.cfg.pg
	pgbr, err := checkPgTools(cfg.binDir)
	if err != nil {
		return nil, err
	}
	p := &pgRun{h: h, cfg: cfg, pgbr: pgbr, rep: &pgReport{
		Started: time.Now(), LoadStart: loadAvg(), Scale: cfg.scale,
		Versions: map[string]string{}, Tools: map[string]*pgToolRun{},
	}}
	if err := p.user(); err != nil {
		return nil, err
	}
	p.dir = filepath.Join(h.runs, "pg")
	if err := os.RemoveAll(p.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(h.runs, 0o755); err != nil {
		return nil, err
	}
	if p.cred != nil && !traversable(h.runs) {
		// The cluster's user cannot reach the runs folder (a private
		// TMPDIR, as under go test): use a folder of its own on /var/tmp.
		if p.dir, err = os.MkdirTemp("/var/tmp", "rwbench-pg-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	if !h.cfg.keep {
		defer os.RemoveAll(p.dir)
	}
	// A short path: unix socket paths are limited to 107 bytes.
	if p.sock, err = os.MkdirTemp("/tmp", "rwpg-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(p.sock)
	for _, d := range []string{p.dir, p.sock} {
		if err := os.Chown(d, p.uid, p.gid); err != nil {
			return nil, err
		}
	}
	defer p.stopAll()
	if p.port, err = freePort(); err != nil {
		return nil, err
	}
	if err := p.setup(ctx, bin); err != nil {
		return nil, err
	}
	if err := p.template(ctx); err != nil {
		return nil, fmt.Errorf("pgbench database: %w", err)
	}
	p.rep.Order = []string{pgRewind, pgBackRest}
	for _, tool := range p.rep.Order {
		r, err := p.turn(ctx, tool)
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL, %s: %w", tool, err)
		}
		p.rep.Tools[tool] = r
	}
	p.rep.Receive = p.receiveMeasures(ctx)
	p.rep.Finished, p.rep.LoadEnd = time.Now(), loadAvg()
	return p.rep, nil
}

// user picks the OS user the clusters and both tools run as: postgres when
// the harness is root (initdb refuses root), else the harness's own.
func (p *pgRun) user() error {
	if os.Geteuid() != 0 {
		p.uid, p.gid = os.Getuid(), os.Getgid()
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("PostgreSQL section: no postgres OS user to run the clusters as (initdb refuses root; scripts/postgres.sh creates it): %w", err)
	}
	p.uid, _ = strconv.Atoi(u.Uid)
	p.gid, _ = strconv.Atoi(u.Gid)
	p.cred = &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid), Groups: []uint32{}}
	return nil
}

// traversable says whether every folder from / to dir lets others through.
func traversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// setup copies rewind where the cluster's user can run it, writes the
// password file and pgBackRest's configuration, and records the versions.
func (p *pgRun) setup(ctx context.Context, bin string) error {
	p.rewind = filepath.Join(p.dir, "rewind")
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if err := p.writeFile(p.rewind, b, 0o755); err != nil {
		return err
	}
	p.pwFile = filepath.Join(p.dir, "password")
	if err := p.writeFile(p.pwFile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	p.conf = filepath.Join(p.dir, "pgbackrest.conf")
	conf := strings.Join([]string{
		"[global]",
		"repo1-path=" + filepath.Join(p.dir, "repo-pgbackrest"),
		"repo1-retention-full=2",
		"compress-type=zst",
		"process-max=2",
		"start-fast=y",
		"lock-path=" + filepath.Join(p.dir, "pgbackrest-lock"),
		"log-path=" + filepath.Join(p.dir, "pgbackrest-log"),
		"log-level-console=warn",
		"log-level-file=info",
		"",
		"[" + pgStanza + "]",
		"pg1-path=" + filepath.Join(p.dir, "data"),
		"pg1-port=" + strconv.Itoa(p.port),
		"pg1-socket-path=" + p.sock,
		"",
	}, "\n")
	if err := p.writeFile(p.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	for _, d := range []string{"pgbackrest-lock", "pgbackrest-log", "cache", "prof", "tmp"} {
		if err := p.mkdir(filepath.Join(p.dir, d)); err != nil {
			return err
		}
	}
	p.rep.Versions["postgres"] = firstLine(ctx, filepath.Join(p.cfg.binDir, "postgres"), "--version")
	p.rep.Versions[pgBackRest] = firstLine(ctx, p.pgbr, "version")
	p.rep.Versions[pgRewind] = rewindBinVersion(p.h.tools)
	m := p.h.res.machine
	p.rep.Machine = fmt.Sprintf("%s, nproc %d, %s memory; %s; %s", m.cpu, m.nproc, m.memory, m.disk, m.fs)
	return nil
}

func rewindBinVersion(tools []tool) string {
	for _, t := range tools {
		if t.Name() == "rewind" {
			return t.Version()
		}
	}
	return ""
}

func (p *pgRun) writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, b, mode); err != nil {
		return err
	}
	return os.Chown(path, p.uid, p.gid)
}

func (p *pgRun) mkdir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	return os.Chown(path, p.uid, p.gid)
}

// cmd is a command line run as the cluster's user.
func (p *pgRun) cmd(argv ...string) cmdSpec {
	// TMPDIR of its own: the harness's may be private (go test's).
	return cmdSpec{argv: argv, cred: p.cred, dir: p.dir, env: []string{"TMPDIR=" + filepath.Join(p.dir, "tmp")}}
}

func (p *pgRun) bin(name string) string { return filepath.Join(p.cfg.binDir, name) }

// untimed runs a command as the cluster's user, its output in the logs.
func (p *pgRun) untimed(ctx context.Context, logName string, spec cmdSpec, env ...string) error {
	_, err := p.h.measure(ctx, spec, env, "pg-"+logName)
	return err
}

// timed runs a measured step with the page cache set for its inputs.
func (p *pgRun) timed(ctx context.Context, tool, step string, spec cmdSpec, env []string, inputs ...string) (sample, error) {
	s, err := p.h.measure(ctx, spec, env, "pg-"+tool+"-"+strings.ReplaceAll(step, " ", "-"), inputs...)
	if err != nil {
		return s, fmt.Errorf("%s: %w", step, err)
	}
	p.h.log.Info("measured", "section", "pg", "tool", tool, "step", step,
		"wall", s.Wall.Round(time.Millisecond), "cpu", s.CPU.Round(time.Millisecond), "rss_mib", s.RSS>>20)
	return s, nil
}

// dsn reaches the server on the run's socket and port as the cluster's user.
func (p *pgRun) dsn() string {
	u := "postgres"
	if p.cred == nil {
		if cu, err := user.Current(); err == nil {
			u = cu.Username
		}
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", p.sock, p.port, u)
}

// template makes the stopped pgbench database every turn starts from.
func (p *pgRun) template(ctx context.Context) error {
	tpl := filepath.Join(p.dir, "template")
	args := []string{p.bin("initdb"), "-D", tpl, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"}
	if p.cred != nil {
		args = append(args, "-U", "postgres")
	}
	if err := p.untimed(ctx, "initdb", p.cmd(args...)); err != nil {
		return err
	}
	// Every turn writes its archive settings into bench.conf.
	conf := fmt.Sprintf("\n# rwbench\nport = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\n"+
		"include_if_exists = 'bench.conf'\n", p.port, p.sock)
	f, err := os.OpenFile(filepath.Join(tpl, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := p.start(ctx, tpl, "template"); err != nil {
		return err
	}
	start := time.Now()
	if err := p.untimed(ctx, "pgbench-init", p.cmd(p.bin("pgbench"), "-i", "-q", "-s", strconv.Itoa(p.cfg.scale),
		"-h", p.sock, "-p", strconv.Itoa(p.port), "postgres")); err != nil {
		return err
	}
	p.rep.InitTook = time.Since(start)
	if err := p.stop(ctx, tpl, "template"); err != nil {
		return err
	}
	p.rep.DBBytes, err = diskUsage(filepath.Join(tpl, "base"))
	// 1% of the accounts rows (100,000 per scale unit): one TPC-B
	// transaction updates one account row.
	p.rep.Transactions = p.cfg.scale * 100_000 / 100
	return err
}

// start runs pg_ctl start and waits until the server accepts connections.
func (p *pgRun) start(ctx context.Context, data, logName string) error {
	logFile := filepath.Join(p.dir, "server-"+logName+".log")
	p.started = append(p.started, data)
	err := p.untimed(ctx, "start-"+logName, p.cmd(p.bin("pg_ctl"), "-D", data, "-l", logFile, "-w", "-t", "300", "start"))
	if err != nil {
		return fmt.Errorf("%w\n%s", err, logTail(logFile))
	}
	return nil
}

func (p *pgRun) stop(ctx context.Context, data, logName string) error {
	err := p.untimed(ctx, "stop-"+logName, p.cmd(p.bin("pg_ctl"), "-D", data, "-m", "fast", "-w", "-t", "300", "stop"))
	if err == nil {
		p.started = slices.DeleteFunc(p.started, func(s string) bool { return s == data })
	}
	return err
}

// stopAll stops every server still running, whatever happened: it runs on
// the way out, with a context of its own.
func (p *pgRun) stopAll() {
	for _, data := range p.started {
		if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err != nil {
			continue
		}
		cmd := exec.Command(p.bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "-t", "60", "stop")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			p.h.log.Warn("could not stop a PostgreSQL server", "data", data, "err", err, "out", strings.TrimSpace(string(out)))
		}
	}
	p.started = nil
}

// query runs one SQL statement that returns one row.
func (p *pgRun) query(ctx context.Context, sql string, dst ...any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, p.dsn())
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.QueryRow(ctx, sql).Scan(dst...)
}

// waitArchived ends the current WAL segment and waits until archive_command
// has stored every segment ready, so that a repository's size includes the
// WAL written so far.
func (p *pgRun) waitArchived(ctx context.Context, data string) error {
	var seg string
	if err := p.query(ctx, "select pg_walfile_name(pg_switch_wal())", &seg); err != nil {
		return fmt.Errorf("switch WAL: %w", err)
	}
	deadline := time.Now().Add(p.h.cfg.timeout)
	for {
		var failed string
		var ready int
		err := p.query(ctx, `select coalesce(last_failed_wal, '') || ' ' || coalesce(last_failed_time::text, ''),
			(select count(*) from pg_ls_archive_statusdir() where name like '%.ready') from pg_stat_archiver`, &failed, &ready)
		if err != nil {
			return err
		}
		if ready == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("WAL not archived after %s (%d segments ready; last failure %s): see the server's log", p.h.cfg.timeout, ready, failed)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// pgbench runs n TPC-B transactions with pgTxnClients clients and returns
// their rate.
func (p *pgRun) pgbench(ctx context.Context, logName string, n int) (float64, error) {
	per := max(1, n/pgTxnClients)
	spec := p.cmd(p.bin("pgbench"), "-n", "-c", strconv.Itoa(pgTxnClients), "-j", "2", "-t", strconv.Itoa(per),
		"-h", p.sock, "-p", strconv.Itoa(p.port), "postgres")
	if err := p.untimed(ctx, logName, spec); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(p.h.runs, "logs", "pg-"+logName+".log"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "tps = "); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				x, _ := strconv.ParseFloat(f[0], 64)
				return x, nil
			}
		}
	}
	return 0, nil
}

// turn takes one tool through every step on a fresh copy of the template.
func (p *pgRun) turn(ctx context.Context, tool string) (*pgToolRun, error) {
	r := &pgToolRun{RestorePhases: map[string]time.Duration{}}
	data := filepath.Join(p.dir, "data")
	restore := filepath.Join(p.dir, "restore")
	repo := filepath.Join(p.dir, "repo-"+tool)
	for _, d := range []string{data, restore, repo} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	defer func() {
		p.stopAll()
		// The servers' logs go with the others, for a look afterwards.
		for _, l := range []string{filepath.Join(restore, "rewind-start.log"), filepath.Join(p.dir, "server-"+tool+".log"),
			filepath.Join(p.dir, "server-"+tool+"-restored.log")} {
			if b, err := os.ReadFile(l); err == nil {
				os.WriteFile(filepath.Join(p.h.runs, "logs", "pg-"+tool+"-"+filepath.Base(l)), b, 0o644)
			}
		}
		os.RemoveAll(data)
		os.RemoveAll(restore)
		if !p.h.cfg.keep {
			os.RemoveAll(repo)
		}
	}()
	if err := p.untimed(ctx, tool+"-copy", p.cmd("cp", "-a", "--reflink=auto", filepath.Join(p.dir, "template"), data)); err != nil {
		return nil, err
	}
	env := []string{"REWIND_PASSWORD_FILE=" + p.pwFile, "XDG_CACHE_HOME=" + filepath.Join(p.dir, "cache"), "HOME=" + p.dir}
	var archive string
	switch tool {
	case pgRewind:
		if err := p.untimed(ctx, "rewind-init", p.cmd(p.rewind, "init", "--repo", repo), env...); err != nil {
			return nil, err
		}
		archive = fmt.Sprintf("%s --repo %s --password-file %s pg wal-push %%p", p.rewind, repo, p.pwFile)
	case pgBackRest:
		archive = fmt.Sprintf("%s --config=%s --stanza=%s archive-push %%p", p.pgbr, p.conf, pgStanza)
	}
	if err := p.writeFile(filepath.Join(data, "bench.conf"), []byte(fmt.Sprintf("archive_mode = on\narchive_command = '%s'\n", archive)), 0o600); err != nil {
		return nil, err
	}
	if err := p.start(ctx, data, tool); err != nil {
		return nil, err
	}
	if tool == pgBackRest {
		if err := p.untimed(ctx, "pgbackrest-stanza-create", p.pgbrCmd("stanza-create")); err != nil {
			return nil, err
		}
	}
	backup := func(step, kind string) (sample, error) {
		spec := p.pgbrCmd("backup", "--type="+kind)
		benv := env
		if tool == pgRewind {
			spec = p.cmd(p.rewind, "--repo", repo, "--json", "pg", "backup", "--fast", "--dsn", p.dsn())
			benv = append(slices.Clone(env), "REWIND_CPUPROFILE="+filepath.Join(p.dir, "prof", kind+".pprof"))
		}
		p.warm(ctx, data, repo)
		return p.timed(ctx, tool, step, spec, benv)
	}
	size := func() (int64, error) {
		if err := p.waitArchived(ctx, data); err != nil {
			return 0, err
		}
		return diskUsage(repo)
	}
	var err error
	baseStart, _ := diskUsage(filepath.Join(repo, "backup"))
	if r.Full, err = backup(pgStepFull, "full"); err != nil {
		return nil, err
	}
	baseFull, _ := diskUsage(filepath.Join(repo, "backup"))
	r.FullBase, _ = p.stored(tool, "full", baseFull-baseStart)
	if r.SizeFull, err = size(); err != nil {
		return nil, err
	}
	if r.TPS, err = p.pgbench(ctx, tool+"-pgbench-1pct", p.rep.Transactions); err != nil {
		return nil, err
	}
	if r.SizeBefore, err = size(); err != nil {
		return nil, err
	}
	if err := p.touched(ctx, &r.Touched); err != nil {
		return nil, err
	}
	baseBefore, _ := diskUsage(filepath.Join(repo, "backup"))
	if r.Incr, err = backup(pgStepIncr, "incr"); err != nil {
		return nil, err
	}
	baseIncr, _ := diskUsage(filepath.Join(repo, "backup"))
	r.IncrBase, r.IncrRead = p.stored(tool, "incr", baseIncr-baseBefore)
	if r.SizeIncr, err = size(); err != nil {
		return nil, err
	}

	// The moment T: after some more transactions, with more after it so
	// that recovery finds a commit past T.
	if _, err := p.pgbench(ctx, tool+"-pgbench-before-t", max(100, p.rep.Transactions/10)); err != nil {
		return nil, err
	}
	var at time.Time
	if err := p.query(ctx, "select count(*), clock_timestamp() from pgbench_history", &r.RowsAtT, &at); err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
		return nil, err
	}
	if _, err := p.pgbench(ctx, tool+"-pgbench-after-t", 100); err != nil {
		return nil, err
	}
	if err := p.waitArchived(ctx, data); err != nil {
		return nil, err
	}
	if err := p.stop(ctx, data, tool); err != nil {
		return nil, err
	}
	if r.Restore, err = p.restoreTo(ctx, tool, repo, restore, at, env, r.RestorePhases); err != nil {
		return nil, err
	}
	// Untimed: the restored cluster holds exactly the rows at T.
	var rows int64
	if err := p.query(ctx, "select count(*) from pgbench_history", &rows); err != nil {
		return nil, fmt.Errorf("restored cluster: %w", err)
	}
	if rows != r.RowsAtT {
		return nil, fmt.Errorf("restore to T is wrong: pgbench_history has %d rows, %d at T (%s)", rows, r.RowsAtT, at.Format(time.RFC3339Nano))
	}
	if err := p.stop(ctx, restore, tool+"-restored"); err != nil {
		return nil, err
	}
	serverLog := filepath.Join(p.dir, "server-"+tool+"-restored.log")
	if tool == pgRewind {
		serverLog = filepath.Join(restore, "rewind-start.log")
	}
	r.Recovery = readRecovery(serverLog, filepath.Join(p.h.runs, "logs", "pg-"+tool+"-"+strings.ReplaceAll(pgStepRest, " ", "-")+".log"))
	if tool == pgRewind {
		for _, kind := range []string{"full", "incr"} {
			src := filepath.Join(p.dir, "prof", kind+".pprof")
			if b, err := os.ReadFile(src); err == nil {
				os.WriteFile(filepath.Join(p.h.runs, "logs", "pg-rewind-"+kind+".pprof"), b, 0o644)
			}
		}
	}
	return r, nil
}

func (p *pgRun) pgbrCmd(args ...string) cmdSpec {
	return p.cmd(append([]string{p.pgbr, "--config=" + p.conf, "--stanza=" + pgStanza}, args...)...)
}

// restoreTo restores the cluster as it was at T into target and waits until
// it is promoted and answers a query. Its wall time runs from the restore
// command's start to that answer, without the harness's syncs in between;
// its CPU is the tool's processes' (the server's own is not counted for
// either tool).
func (p *pgRun) restoreTo(ctx context.Context, tool, repo, target string, at time.Time, env []string, phases map[string]time.Duration) (sample, error) {
	if err := p.mkdir(target); err != nil {
		return sample{}, err
	}
	var total sample
	add := func(phase string, s sample) {
		total.Wall += s.Wall
		total.CPU += s.CPU
		total.Sys += s.Sys
		total.RSS = max(total.RSS, s.RSS)
		phases[phase] = s.Wall
	}
	p.started = append(p.started, target)
	switch tool {
	case pgRewind:
		spec := p.cmd(p.rewind, "--repo", repo, "--password-file", p.pwFile, "pg", "restore",
			"--at", at.UTC().Format(time.RFC3339Nano), "--target", target, "--start", "--no-archive")
		p.warm(ctx, repo)
		s, err := p.timed(ctx, tool, pgStepRest, spec, env)
		if err != nil {
			return total, err
		}
		add("rewind pg restore --start", s)
	case pgBackRest:
		spec := p.pgbrCmd("restore", "--pg1-path="+target, "--type=time",
			"--target="+at.UTC().Format("2006-01-02 15:04:05.999999-07"), "--target-action=promote", "--archive-mode=off")
		p.warm(ctx, repo)
		s, err := p.timed(ctx, tool, pgStepRest, spec, nil)
		if err != nil {
			return total, err
		}
		add("pgbackrest restore", s)
		logFile := filepath.Join(p.dir, "server-"+tool+"-restored.log")
		s, err = p.timed(ctx, tool, "restore-start", p.cmd(p.bin("pg_ctl"), "-D", target, "-l", logFile, "-w", "-t", "1800", "start"), nil)
		if err != nil {
			return total, fmt.Errorf("%w\n%s", err, logTail(logFile))
		}
		add("pg_ctl start -w", s)
	}
	// Until promoted: hot standby accepts read-only connections while it
	// still replays.
	start := time.Now()
	for {
		var inRecovery bool
		err := p.query(ctx, "select pg_is_in_recovery()", &inRecovery)
		if err == nil && !inRecovery {
			break
		}
		if time.Since(start) > p.h.cfg.timeout {
			return total, fmt.Errorf("restored cluster not promoted after %s (last error: %v)", p.h.cfg.timeout, err)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return total, err
		}
	}
	add("until promoted and answering", sample{Wall: time.Since(start)})
	return total, nil
}

// pgTargets are issue 12's ratio targets: rewind / pgBackRest.
var pgTargets = []struct {
	what string
	max  float64
	of   func(r *pgToolRun) float64
	raw  func(r *pgToolRun) string
}{
	{"full base backup time", 0.6, func(r *pgToolRun) float64 { return r.Full.Wall.Seconds() }, func(r *pgToolRun) string { return fmtSample(r.Full) }},
	{"repository size after the full backup", 1.0, func(r *pgToolRun) float64 { return float64(r.SizeFull) }, func(r *pgToolRun) string { return fmtBytes(float64(r.SizeFull)) }},
	{"incremental after 1% of pgbench's updates: time", 0.3, func(r *pgToolRun) float64 { return r.Incr.Wall.Seconds() }, func(r *pgToolRun) string { return fmtSample(r.Incr) }},
	{"incremental: bytes added", 0.5, func(r *pgToolRun) float64 { return float64(r.added()) }, func(r *pgToolRun) string { return fmtBytes(float64(r.added())) }},
	{"restore to a time T, until the cluster accepts connections", 0.7, func(r *pgToolRun) float64 { return r.Restore.Wall.Seconds() }, func(r *pgToolRun) string { return fmtSample(r.Restore) }},
}

func fmtBytesOr(n int64) string {
	if n < 0 {
		return "–"
	}
	return fmtBytes(float64(n))
}

func fmtSample(s sample) string {
	return fmtSecs(s.Wall.Seconds()) + " (" + fmtSecs(s.CPU.Seconds()) + ")"
}

// markdown renders the section.
func (rep *pgReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n", pgTitle)
	fmt.Fprintf(&b, "From the run of %s (took %s; load average %s at the start, %s at the end, on a machine shared with other work). "+
		"One round: each figure is one measurement, so read ratios near a target as noisy.\n\n",
		rep.Started.UTC().Format("2006-01-02 15:04 MST"), rep.Finished.Sub(rep.Started).Round(time.Second), rep.LoadStart, rep.LoadEnd)
	fmt.Fprintf(&b, "- Machine: %s.\n", rep.Machine)
	fmt.Fprintf(&b, "- Versions: %s; pgBackRest %s; rewind %s.\n", rep.Versions["postgres"], strings.TrimPrefix(rep.Versions[pgBackRest], "pgBackRest "), strings.TrimPrefix(rep.Versions[pgRewind], "rewind "))
	fmt.Fprintf(&b, "- Database: `pgbench -i -s %d` (%s in `base/`, initialised in %s), made once per run into a stopped data directory. "+
		"Each tool's turn starts from a copy of it (`cp -a` of the stopped cluster: same system identifier, files and WAL position), "+
		"the server's defaults except a private socket and port and `archive_mode = on`. Order: %s.\n",
		rep.Scale, fmtBytes(float64(rep.DBBytes)), rep.InitTook.Round(time.Second), strings.Join(rep.Order, ", then "))
	fmt.Fprintf(&b, "- pgBackRest: stanza in a configuration file made by the harness, `compress-type=zst` (level 3, its default), `process-max=2`, "+
		"`start-fast=y`, repository on the same disk, `archive_command = 'pgbackrest --stanza=%s archive-push %%p'` (synchronous push), "+
		"other options at their defaults (archive-check on: a backup waits until its WAL is archived; no bundling, no block incremental in 2.45).\n", pgStanza)
	b.WriteString("- rewind: `rewind pg backup --fast` (repository defaults), `archive_command = 'rewind pg wal-push %p'`; " +
		"the snapshot carries the WAL from its start to its stop, so it does not wait for the archive. " +
		"The incremental is the next `pg backup`: unchanged files are reused from the parent and relation files are cut in small chunks.\n")
	b.WriteString("- Both tools run as the cluster's OS user (postgres), each child measured by the kernel (wall, user+sys CPU in brackets). " +
		"Before each timed step the page cache holds its inputs (data directory and repository), as in the file sets.\n")
	fmt.Fprintf(&b, "- Backup times include the fast checkpoint of `pg_backup_start` for both. Repository size is `du` of the repository, "+
		"the WAL archive included, measured after the archive has caught up (`pg_switch_wal()`, then no `.ready` segment left). "+
		"\"Bytes added\" is the size after the incremental minus the size before it, both with the archive caught up, so the WAL of pgbench itself is not counted.\n")
	fmt.Fprintf(&b, "- 1%% of pgbench's updates: `pgbench -t` with %d clients, %s TPC-B transactions in all (each updates one of the %s `pgbench_accounts` rows, one teller, one branch, and inserts a history row).\n",
		pgTxnClients, fmtCount(rep.Transactions), fmtCount(rep.Scale*100_000))
	fmt.Fprintf(&b, "- Restore to T: after the incremental, %s more transactions, then T (`clock_timestamp()`), then 100 more; archive caught up and the server stopped. "+
		"rewind: `rewind pg restore --at T --start --no-archive` (it starts the server and waits for recovery's end). pgBackRest: `pgbackrest restore --type=time --target=T "+
		"--target-action=promote --archive-mode=off`, then `pg_ctl start -w`. The time runs until `select pg_is_in_recovery()` answers false (promoted: hot standby answers read-only queries earlier). "+
		"Untimed afterwards: the restored `pgbench_history` must have exactly its row count at T.\n",
		fmtCount(max(100, rep.Transactions/10)))
	b.WriteString("- Below the ratios: what each base backup stored itself (rewind's `data_added_packed`, the growth of pgBackRest's `backup/`), " +
		"how far pgbench's updates spread (the 8 KiB pages of `pgbench_accounts` the updated rows were on, and the aligned 64 KiB groups of pages, " +
		"the small-chunk profile's average chunk, that hold one), and the recovery's phases from the restored server's log.\n")

	b.WriteString("\n### PostgreSQL: targets (issue 12)\n\n| measure | target | rewind | pgBackRest | rewind / pgBackRest | met |\n|---|---|---:|---:|---:|---|\n")
	rw, br := rep.Tools[pgRewind], rep.Tools[pgBackRest]
	for _, t := range pgTargets {
		a, c, x, met := "–", "–", "–", "not measured"
		if rw != nil {
			a = t.raw(rw)
		}
		if br != nil {
			c = t.raw(br)
		}
		if rw != nil && br != nil && t.of(br) > 0 {
			ratio := t.of(rw) / t.of(br)
			x = fmtRatio(ratio)
			met = map[bool]string{true: "yes", false: "**no**"}[ratio <= t.max]
		}
		fmt.Fprintf(&b, "| %s | ≤ %.1f× | %s | %s | %s | %s |\n", t.what, t.max, a, c, x, met)
	}
	for _, e := range rep.Receive {
		fmt.Fprintf(&b, "| %s | %s | %s | – | – | %s |\n", e.What, e.Target, e.Measured, e.Met)
	}

	b.WriteString("\n### PostgreSQL: raw figures\n\n| figure | rewind | pgBackRest |\n|---|---:|---:|\n")
	row := func(name string, f func(r *pgToolRun) string) {
		cells := [2]string{"–", "–"}
		for i, tool := range []string{pgRewind, pgBackRest} {
			if r := rep.Tools[tool]; r != nil {
				cells[i] = f(r)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, cells[0], cells[1])
	}
	row("full: wall (CPU)", func(r *pgToolRun) string { return fmtSample(r.Full) })
	row("full: peak RSS", func(r *pgToolRun) string { return fmt.Sprintf("%.0f MiB", float64(r.Full.RSS)/(1<<20)) })
	row("repository after the full", func(r *pgToolRun) string { return fmtBytes(float64(r.SizeFull)) })
	row("pgbench 1%: rate", func(r *pgToolRun) string { return fmt.Sprintf("%.0f TPS", r.TPS) })
	row("repository before the incremental (pgbench's WAL archived)", func(r *pgToolRun) string { return fmtBytes(float64(r.SizeBefore)) })
	row("incremental: wall (CPU)", func(r *pgToolRun) string { return fmtSample(r.Incr) })
	row("incremental: peak RSS", func(r *pgToolRun) string { return fmt.Sprintf("%.0f MiB", float64(r.Incr.RSS)/(1<<20)) })
	row("repository after the incremental", func(r *pgToolRun) string { return fmtBytes(float64(r.SizeIncr)) })
	row("incremental: bytes added", func(r *pgToolRun) string { return fmtBytes(float64(r.added())) })
	row("restore to T: wall (CPU of the tool)", func(r *pgToolRun) string { return fmtSample(r.Restore) })
	row("restore to T: phases", func(r *pgToolRun) string {
		var ks []string
		for k := range r.RestorePhases {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		var parts []string
		for _, k := range ks {
			parts = append(parts, fmt.Sprintf("%s %s", k, fmtSecs(r.RestorePhases[k].Seconds())))
		}
		return strings.Join(parts, "; ")
	})
	row("full: stored by the base backup itself (WAL archive apart)", func(r *pgToolRun) string { return fmtBytesOr(r.FullBase) })
	row("incremental: stored by the base backup itself", func(r *pgToolRun) string { return fmtBytesOr(r.IncrBase) })
	row("incremental: bytes read", func(r *pgToolRun) string { return fmtBytesOr(r.IncrRead) })
	row("pgbench_accounts: rows updated; their 8 KiB pages; 64 KiB groups of pages", func(r *pgToolRun) string {
		t := r.Touched
		if t.Of == 0 {
			return "–"
		}
		return fmt.Sprintf("%s; %s of %s (%.0f%%); %s of %s (%.0f%%)", fmtCount(int(t.Rows)), fmtCount(int(t.Pages)), fmtCount(int(t.Of)),
			100*float64(t.Pages)/float64(t.Of), fmtCount(int(t.Groups)), fmtCount(int(t.GroupOf)), 100*float64(t.Groups)/float64(max(1, t.GroupOf)))
	})
	row("restore: files restored (rewind's own count)", func(r *pgToolRun) string {
		if r.Recovery.FilesTook == 0 {
			return "–"
		}
		return fmtSecs(r.Recovery.FilesTook.Seconds())
	})
	row("recovery: server start to recovery start", func(r *pgToolRun) string { return fmtSecs(r.Recovery.ToRedo.Seconds()) })
	row("recovery: redo (WAL segments fetched)", func(r *pgToolRun) string {
		return fmt.Sprintf("%s (%d)", fmtSecs(r.Recovery.Redo.Seconds()), r.Recovery.Segments)
	})
	row("recovery: end-of-recovery checkpoint", func(r *pgToolRun) string { return fmtSecs(r.Recovery.Checkpoint.Seconds()) })
	row("restore to T: peak RSS", func(r *pgToolRun) string { return fmt.Sprintf("%.0f MiB", float64(r.Restore.RSS)/(1<<20)) })
	row("pgbench_history rows at T (checked in the restore)", func(r *pgToolRun) string { return fmtCount(int(r.RowsAtT)) })
	rep.receiveMarkdown(&b)
	if len(rep.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// pg runs the section after the file sets when asked for and rewind is
// there; without it, the last run's section of -out is kept.
func (h *harness) pg(ctx context.Context) error {
	bin := rewindBin(h.tools)
	if h.cfg.pg.mode == pgOff || bin == "" {
		return nil
	}
	rep, err := runPG(ctx, h, bin)
	if err != nil {
		if !h.cfg.optional || ctx.Err() != nil {
			return err
		}
		h.res.note("PostgreSQL section: " + firstLineOf(err.Error()))
		return nil
	}
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		os.WriteFile(filepath.Join(h.runs, "logs", "pg.json"), b, 0o644)
	}
	h.res.PG = rep
	return nil
}

// pgOnlyRun runs the section alone (-pg only): it is printed, and replaced
// in -out, leaving the rest of the report as it was.
func pgOnlyRun(ctx context.Context, log *slog.Logger, cfg config, root, tmp, dataDir, shm string) error {
	tools, err := prepareTools(ctx, log, cfg, root, tmp)
	if err != nil {
		return err
	}
	if rewindBin(tools) == "" {
		return errors.New("-pg only needs rewind")
	}
	h := &harness{cfg: cfg, log: log, tools: tools, runs: filepath.Join(dataDir, "runs"), shm: shm, res: newResults(), started: time.Now()}
	h.res.machine = machineInfo(dataDir)
	if err := os.MkdirAll(filepath.Join(h.runs, "logs"), 0o755); err != nil {
		return err
	}
	if err := h.pg(ctx); err != nil {
		return err
	}
	if h.res.PG == nil {
		return errors.New("the PostgreSQL section did not run: " + strings.Join(h.res.Notes, "; "))
	}
	if err := writeTitled(cfg.out, pgTitle, h.res.PG.markdown()); err != nil {
		return err
	}
	log.Info("replaced the PostgreSQL section", "file", cfg.out)
	return nil
}

// renderPG rewrites the section of out (default BENCHMARKS.md) from a saved
// pg.json, for a change of the report's text without measuring again.
func renderPG(ctx context.Context, from, out string) error {
	return renderSaved(ctx, from, out, pgTitle, &pgReport{})
}

// stored returns what a base backup stored itself, and what it read:
// rewind's JSON summary (data_added_packed, bytes_read), or for pgBackRest
// the growth of backup/ given as grown (read unknown: -1).
func (p *pgRun) stored(tool, kind string, grown int64) (int64, int64) {
	if tool != pgRewind {
		return grown, -1
	}
	step := pgStepFull
	if kind == "incr" {
		step = pgStepIncr
	}
	b, err := os.ReadFile(filepath.Join(p.h.runs, "logs", "pg-"+tool+"-"+strings.ReplaceAll(step, " ", "-")+".log"))
	if err != nil {
		return -1, -1
	}
	added, read := int64(-1), int64(-1)
	for _, line := range strings.Split(string(b), "\n") {
		var m map[string]any
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if sum, ok := m["summary"].(map[string]any); ok {
			m = sum
		}
		if x, ok := m["data_added_packed"].(float64); ok {
			added = int64(x)
		}
		if x, ok := m["bytes_read"].(float64); ok {
			read = int64(x)
		}
	}
	return added, read
}

// touched counts how far the updates spread over pgbench_accounts. Rows
// are loaded in aid order, so a row's page before the update is
// (aid-1) / rows per page; abalance <> 0 marks an updated row (a
// transaction's delta is 0 once in 10,001: negligible).
func (p *pgRun) touched(ctx context.Context, t *pgTouched) error {
	if err := p.query(ctx, "select relpages::bigint from pg_class where relname = 'pgbench_accounts'", &t.Of); err != nil {
		return err
	}
	rows := int64(p.cfg.scale) * 100_000
	if t.Of == 0 {
		return nil
	}
	per := (rows + t.Of - 1) / t.Of
	t.GroupOf = (t.Of + 7) / 8
	return p.query(ctx, fmt.Sprintf(`select count(*), count(distinct (aid-1)/%d), count(distinct (aid-1)/%d)
		from pgbench_accounts where abalance <> 0`, per, per*8), &t.Rows, &t.Pages, &t.Groups)
}

// readRecovery reads the phases of a recovery from the server's log and,
// for rewind, the time its restore of the files took from its output.
func readRecovery(serverLog, toolLog string) pgRecovery {
	var rc pgRecovery
	b, _ := os.ReadFile(serverLog)
	var first, redoStart time.Time
	stamp := func(line string) time.Time {
		f := strings.Fields(line)
		if len(f) < 2 {
			return time.Time{}
		}
		t, _ := time.Parse("2006-01-02 15:04:05.000", f[0]+" "+f[1])
		return t
	}
	endCheckpoint := false
	for _, line := range strings.Split(string(b), "\n") {
		if t := stamp(line); first.IsZero() && !t.IsZero() {
			first = t
		}
		switch {
		case strings.Contains(line, "starting point-in-time recovery"):
			redoStart = stamp(line)
		case strings.Contains(line, "restored log file"):
			rc.Segments++
		case strings.Contains(line, "redo done at"):
			if _, after, ok := strings.Cut(line, "elapsed: "); ok {
				if x, err := strconv.ParseFloat(strings.Fields(after)[0], 64); err == nil {
					rc.Redo = time.Duration(x * float64(time.Second))
				}
			}
		case strings.Contains(line, "checkpoint starting: end-of-recovery"):
			endCheckpoint = true
		case endCheckpoint && strings.Contains(line, "checkpoint complete"):
			endCheckpoint = false
			if _, after, ok := strings.Cut(line, "total="); ok {
				if x, err := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(after)[0], ","), 64); err == nil {
					rc.Checkpoint = time.Duration(x * float64(time.Second))
				}
			}
		}
	}
	if !first.IsZero() && !redoStart.IsZero() {
		rc.ToRedo = redoStart.Sub(first)
	}
	out, _ := os.ReadFile(toolLog)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "restored ") {
			if i := strings.LastIndex(line, " in "); i >= 0 {
				if d, err := time.ParseDuration(strings.Fields(line[i+4:])[0]); err == nil {
					rc.FilesTook = d
				}
			}
		}
	}
	return rc
}

// warm reads every file below dirs into the page cache (-cache warm), as
// the file sets do before a step. A running server removes and recycles
// WAL segments meanwhile: a file gone is skipped, not an error.
func (p *pgRun) warm(ctx context.Context, dirs ...string) {
	if p.h.cfg.cache != cacheWarm {
		return
	}
	buf := make([]byte, 1<<20)
	for _, d := range dirs {
		filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err != nil || ctx.Err() != nil || !e.Type().IsRegular() {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return nil
			}
			defer f.Close()
			for {
				if _, err := f.Read(buf); err != nil {
					return nil
				}
			}
		})
	}
}
