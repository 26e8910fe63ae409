package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/schedule"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// planPath is --config, else REWIND_CONFIG, else plan.DefaultPath.
func planPath(flag string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv("REWIND_CONFIG"); v != "" {
		return v
	}
	return plan.DefaultPath
}

func addConfigFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "config", "", "the plan `file` (env REWIND_CONFIG; default "+plan.DefaultPath+")")
}

// loadAgentPlan reads a plan for the agent: decoding problems that are
// errors refuse it, warnings do not.
func loadAgentPlan(path string) (*plan.Plan, error) {
	p, _, err := readAgentPlan(path)
	return p, err
}

// readAgentPlan is loadAgentPlan that also returns the plan's bytes.
func readAgentPlan(path string) (*plan.Plan, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	p, err := plan.Parse(path, data)
	var probs plan.Problems
	if errors.As(err, &probs) {
		err = probs.Err()
	}
	if err == nil {
		// The static rules; what needs the machine (paths, units,
		// repositories) is for plan validate and for the runs themselves.
		err = p.Check(context.Background(), nil).Err()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("plan %s:\n%w", path, err)
	}
	return p, data, nil
}

func parseSchedule(expr string) (agent.Schedule, error) { return schedule.Parse(expr) }

// rewindBin is the rewind binary the agent runs as its children.
func selfBin() (string, error) {
	if b := os.Getenv("REWIND_BIN"); b != "" {
		return b, nil
	}
	b, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the rewind binary: %w", err)
	}
	return b, nil
}

type agentOpts struct {
	config, metricsListen, textfile, stateDir string
	grace                                     time.Duration
}

func newAgentCmd(g *globals) *cobra.Command {
	o := &agentOpts{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the plan's jobs on their schedules (the rewind daemon)",
		Long: `Run the agent in the foreground: it runs each job of the plan on its
schedule, keeps continuous jobs' watchers running, records every run in the
job's repository (see rewind events) and in the journal, and raises an
alert when a job's newest restorable point is older than its RPO.

systemd runs it (rewind agent install writes the unit). A run missed while
the agent was down is caught up once when it starts. A failed run is
retried with backoff (the job's retry: settings; default 3 attempts, 1m
doubling). Each job runs on its own: a slow or failing job delays no other.

Signals: SIGHUP reloads the plan after checking it (an invalid plan is
refused and the running one kept); SIGTERM or SIGINT stop scheduling, let
running jobs finish for --grace, then stop them, and exit 0.

The agent keeps its state (last runs, next runs, locks) in the plan's
agent.state_dir (default /var/lib/rewind/agent for root, else
$XDG_STATE_HOME/rewind/agent); rewind status reads it.`,
		Example: `  rewind agent --config /etc/rewind/rewind.yaml
  rewind agent --metrics-listen 127.0.0.1:9898
  rewind agent --state-dir /var/lib/rewind/agent-test --grace 5m
  rewind agent install`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), g, o)
		},
	}
	addConfigFlag(cmd, &o.config)
	f := cmd.Flags()
	f.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics on `address` (overrides the plan's metrics.listen)")
	f.StringVar(&o.textfile, "textfile", "", "write metrics for node_exporter's textfile collector to `file` (overrides metrics.textfile)")
	f.StringVar(&o.stateDir, "state-dir", "", "keep the agent's state in `dir` (overrides agent.state_dir)")
	f.DurationVar(&o.grace, "grace", agent.DefaultGrace, "at shutdown, let running jobs finish for up to `duration`")
	cmd.AddCommand(newAgentInstallCmd(g), newAgentRunJobCmd(g))
	return cmd
}

func runAgent(ctx context.Context, g *globals, o *agentOpts) error {
	log := daemonLogger(g)
	g.log = log
	path := planPath(o.config)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	bin, err := selfBin()
	if err != nil {
		return err
	}
	p, err := loadAgentPlan(path)
	if err != nil {
		return err
	}
	stateDir := o.stateDir
	if stateDir == "" {
		stateDir = agent.StateDirOf(p)
	}
	metrics, err := newAgentMetrics(ctx, g, p, o)
	if err != nil {
		return err
	}
	notifier, err := newAgentNotifier(g, p)
	if err != nil {
		return err
	}
	// The children and the repositories work from the running plan, the
	// copy the agent keeps of the plan it last accepted.
	running := agent.Store{Dir: stateDir}.RunningPlan()
	a, err := agent.New(agent.Config{
		PlanPath: path,
		Load:     readAgentPlan,
		Parse:    parseSchedule,
		Launcher: agent.ProcessLauncher{Bin: bin, Config: running, StateDir: stateDir, Log: os.Stderr},
		Watcher:  agent.ExecWatcher{Bin: bin, Args: func(j *plan.Job) ([]string, error) { return watchArgs(running, j) }, Log: os.Stderr},
		Events:   &planEvents{g: g, path: running},
		Notifier: notifier,
		Metrics:  metrics,
		Log:      log,
		Grace:    o.grace,
		StateDir: stateDir,
		Reloaded: func(p *plan.Plan) error { return notifier.replace(g, p) },
	})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return a.Run(ctx, reload)
}

