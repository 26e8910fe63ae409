package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// Triggers of runs the agent starts.
const (
	TriggerSchedule    = "schedule"
	TriggerCatchUp     = "catch-up"
	TriggerRetry       = "retry"
	TriggerContinuous  = "continuous"
	TriggerInterrupted = "interrupted"
)

// maxWait bounds one timer wait, so that a wall clock set forward or a
// suspended machine is noticed within the hour.
const maxWait = time.Hour

// jobCtl runs one job: its goroutine, its timer, its state.
type jobCtl struct {
	a     *Agent
	job   *plan.Job
	host  string
	sched Schedule // nil for continuous and manual jobs
	log   *slog.Logger

	ctx    context.Context // ends when the job must stop scheduling
	cancel context.CancelFunc

	mu    sync.Mutex
	state *JobState
	// running is set while a run or watcher is under way.
	running bool
	// rerun asks for a run at start: the last one was interrupted.
	rerun bool
}

func (a *Agent) newJob(j *plan.Job, host string) *jobCtl {
	if host == "" {
		host, _ = os.Hostname()
	}
	c := &jobCtl{a: a, job: j, host: host, log: a.log.With("job", j.Name)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if j.Schedule != "" && j.Schedule != plan.ScheduleContinuous {
		c.sched, _ = a.cfg.Parse(j.Schedule) // checked by checkSchedules
	}
	return c
}

func (c *jobCtl) stop() { c.cancel() }

// run is the job's goroutine.
func (c *jobCtl) run() {
	st, err := c.a.store.Load(c.job.Name)
	if err != nil {
		c.log.Error("job state unreadable; starting afresh", "err", err)
		st = &JobState{Job: c.job.Name}
	}
	c.mu.Lock()
	c.state = st
	c.mu.Unlock()
	if st.Known.IsZero() {
		c.update(func(s *JobState) { s.Known = c.a.cfg.Now() })
	}
	m := c.a.cfg.Metrics
	if c.job.RPO > 0 {
		m.SetTarget(c.job.Name, c.job.RPO.D())
	}
	if st.LastRun != nil {
		m.RunFinished(st.LastRun)
		if sd, ok := c.a.cfg.Notifier.(Seeder); ok {
			sd.Seed(st.LastRun)
		}
	}
	if st.LastPoint.IsZero() && c.job.RPO > 0 && isBackup(c.job) {
		// Once, at start: the newest snapshot of the job is the newest
		// restorable point until a run of this agent says otherwise.
		t, err := c.a.cfg.Events.NewestPoint(c.ctx, c.job)
		if err != nil {
			c.log.Warn("newest snapshot of the job unknown", "err", err)
		} else if !t.IsZero() {
			c.update(func(s *JobState) { s.LastPoint = t })
		}
	}
	if !st.LastPoint.IsZero() {
		m.SetLastPoint(c.job.Name, c.state.LastPoint)
	}

	// A run that was under way when the last agent stopped.
	if !c.recoverOrphan() {
		return
	}
	switch {
	case c.job.Schedule == plan.ScheduleContinuous:
		c.runContinuous()
	case c.sched != nil:
		c.runScheduled()
	default:
		<-c.ctx.Done() // run only by hand
	}
}

func isBackup(j *plan.Job) bool {
	switch j.Kind {
	case plan.KindCheck, plan.KindForget, plan.KindCopy, plan.KindDrill:
		return false
	}
	return true
}

// update changes the state and writes it; a write failure is logged (the
// agent goes on: the worst case is a repeated catch-up).
func (c *jobCtl) update(f func(*JobState)) {
	c.mu.Lock()
	f(c.state)
	cp := *c.state
	c.mu.Unlock()
	if err := c.a.store.Save(&cp); err != nil {
		c.log.Error("cannot write the job state", "err", err)
	}
}

func (c *jobCtl) snapshot() JobState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.state
}

// recoverOrphan deals with a run left by an earlier agent: if its child
// still holds the job lock, wait for it; then record its outcome from the
// result file it left, or an "interrupted" event. It returns false when
// the job was stopped meanwhile.
func (c *jobCtl) recoverOrphan() bool {
	lockPath := c.a.store.LockPath(c.job.Name)
	f, err := TryLock(lockPath)
	if errors.Is(err, ErrBusy) {
		c.log.Warn("the job is still running from an earlier agent; waiting for it to end before scheduling it")
		c.setRunning(true)
		f, err = waitLock(lockPath, c.ctx.Done())
		c.setRunning(false)
		if err != nil {
			return false
		}
		c.log.Info("the earlier run of the job ended")
	}
	if err != nil {
		c.log.Error("cannot take the job lock", "err", err)
		return c.ctx.Err() == nil
	}
	f.Close()
	// The state as the lock's last holder left it: a run that ended under
	// an earlier goroutine of this agent (a reload) is already recorded.
	if fresh, err := c.a.store.Load(c.job.Name); err == nil {
		c.mu.Lock()
		c.state = fresh
		c.mu.Unlock()
	}
	st := c.snapshot()
	if st.Running == nil {
		return true
	}
	run := c.a.store.ReadResult(c.job.Name)
	if run == nil || run.Start.Before(st.Running.Start.Add(-time.Second)) {
		now := c.a.cfg.Now()
		run = &event.Run{Host: c.host, Job: c.job.Name, Kind: c.job.Kind, Trigger: TriggerInterrupted,
			Start: st.Running.Start, End: now, Result: event.ResultFailed, Attempt: st.Running.Attempt,
			Error: fmt.Sprintf("the %s run started %s was cut short: the agent stopped before it ended and it left no result",
				st.Running.Trigger, st.Running.Start.Format(time.RFC3339))}
		c.rerun = st.Running.Trigger != TriggerContinuous
	}
	c.finish(run)
	return true
}

