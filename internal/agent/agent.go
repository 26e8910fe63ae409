// Package agent is the rewind agent: the daemon that runs a plan's jobs on
// their schedules, keeps continuous jobs' watchers running, records every
// run in the job's repository (the event log) and in the journal, and
// watches each job's RPO. docs/AGENT.md describes it for administrators.
//
// Each job has its own goroutine with one timer; a slow or failing job
// never delays another. What must survive a restart (the last fire time
// handled, the last result, the run under way) is a small file per job in
// the state folder. A job's run holds a file lock that its child process
// inherits, so an agent restarted while an orphaned run still goes on does
// not start the job a second time.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// Defaults of the agent.
const (
	DefaultRPOCheck    = 30 * time.Second
	DefaultGrace       = 60 * time.Second
	DefaultAttempts    = 3
	DefaultBackoff     = time.Minute
	DefaultMaxBackoff  = 30 * time.Minute
	DefaultWatchBackof = 5 * time.Second
)

// Config is what an Agent is built from.
type Config struct {
	// PlanPath is the plan file, read again on Reload.
	PlanPath string
	Load     LoadPlan
	Parse    ParseSchedule
	Launcher Launcher
	Watcher  Watcher
	Events   Events
	Notifier Notifier
	Metrics  Metrics
	Log      *slog.Logger
	// Grace is how long running jobs may take to finish at shutdown.
	Grace time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// StateDir overrides the plan's state folder.
	StateDir string
	// Reloaded, when set, is called with a plan Reload accepted, before
	// the jobs change: the notifications follow the new plan's settings.
	// An error refuses the reload, and the running plan is kept.
	Reloaded func(p *plan.Plan) error
}

// Agent runs one plan.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	store Store

	mu   sync.Mutex
	plan *plan.Plan
	jobs map[string]*jobCtl

	killCtx  context.Context // cancelled when running children must die
	kill     context.CancelFunc
	wg       sync.WaitGroup
	agentLck *os.File
}

// New checks cfg, loads the plan and takes the agent lock of the state
// folder: only one agent runs per state folder.
func New(cfg Config) (*Agent, error) {
	if cfg.Load == nil || cfg.Parse == nil || cfg.Launcher == nil || cfg.Events == nil {
		return nil, errors.New("agent: Load, Parse, Launcher and Events are required")
	}
	if cfg.Notifier == nil {
		cfg.Notifier = nopNotifier{}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, data, err := cfg.Load(cfg.PlanPath)
	if err != nil {
		return nil, err
	}
	if err := checkSchedules(p, cfg.Parse); err != nil {
		return nil, err
	}
	dir := cfg.StateDir
	if dir == "" {
		dir = StateDirOf(p)
	}
	a := &Agent{cfg: cfg, log: cfg.Log, store: Store{Dir: dir}, plan: p, jobs: map[string]*jobCtl{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	a.agentLck, err = TryLock(a.store.agentLock())
	if errors.Is(err, ErrBusy) {
		return nil, fmt.Errorf("another agent is running with the state folder %s", dir)
	}
	if err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(a.store.RunningPlan(), data); err != nil {
		a.agentLck.Close()
		return nil, err
	}
	info, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "config": cfg.PlanPath, "started": cfg.Now().UTC()})
	if err := WriteFileAtomic(a.store.agentLock()+".info", info); err != nil {
		a.agentLck.Close()
		return nil, err
	}
	return a, nil
}

// StateDir is the agent's state folder.
func (a *Agent) StateDir() string { return a.store.Dir }

// checkSchedules parses every schedule of p.
func checkSchedules(p *plan.Plan, parse ParseSchedule) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(p.Jobs)) {
		j := p.Jobs[name]
		if j.Schedule == "" || j.Schedule == plan.ScheduleContinuous {
			continue
		}
		if _, err := parse(j.Schedule); err != nil {
			errs = append(errs, fmt.Errorf("job %s: schedule %q: %w", name, j.Schedule, err))
		}
	}
	return errors.Join(errs...)
}

func (a *Agent) rpoCheck() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.plan.Agent != nil && a.plan.Agent.RPOCheck > 0 {
		return a.plan.Agent.RPOCheck.D()
	}
	return DefaultRPOCheck
}

func (a *Agent) host() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.plan.Host != "" {
		return a.plan.Host
	}
	h, _ := os.Hostname()
	return h
}