// watchArgs are the arguments of `rewind watch` for a continuous job, as
// the plan (read again, for the current repositories) says.
func watchArgs(path string, j *plan.Job) ([]string, error) {
	p, err := loadAgentPlan(path)
	if err != nil {
		return nil, err
	}
	repo := p.Repositories[j.Repository]
	if repo == nil {
		return nil, fmt.Errorf("job %s: no repository %q", j.Name, j.Repository)
	}
	args := append([]string{"-r", repo.Location}, repoPasswordArgs(repo)...)
	args = append(args, "--tag", "job:"+j.Name, "--host", p.Host)
	for _, e := range j.Exclude {
		args = append(args, "--exclude", e)
	}
	if j.OneFileSystem {
		args = append(args, "--one-file-system")
	}
	return append(append(args, "--"), j.Paths...), nil
}

// repoPasswordArgs are the password flags of a child working on repo.
func repoPasswordArgs(repo *plan.Repository) []string {
	switch {
	case repo.PasswordFile != "":
		return []string{"--password-file", repo.PasswordFile}
	case repo.PasswordCommand != "":
		return []string{"--password-command", repo.PasswordCommand}
	}
	return nil
}

// openPlanRepo opens a repository of the plan with its password settings.
func openPlanRepo(ctx context.Context, g *globals, repo *plan.Repository) (*repository.Repository, error) {
	pg := *g
	pg.repo, pg.passwordFile, pg.passwordCommand = repo.Location, repo.PasswordFile, repo.PasswordCommand
	r, err := pg.openRepo(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("repository %s (%s): %w", repo.Name, repo.Location, err)
	}
	return r, nil
}

// planEvents is the agent's access to the repositories: the event log and
// the newest snapshot of a job. It opens the repository for each call, so
// an idle agent holds none open.
type planEvents struct {
	g    *globals
	path string
}

func (e *planEvents) repo(ctx context.Context, j *plan.Job) (*repository.Repository, *plan.Plan, error) {
	p, err := loadAgentPlan(e.path)
	if err != nil {
		return nil, nil, err
	}
	pr := p.Repositories[j.Repository]
	if pr == nil {
		return nil, nil, fmt.Errorf("job %s: no repository %q in the plan", j.Name, j.Repository)
	}
	r, err := openPlanRepo(ctx, e.g, pr)
	return r, p, err
}

func (e *planEvents) Save(ctx context.Context, j *plan.Job, run *event.Run) error {
	r, p, err := e.repo(ctx, j)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := event.Save(ctx, r, run); err != nil {
		return err
	}
	if _, err := event.Expire(ctx, r, run.Host, run.Job, time.Now()); err != nil {
		e.g.log.Warn("event retention", "job", run.Job, "err", err)
	}
	refreshRunbookAfter(ctx, e.g, r, p, e.path, j, run)
	return nil
}

func (e *planEvents) NewestPoint(ctx context.Context, j *plan.Job) (time.Time, error) {
	r, p, err := e.repo(ctx, j)
	if err != nil {
		return time.Time{}, err
	}
	defer r.Close()
	sns, err := snapshot.List(ctx, r, func(id.ID, error) {})
	if err != nil {
		return time.Time{}, err
	}
	var newest time.Time
	for _, sn := range sns {
		// A snapshot holds what was there when its capture ended.
		if sn.Hostname == p.Host && hasTag(sn.Tags, "job:"+j.Name) && sn.AsOf().After(newest) {
			newest = sn.AsOf()
		}
	}
	return newest, nil
}

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}

// newAgentRunJobCmd is the child the agent runs for each run of a job.
func newAgentRunJobCmd(g *globals) *cobra.Command {
	var config, stateDir, trigger string
	var attempt int
	cmd := &cobra.Command{
		Use:   "run-job JOB",
		Short: "Run one job for the agent (internal)",
		Long: `Hidden: the child the agent starts for each run of a job. It inherits
the job's lock as file descriptor 3 (and passes it on to its own children),
runs the job, and leaves the run in the state folder for the agent.`,
		Example: `  rewind agent run-job --config /var/lib/rewind/agent/plan.yaml --state-dir /var/lib/rewind/agent --trigger schedule nightly`,
		Hidden:  true,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadAgentPlan(planPath(config))
			if err != nil {
				return err
			}
			j := p.Jobs[args[0]]
			if j == nil {
				return fmt.Errorf("the plan has no job %q", args[0])
			}
			bin, err := selfBin()
			if err != nil {
				return err
			}
			var out io.Writer = os.Stdout
			if g.quiet {
				out = io.Discard
			}
			return agent.RunJob(cmd.Context(), newAgentRunner(g, p, bin, stateDir), agent.Store{Dir: stateDir}, p.Host, j, trigger, attempt, out)
		},
	}
	addConfigFlag(cmd, &config)
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "the agent's state `dir`")
	cmd.Flags().StringVar(&trigger, "trigger", "manual", "why the job runs")
	cmd.Flags().IntVar(&attempt, "attempt", 1, "attempt `number`")
	return cmd
}