func (c *jobCtl) isRunning() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

func (c *jobCtl) setRunning(v bool) {
	c.mu.Lock()
	c.running = v
	c.mu.Unlock()
}

// runScheduled fires the job at its schedule's times, catching up once a
// fire missed while the agent was down.
func (c *jobCtl) runScheduled() {
	now := c.a.cfg.Now()
	st := c.snapshot()
	if c.rerun {
		c.log.Info("running the job again: its last run was interrupted")
		c.fire(now, TriggerRetry)
	} else if st.LastFire.IsZero() {
		// First start: nothing was missed.
		c.update(func(s *JobState) { s.LastFire = now })
	} else if next := c.sched.Next(st.LastFire); !next.IsZero() && !next.After(now) {
		c.log.Info("catching up a run missed while the agent was down", "missed", next.Format(time.RFC3339))
		c.fire(now, TriggerCatchUp)
	}
	for {
		from := c.a.cfg.Now()
		if lf := c.snapshot().LastFire; lf.After(from) {
			from = lf
		}
		next := c.sched.Next(from)
		if next.IsZero() {
			c.log.Info("the schedule has no more fire times")
			<-c.ctx.Done()
			return
		}
		c.update(func(s *JobState) { s.NextRun = next })
		if !c.sleepUntil(next) {
			return
		}
		c.fire(next, TriggerSchedule)
	}
}

// sleepUntil waits for t by the wall clock; false when stopped.
func (c *jobCtl) sleepUntil(t time.Time) bool {
	for {
		d := t.Sub(c.a.cfg.Now())
		if d <= 0 {
			return true
		}
		tm := time.NewTimer(min(d, maxWait))
		select {
		case <-c.ctx.Done():
			tm.Stop()
			return false
		case <-tm.C:
		}
	}
}

// fire runs the job for the fire time at, retrying a failure with backoff.
func (c *jobCtl) fire(at time.Time, trigger string) {
	c.update(func(s *JobState) { s.LastFire = at })
	attempts, backoff, maxBackoff := DefaultAttempts, DefaultBackoff, DefaultMaxBackoff
	if r := c.job.Retry; r != nil {
		if r.Attempts > 0 {
			attempts = r.Attempts
		}
		if r.Backoff > 0 {
			backoff = r.Backoff.D()
		}
		if r.Max > 0 {
			maxBackoff = r.Max.D()
		}
	}
	for attempt := 1; ; attempt++ {
		run := c.once(trigger, attempt)
		if run == nil || run.Result != event.ResultFailed || attempt >= attempts {
			return
		}
		c.log.Info("retrying the job", "attempt", attempt+1, "of", attempts, "in", backoff)
		if !c.sleepUntil(c.a.cfg.Now().Add(backoff)) {
			return
		}
		trigger = TriggerRetry
		backoff = min(2*backoff, maxBackoff)
	}
}

// once runs the job one time under its lock and records the run. It
// returns nil when the job was stopped before it could start.
func (c *jobCtl) once(trigger string, attempt int) *event.Run {
	lockPath := c.a.store.LockPath(c.job.Name)
	lock, err := TryLock(lockPath)
	if errors.Is(err, ErrBusy) {
		// Another process (a `plan run` by hand, an orphan) runs it.
		c.log.Warn("the job is already running elsewhere; waiting for it")
		lock, err = waitLock(lockPath, c.ctx.Done())
	}
	if err != nil {
		if c.ctx.Err() != nil {
			return nil
		}
		run := c.failedRun(trigger, attempt, c.a.cfg.Now(), fmt.Errorf("job lock: %w", err))
		c.finish(run)
		return run
	}
	defer lock.Close()
	start := c.a.cfg.Now()
	c.setRunning(true)
	defer c.setRunning(false)
	c.update(func(s *JobState) {
		s.Running = &Running{Trigger: trigger, Start: start, Attempt: attempt, PID: os.Getpid()}
	})
	c.a.cfg.Metrics.RunStarted(c.job.Name)
	c.log.Info("job starting", "trigger", trigger, "attempt", attempt)
	c.a.cfg.Notifier.Notify(c.ctx, Alert{Kind: AlertStart, Host: c.host, Job: c.job.Name,
		Run: &event.Run{Host: c.host, Job: c.job.Name, Kind: c.job.Kind, Trigger: trigger, Start: start, Attempt: attempt}})
	run, err := c.a.cfg.Launcher.Launch(c.a.killCtx, c.job, trigger, attempt, lock)
	if err != nil {
		run = c.failedRun(trigger, attempt, start, err)
	}
	if run.Job == "" {
		run.Job = c.job.Name
	}
	if run.Host == "" {
		run.Host = c.host
	}
	if run.Kind == "" {
		run.Kind = c.job.Kind
	}
	if run.Start.IsZero() {
		run.Start = start
	}
	if run.End.IsZero() {
		run.End = c.a.cfg.Now()
	}
	run.Trigger, run.Attempt = trigger, attempt
	c.finish(run)
	return run
}