// Run runs the plan until ctx ends, reloading it on each value of reload.
// When ctx ends it stops scheduling, lets running jobs finish for the
// grace period, then kills them, and returns nil.
func (a *Agent) Run(ctx context.Context, reload <-chan struct{}) error {
	defer a.agentLck.Close()
	a.killCtx, a.kill = context.WithCancel(context.Background())
	defer a.kill()
	a.mu.Lock()
	a.apply(a.plan)
	a.mu.Unlock()
	a.log.Info("agent started", "plan", a.cfg.PlanPath, "jobs", len(a.plan.Jobs), "state", a.store.Dir, "pid", os.Getpid())

	rpo := time.NewTimer(a.rpoCheck())
	defer rpo.Stop()
	for {
		select {
		case <-ctx.Done():
			return a.shutdown()
		case <-reload:
			a.Reload(ctx)
		case <-rpo.C:
			a.evaluateRPO(ctx)
			rpo.Reset(a.rpoCheck())
		}
	}
}

// Reload reads the plan again. An invalid plan is refused (logged and
// notified) and the running one kept; a valid one is applied: new jobs
// start, removed ones stop, changed ones restart once their run ends.
func (a *Agent) Reload(ctx context.Context) bool {
	p, data, err := a.cfg.Load(a.cfg.PlanPath)
	if err == nil {
		err = checkSchedules(p, a.cfg.Parse)
	}
	if err == nil && a.cfg.Reloaded != nil {
		err = a.cfg.Reloaded(p)
	}
	if err == nil {
		err = WriteFileAtomic(a.store.RunningPlan(), data)
	}
	if err != nil {
		a.log.Error("plan reload refused; the running plan is kept", "plan", a.cfg.PlanPath, "err", err)
		a.cfg.Notifier.Notify(ctx, Alert{Kind: AlertPlan, Host: a.host(),
			Message: fmt.Sprintf("the plan %s was not reloaded, the running plan is kept: %v", a.cfg.PlanPath, err)})
		return false
	}
	a.mu.Lock()
	a.apply(p)
	a.mu.Unlock()
	a.log.Info("plan reloaded", "plan", a.cfg.PlanPath, "jobs", len(p.Jobs))
	return true
}

// apply makes the running jobs those of p. a.mu is held.
func (a *Agent) apply(p *plan.Plan) {
	a.plan = p
	for name, c := range a.jobs {
		nj, ok := p.Jobs[name]
		if ok && sameJob(c.job, nj) && c.host == p.Host {
			continue
		}
		c.stop()
		delete(a.jobs, name)
		if !ok {
			a.cfg.Metrics.RemoveJob(name)
			a.log.Info("job removed", "job", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Jobs)) {
		if _, ok := a.jobs[name]; ok {
			continue
		}
		j := p.Jobs[name]
		if j.Name == "" {
			j.Name = name
		}
		c := a.newJob(j, p.Host)
		a.jobs[name] = c
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			c.run()
		}()
	}
}

func sameJob(x, y *plan.Job) bool {
	bx, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(bx) == string(by)
}

// shutdown stops every job: scheduling stops at once, running children
// get the grace period, then are killed.
func (a *Agent) shutdown() error {
	a.log.Info("agent stopping", "grace", a.cfg.Grace)
	a.mu.Lock()
	for _, c := range a.jobs {
		c.stop()
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(a.cfg.Grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		a.log.Warn("jobs still running after the grace period; killing them", "grace", a.cfg.Grace)
		a.kill()
		<-done
	}
	a.log.Info("agent stopped")
	return nil
}

// evaluateRPO compares each job's newest restorable point with its
// target, alerting once when a target is first exceeded.
func (a *Agent) evaluateRPO(ctx context.Context) {
	a.mu.Lock()
	jobs := slices.Collect(maps.Values(a.jobs))
	a.mu.Unlock()
	now := a.cfg.Now()
	for _, c := range jobs {
		c.checkRPO(ctx, now)
	}
}

// record is the end of every run: journal, state, metrics, event log,
// notifications.
func (a *Agent) logRun(run *event.Run) {
	attrs := []any{"job", run.Job, "kind", run.Kind, "trigger", run.Trigger, "result", run.Result,
		"attempt", run.Attempt, "start", run.Start.Format(time.RFC3339), "duration", run.End.Sub(run.Start).Round(time.Millisecond),
		"files", run.Files, "bytes", run.Bytes, "added", run.Added}
	if run.Snapshot != "" {
		attrs = append(attrs, "snapshot", run.Snapshot)
	}
	if run.Error != "" {
		attrs = append(attrs, "err", run.Error)
	}
	switch run.Result {
	case event.ResultFailed:
		a.log.Error("job run", attrs...)
	case event.ResultWarning:
		a.log.Warn("job run", attrs...)
	default:
		a.log.Info("job run", attrs...)
	}
}
