// Command bench compares rewind with restic and borg on the standard
// datasets of issue 3 and rewrites BENCHMARKS.md with the ratios.
//
//	make bench                               # 3 rounds, all sets, all tools
//	make bench BENCHFLAGS='-sets tree -n 1'  # a quicker look
//	make bench-smoke                         # tiny data, one round, stdout only
//
// Every step runs as a child process and is measured from the kernel's
// accounting of that child (wait4 rusage): wall time, user+sys CPU and peak
// RSS. The machine is shared and noisy, so what matters are ratios between
// tools measured in the same round, and the harness reports the median of
// those ratios over -n rounds, with the tool order reversed every other round.
//
// Each tool run starts from the same state: the datasets are generated once
// into DATA/pristine by shared/bench/mkdata.go and resynchronised into
// DATA/work before every tool's turn (only what the previous mutation
// changed is copied back), so all tools back up the same absolute paths.
//
// The machine-limit rows (parallel read, metadata walk, parallel copy) are
// run by this same binary re-executed with -limit, so that they are measured
// exactly like the tools.
//
// Set RWBENCH_REWIND_OPTIONAL=1 while rewind is still being written: a
// rewind that does not build or fails a step is then reported as missing
// instead of failing the run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config holds the parsed command line.
type config struct {
	rounds   int
	dataDir  string
	sets     []string
	tools    []string
	smoke    bool
	out      string
	keep     bool
	prepare  bool   // only generate the datasets
	cache    string // page cache before each step: warm, cold or as-is
	verify   bool
	timeout  time.Duration
	mkdata   string
	rewind   string // a rewind binary to use instead of building ./cmd/rewind
	optional bool   // rewind may be missing or broken (RWBENCH_REWIND_OPTIONAL)
	cp       cpConfig
	inst     roundsSection
	pg       pgConfig
	sq       sqliteConfig
	qemu     string
	my       myConfig
	mount    string // the mount section: off or only
	images   string // the images section: off or only
	drill    roundsSection
}