func (c *jobCtl) failedRun(trigger string, attempt int, start time.Time, err error) *event.Run {
	return &event.Run{Host: c.host, Job: c.job.Name, Kind: c.job.Kind, Trigger: trigger, Attempt: attempt,
		Start: start, End: c.a.cfg.Now(), Result: event.ResultFailed, Error: err.Error()}
}

// finish records a run that ended: state, journal, event log, metrics,
// notifications.
func (c *jobCtl) finish(run *event.Run) {
	var prevFailures int
	c.update(func(s *JobState) {
		prevFailures = s.Failures
		s.Running = nil
		s.LastRun = run
		if run.Result == event.ResultFailed {
			s.Failures++
			return
		}
		s.Failures = 0
		s.LastSuccess = run.End
		if isBackup(c.job) && run.Trigger != TriggerContinuous {
			s.LastPoint = run.Start
		}
	})
	c.a.logRun(run)
	m := c.a.cfg.Metrics
	m.RunFinished(run)
	if st := c.snapshot(); !st.LastPoint.IsZero() {
		m.SetLastPoint(c.job.Name, st.LastPoint)
	}
	// The event log is in the repository: a run that cannot be written
	// there waits in the outbox; it does not change the run's result.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.saveEvent(ctx, run)
	n := c.a.cfg.Notifier
	switch {
	case run.Result == event.ResultFailed:
		n.Notify(ctx, Alert{Kind: AlertFailure, Host: run.Host, Job: run.Job, Run: run,
			Message: fmt.Sprintf("job %s failed (%s, attempt %d): %s", run.Job, run.Trigger, run.Attempt, run.Error)})
	case prevFailures > 0:
		n.Notify(ctx, Alert{Kind: AlertRecovery, Host: run.Host, Job: run.Job, Run: run,
			Message: fmt.Sprintf("job %s succeeded again after %d failed runs", run.Job, prevFailures)})
	default:
		n.Notify(ctx, Alert{Kind: AlertSuccess, Host: run.Host, Job: run.Job, Run: run,
			Message: fmt.Sprintf("job %s: %s", run.Job, run.Result)})
	}
}

// checkRPO alerts when the job's newest restorable point is older than
// its target; once per breach.
func (c *jobCtl) checkRPO(ctx context.Context, now time.Time) {
	c.mu.Lock()
	loaded := c.state != nil
	c.mu.Unlock()
	if c.job.RPO <= 0 || !loaded {
		return
	}
	c.refreshWatchPoint()
	st := c.snapshot()
	target := c.job.RPO.D()
	var lag time.Duration
	if st.LastPoint.IsZero() {
		// Never a point: the lag runs from when the agent first knew the job.
		lag = now.Sub(c.firstSeen())
	} else {
		lag = now.Sub(st.LastPoint)
	}
	breach := lag > target
	if breach == st.Breach {
		return
	}
	c.update(func(s *JobState) { s.Breach = breach })
	if breach {
		msg := fmt.Sprintf("job %s exceeds its RPO: the newest restorable point is %s old, the target is %s",
			c.job.Name, lag.Round(time.Second), target)
		if st.LastPoint.IsZero() {
			msg = fmt.Sprintf("job %s exceeds its RPO: no restorable point for %s, the target is %s", c.job.Name, lag.Round(time.Second), target)
		}
		c.log.Warn("RPO exceeded", "lag", lag.Round(time.Second), "target", target, "point", st.LastPoint)
		c.a.cfg.Notifier.Notify(ctx, Alert{Kind: AlertRPO, Host: c.host, Job: c.job.Name, Message: msg,
			Lag: lag, Target: target, Point: st.LastPoint})
	} else {
		c.log.Info("RPO met again", "lag", lag.Round(time.Second), "target", target)
		c.a.cfg.Notifier.Notify(ctx, Alert{Kind: AlertRecovery, Host: c.host, Job: c.job.Name, Lag: lag, Target: target, Point: st.LastPoint,
			Message: fmt.Sprintf("job %s meets its RPO again: the newest restorable point is %s old, the target is %s", c.job.Name, lag.Round(time.Second), target)})
	}
}

func (c *jobCtl) firstSeen() time.Time {
	if k := c.snapshot().Known; !k.IsZero() {
		return k
	}
	return c.a.cfg.Now()
}