// optionalEnv names the variable that lets a broken rewind through.
const optionalEnv = "RWBENCH_REWIND_OPTIONAL"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := mainErr(ctx, log, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg config
	var sets, tools string
	var limit, src, dst string
	var cpRates string
	var pgRender string
	var myRender string
	var drillRender string
	fs.IntVar(&cfg.rounds, "n", 3, "rounds of the whole comparison; medians are reported")
	fs.StringVar(&cfg.dataDir, "data", "/var/tmp/rwbench-data", "folder for the datasets, work copies, repositories and logs")
	fs.StringVar(&sets, "sets", "tree,image,small", "comma-separated datasets: tree, image, small")
	fs.StringVar(&tools, "tools", "rewind,restic,borg", "comma-separated tools: rewind, restic, borg")
	fs.BoolVar(&cfg.smoke, "smoke", false, "tiny generated dataset, one round, results on stdout only")
	fs.StringVar(&cfg.out, "out", "", "Markdown file to rewrite (default BENCHMARKS.md at the repository root; - for none)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the repositories (one per round, set and tool) instead of removing them")
	fs.StringVar(&cfg.cache, "cache", cacheWarm, "page cache before each step: warm (its inputs just read), cold (dropped; root) or as-is")
	fs.BoolVar(&cfg.prepare, "prepare", false, "only generate (or check) the datasets, then exit")
	fs.BoolVar(&cfg.verify, "verify", true, "compare every restore with the source, untimed")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Minute, "limit for one timed step")
	fs.StringVar(&cfg.mkdata, "mkdata", "", "path of mkdata.go (default ../shared/bench/mkdata.go from the repository root)")
	fs.StringVar(&cfg.rewind, "rewind", "", "use this rewind binary instead of building ./cmd/rewind (e.g. a PGO build)")
	fs.StringVar(&cfg.cp.mode, "continuous", cpOn, "continuous-protection scenario: on (after the comparison), off, or only (alone; replaces its section of -out)")
	fs.IntVar(&cfg.cp.files, "cp-files", 100_000, "continuous: files in the watched tree")
	fs.StringVar(&cpRates, "cp-rates", "10,100,1000", "continuous: comma-separated writer rates, operations per second")
	fs.DurationVar(&cfg.cp.duration, "cp-duration", time.Minute, "continuous: how long the writer runs at each rate")
	fs.StringVar(&cfg.pg.mode, "pg", pgOn, "PostgreSQL section against pgBackRest: on (after the file sets), off (the report keeps the last one), or only (alone; replaces its section of -out)")
	fs.IntVar(&cfg.pg.scale, "pg-scale", 100, "PostgreSQL: pgbench scale of the database (100: about 1.5 GB; -smoke: 1)")
	fs.StringVar(&cfg.pg.binDir, "pg-bindir", "/usr/lib/postgresql/15/bin", "PostgreSQL: folder of initdb, pg_ctl, pgbench and postgres")
	fs.StringVar(&pgRender, "pg-render", "", "PostgreSQL: render the section from a saved `pg.json` (runs/logs/pg.json) into -out instead of measuring")
	fs.StringVar(&cfg.qemu, "qemu", qemuOff, "QEMU dirty-bitmap section (backup --qemu-qmp of a running QEMU's 2 GiB drive after 1% changed, against restic): off, or only (alone; replaces its section of -out; needs -prepare's image set)")
	fs.StringVar(&cfg.sq.mode, "sqlite", sqliteOff, "SQLite section (rewind watch over a live database): off, or only (alone; replaces its section of -out)")
	fs.IntVar(&cfg.sq.mb, "sqlite-mb", 200, "SQLite: size of the database in MB (-smoke: 4)")
	fs.IntVar(&cfg.sq.rate, "sqlite-rate", 100, "SQLite: the writer's transactions per second")
	fs.DurationVar(&cfg.sq.duration, "sqlite-duration", time.Minute, "SQLite: how long the writer runs (-smoke: 8s)")
	fs.DurationVar(&cfg.sq.interval, "sqlite-interval", time.Second, "SQLite: rewind watch --interval")
	fs.StringVar(&cfg.inst.mode, "instant", modeOff, "instant-recovery section (rewind instant against a full restore of the tests' 1 GiB guest): off, or only (alone; replaces its section of -out)")
	fs.IntVar(&cfg.inst.rounds, "instant-rounds", 3, "instant: boots and restores per disk (the median is reported)")
	fs.StringVar(&cfg.my.mode, "mysql", myOn, "MariaDB section against mariabackup + restic: on (after the PostgreSQL one), off (the report keeps the last one), or only (alone; replaces its section of -out)")
	fs.IntVar(&cfg.my.sizeMB, "mysql-size", 1024, "MariaDB: size of the sysbench-style database in MB (-smoke: 8)")
	fs.IntVar(&cfg.my.tables, "mysql-tables", 4, "MariaDB: sbtest tables")
	fs.DurationVar(&cfg.my.writes, "mysql-writes", 3*time.Minute, "MariaDB: how long the write load runs before the restores (issue 13 says 30m; -smoke: 10s)")
	fs.IntVar(&cfg.my.rate, "mysql-rate", 200, "MariaDB: write transactions per second, all clients together (-smoke: 50)")
	fs.IntVar(&cfg.my.clients, "mysql-clients", 4, "MariaDB: clients of the write load")
	fs.StringVar(&myRender, "mysql-render", "", "MariaDB: render the section from a saved `mysql.json` (runs/logs/mysql.json) into -out instead of measuring")
	fs.StringVar(&cfg.mount, "mount", modeOff, "mount section (reads and find through rewind mount, root and FUSE): off, or only (alone; replaces its section of -out)")
	fs.StringVar(&cfg.images, "images", modeOff, "images section (device and image backups against restic, root): off, or only (alone; replaces its section of -out)")
	fs.StringVar(&cfg.drill.mode, "drill", modeOff, "bare-metal recovery section (drill, recover and a plain restore of the tests' server; root, QEMU): off, or only (alone; replaces its section of -out)")
	fs.IntVar(&cfg.drill.rounds, "drill-rounds", 3, "drill: drills and recovers per boot mode (medians are reported)")
	fs.StringVar(&drillRender, "drill-render", "", "drill: render the section from a saved `drill.json` (runs/drill.json) into -out instead of measuring")
	fs.StringVar(&limit, "limit", "", "internal: run one machine-limit operation (read, walk, copy) and exit")
	fs.StringVar(&src, "src", "", "internal: source folder for -limit")
	fs.StringVar(&dst, "dst", "", "internal: target folder for -limit copy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if limit != "" {
		return runLimit(ctx, limit, src, dst)
	}
	if pgRender != "" {
		return renderPG(ctx, pgRender, cfg.out)
	}
	if myRender != "" {
		return renderMySQL(ctx, myRender, cfg.out)
	}
	if drillRender != "" {
		return renderSaved(ctx, drillRender, cfg.out, drillTitle, &drillReport{})
	}
	cfg.sets = splitList(sets)
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	// -sets without pg (and without -pg) is a look at the file sets only.
	if explicit["sets"] && !explicit["pg"] && !slices.Contains(cfg.sets, "pg") {
		cfg.pg.mode = pgOff
	}
	// -sets without mysql (and without -mysql) leaves it out too.
	if explicit["sets"] && !explicit["mysql"] && !slices.Contains(cfg.sets, "mysql") {
		cfg.my.mode = myOff
	}
	// "mysql" among the sets selects the MariaDB section; alone, only it.
	if slices.Contains(cfg.sets, "mysql") {
		cfg.sets = slices.DeleteFunc(cfg.sets, func(s string) bool { return s == "mysql" })
		if len(cfg.sets) == 0 && !slices.Contains(splitList(sets), "pg") {
			cfg.my.mode = myOnly
		} else if cfg.my.mode == myOff {
			cfg.my.mode = myOn
		}
	}
	// "pg" among the sets selects the PostgreSQL section; alone, only it.
	if slices.Contains(cfg.sets, "pg") {
		cfg.sets = slices.DeleteFunc(cfg.sets, func(s string) bool { return s == "pg" })
		if len(cfg.sets) == 0 {
			cfg.pg.mode = pgOnly
		} else if cfg.pg.mode == pgOff {
			cfg.pg.mode = pgOn
		}
	}
	cfg.tools = splitList(tools)
	cfg.optional = os.Getenv(optionalEnv) == "1"
	for _, r := range splitList(cpRates) {
		n, err := strconv.Atoi(r)
		if err != nil || n <= 0 {
			return fmt.Errorf("-cp-rates: %q is not a positive rate", r)
		}
		cfg.cp.rates = append(cfg.cp.rates, n)
	}
	cfg.cp.idle, cfg.cp.interval, cfg.cp.settle = 10*time.Second, 2*time.Second, time.Second
	if cfg.smoke {
		cfg.rounds = 1
		cfg.sets = []string{"smoke"}
		cfg.out = "-"
		cfg.cp.files, cfg.cp.rates, cfg.cp.duration, cfg.cp.idle = 2000, []int{10, 100}, 3*time.Second, time.Second
		// The smoke keeps to the file sets unless -pg is given: then the
		// PostgreSQL section runs on a pgbench database of scale 1.
		if !explicit["pg"] && !slices.Contains(splitList(sets), "pg") {
			cfg.pg.mode = pgOff
		}
		if !explicit["pg-scale"] {
			cfg.pg.scale = 1
		}
		if !explicit["sqlite-mb"] {
			cfg.sq.mb = 4
		}
		if !explicit["sqlite-duration"] {
			cfg.sq.duration = 8 * time.Second
		}
		// The same for the MariaDB section: a tiny database, seconds of
		// writes.
		if !explicit["mysql"] && !slices.Contains(splitList(sets), "mysql") {
			cfg.my.mode = myOff
		}
		if !explicit["mysql-size"] {
			cfg.my.sizeMB = 8
		}
		if !explicit["mysql-writes"] {
			cfg.my.writes = 10 * time.Second
		}
		if !explicit["mysql-rate"] {
			cfg.my.rate = 50
		}
	}
	for name, v := range map[string]string{"mount": cfg.mount, "images": cfg.images} {
		if v != modeOff && v != modeOnly {
			return fmt.Errorf("-%s %q: want off or only", name, v)
		}
	}
	if cfg.qemu != qemuOff && cfg.qemu != qemuOnly {
		return fmt.Errorf("-qemu %q: want off or only", cfg.qemu)
	}
	if cfg.sq.mode != sqliteOff && cfg.sq.mode != sqliteOnly {
		return fmt.Errorf("-sqlite %q: want off or only", cfg.sq.mode)
	}
	if err := cfg.inst.validate("instant"); err != nil {
		return err
	}
	if err := cfg.drill.validate("drill"); err != nil {
		return err
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	return run(ctx, log, cfg)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func validate(cfg *config) error {
	if cfg.rounds < 1 {
		return errors.New("-n must be at least 1")
	}
	for _, s := range cfg.sets {
		if _, ok := standardSets[s]; !ok && s != "smoke" && !(s == "mysql" && cfg.my.mode == myOnly) {
			return fmt.Errorf("unknown set %q (want tree, image, small or pg)", s)
		}
	}
	for _, t := range cfg.tools {
		if t != "rewind" && t != "restic" && t != "borg" {
			return fmt.Errorf("unknown tool %q (want rewind, restic or borg)", t)
		}
	}
	if cfg.cp.mode != cpOn && cfg.cp.mode != cpOff && cfg.cp.mode != cpOnly {
		return fmt.Errorf("-continuous %q: want on, off or only", cfg.cp.mode)
	}
	if cfg.cp.mode == cpOnly {
		cfg.tools = []string{"rewind"}
	}
	if cfg.pg.mode != pgOn && cfg.pg.mode != pgOff && cfg.pg.mode != pgOnly {
		return fmt.Errorf("-pg %q: want on, off or only", cfg.pg.mode)
	}
	if cfg.pg.scale < 1 {
		return errors.New("-pg-scale must be at least 1")
	}
	if cfg.my.mode != myOn && cfg.my.mode != myOff && cfg.my.mode != myOnly {
		return fmt.Errorf("-mysql %q: want on, off or only", cfg.my.mode)
	}
	if cfg.my.sizeMB < 1 || cfg.my.tables < 1 || cfg.my.rate < 1 || cfg.my.clients < 1 || cfg.my.writes < time.Second {
		return errors.New("-mysql-size, -mysql-tables, -mysql-rate and -mysql-clients must be at least 1, -mysql-writes at least 1s")
	}
	if cfg.my.mode == myOnly {
		if cfg.cp.mode == cpOnly || cfg.pg.mode == pgOnly {
			return errors.New("-mysql only with -pg only or -continuous only: run them one at a time")
		}
		cfg.pg.mode = pgOff
		cfg.tools = []string{"rewind"}
		cfg.sets = []string{"mysql"}
	}
	if cfg.pg.mode == pgOnly {
		if cfg.cp.mode == cpOnly {
			return errors.New("-pg only and -continuous only: run them one at a time")
		}
		cfg.tools = []string{"rewind"}
		cfg.sets = []string{"pg"}
	}
	if cfg.cache != cacheWarm && cfg.cache != cacheCold && cfg.cache != cacheAsIs {
		return fmt.Errorf("-cache %q: want warm, cold or as-is", cfg.cache)
	}
	if len(cfg.sets) == 0 && cfg.pg.mode == pgOff && cfg.my.mode != myOff {
		cfg.my.mode = myOnly
		cfg.tools, cfg.sets = []string{"rewind"}, []string{"mysql"}
	}
	if len(cfg.sets) == 0 && cfg.pg.mode != pgOff {
		cfg.pg.mode = pgOnly
		cfg.tools, cfg.sets = []string{"rewind"}, []string{"pg"}
	}
	if len(cfg.sets) == 0 || len(cfg.tools) == 0 {
		return errors.New("no sets or no tools selected")
	}
	if !filepath.IsAbs(cfg.dataDir) {
		abs, err := filepath.Abs(cfg.dataDir)
		if err != nil {
			return err
		}
		cfg.dataDir = abs
	}
	return nil
}

// repoRoot returns the folder of go.mod, found with `go env GOMOD`.
func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the rewind module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}

// run does the whole comparison and writes the report.
func run(ctx context.Context, log *slog.Logger, cfg config) error {
	root, err := repoRoot(ctx)
	if err != nil {
		return err
	}
	if cfg.mkdata == "" {
		cfg.mkdata = filepath.Join(filepath.Dir(root), "shared", "bench", "mkdata.go")
	}
	if cfg.out == "" {
		cfg.out = filepath.Join(root, "BENCHMARKS.md")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	tmp, err := os.MkdirTemp("", "rwbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	shm, err := os.MkdirTemp("/dev/shm", "rwbench-")
	if err != nil {
		return fmt.Errorf("tmpfs scratch folder: %w", err)
	}
	defer os.RemoveAll(shm)

	dataDir := cfg.dataDir
	if cfg.smoke {
		// The smoke run never touches the standard data folder.
		if dataDir, err = os.MkdirTemp("", "rwbench-smoke-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(dataDir)
		}
	}

	if cfg.prepare {
		mkdata, err := buildMkdata(ctx, cfg.mkdata, tmp)
		if err != nil {
			return err
		}
		_, err = prepareSets(ctx, log, cfg, dataDir, mkdata)
		return err
	}
	if cfg.drill.mode == modeOnly {
		return drillOnlyRun(ctx, log, cfg, root, tmp, dataDir)
	}
	if cfg.inst.mode == modeOnly {
		return instantOnlyRun(ctx, log, cfg, root, tmp, dataDir)
	}
	if cfg.sq.mode == sqliteOnly {
		return sqliteOnlyRun(ctx, log, cfg, root, tmp, dataDir)
	}
	if cfg.mount == modeOnly {
		return mountOnlyRun(ctx, log, cfg, root, tmp, dataDir)
	}
	if cfg.images == modeOnly {
		return imagesOnlyRun(ctx, log, cfg, root, tmp, dataDir)
	}
	if cfg.qemu == qemuOnly {
		return qemuRun(ctx, log, cfg, root, tmp, dataDir)
	}
	if cfg.cp.mode == cpOnly {
		return continuousOnly(ctx, log, cfg, root, tmp, dataDir)
	}
	if cfg.pg.mode == pgOnly {
		return pgOnlyRun(ctx, log, cfg, root, tmp, dataDir, shm)
	}
	if cfg.my.mode == myOnly {
		return mysqlOnlyRun(ctx, log, cfg, root, tmp, dataDir, shm)
	}
	if err := ensurePeers(ctx, log, cfg.tools); err != nil {
		return err
	}
	if cfg.pg.mode == pgOn {
		// Before the file sets: a missing PostgreSQL should not end an
		// hour-long run at its last section.
		if _, err := checkPgTools(cfg.pg.binDir); err != nil {
			return err
		}
	}
	if cfg.my.mode == myOn {
		if err := checkMyTools(); err != nil {
			return err
		}
	}
	tools, err := prepareTools(ctx, log, cfg, root, tmp)
	if err != nil {
		return err
	}
	mkdata, err := buildMkdata(ctx, cfg.mkdata, tmp) // the smoke set needs it to mutate
	if err != nil {
		return err
	}

	h := &harness{
		cfg:     cfg,
		log:     log,
		self:    self,
		mkdata:  mkdata,
		tools:   tools,
		runs:    filepath.Join(dataDir, "runs"),
		shm:     shm,
		res:     newResults(),
		started: time.Now(),

		templates: map[string]string{},
	}
	h.res.machine = machineInfo(dataDir)
	if len(tools) < len(cfg.tools) {
		h.res.note(fmt.Sprintf("rewind was left out (%s=1): it did not build", optionalEnv))
	}
	// Logs of an earlier run would mix with this one's.
	if err := os.RemoveAll(filepath.Join(h.runs, "logs")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(h.runs, "logs"), 0o755); err != nil {
		return err
	}
	sets, err := prepareSets(ctx, log, cfg, dataDir, mkdata)
	if err != nil {
		return err
	}
	err = h.runAll(ctx, sets)
	if err == nil {
		err = h.continuous(ctx)
	}
	if err == nil {
		err = h.pg(ctx)
	}
	if err == nil {
		err = h.mysql(ctx)
	}
	if !cfg.keep {
		for _, p := range h.templates {
			os.RemoveAll(p)
		}
	}
	if err != nil {
		return err
	}
	h.res.finished = time.Now()
	h.res.machine.loadEnd = loadAvg()
	if err := h.res.saveJSON(filepath.Join(h.runs, "logs", "results.json")); err != nil {
		log.Warn("could not save raw results", "err", err)
	}

	report := h.res.markdown(cfg, tools)
	fmt.Print(report.tables)
	if cfg.out != "-" {
		doc := report.document
		if h.res.PG == nil {
			// Not run this time: keep the last run's section, which says
			// when it was measured.
			if old, err := os.ReadFile(cfg.out); err == nil {
				if sec := titledSection(string(old), pgTitle); sec != "" {
					doc = spliceTitled(doc, pgTitle, sec)
				}
			}
		}
		if h.res.MySQL == nil {
			if old, err := os.ReadFile(cfg.out); err == nil {
				if sec := titledSection(string(old), myTitle); sec != "" {
					doc = spliceTitled(doc, myTitle, sec)
				}
			}
		}
		if err := os.WriteFile(cfg.out, []byte(doc), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cfg.out, err)
		}
		log.Info("rewrote report", "file", cfg.out)
	}
	if cfg.smoke && !cfg.keep {
		log.Info("done", "took", time.Since(h.started).Round(time.Second))
	} else {
		log.Info("done", "took", time.Since(h.started).Round(time.Second), "logs", filepath.Join(h.runs, "logs"))
	}
	return nil
}
