package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/watch"
)

// maxWatchBackoff caps the wait before restarting a watcher that died.
const maxWatchBackoff = 5 * time.Minute

// runContinuous keeps the job's `rewind watch` process running: started
// at once, restarted with backoff when it dies, stopped (SIGTERM, which
// makes it save what is pending) when the job or the agent stops.
func (c *jobCtl) runContinuous() {
	if c.a.cfg.Watcher == nil {
		c.log.Error("continuous jobs are not supported by this agent")
		<-c.ctx.Done()
		return
	}
	backoff := DefaultWatchBackof
	for {
		lockPath := c.a.store.LockPath(c.job.Name)
		lock, err := TryLock(lockPath)
		if errors.Is(err, ErrBusy) {
			c.log.Warn("the job's watcher is still running from an earlier agent; waiting for it")
			lock, err = waitLock(lockPath, c.ctx.Done())
		}
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.log.Error("cannot take the job lock", "err", err)
		} else {
			ran := c.watchOnce(lock)
			lock.Close()
			if c.ctx.Err() != nil {
				return
			}
			if ran > 10*time.Minute {
				backoff = DefaultWatchBackof
			}
		}
		c.log.Info("restarting the watcher", "in", backoff)
		if !c.sleepUntil(c.a.cfg.Now().Add(backoff)) {
			return
		}
		backoff = min(2*backoff, maxWatchBackoff)
	}
}

// watchOnce runs one watcher process to its end and records its start
// and end; it returns how long it ran.
func (c *jobCtl) watchOnce(lock *os.File) time.Duration {
	start := c.a.cfg.Now()
	dir := c.a.store.WatchDir(c.job.Name)
	p, err := c.a.cfg.Watcher.StartWatch(c.job, lock, dir)
	if err != nil {
		c.finish(c.watchRun(start, "start", fmt.Errorf("start the watcher: %w", err)))
		return 0
	}
	c.setRunning(true)
	defer c.setRunning(false)
	c.update(func(s *JobState) {
		s.Running = &Running{Trigger: TriggerContinuous, Start: start, Attempt: 1, PID: p.Pid()}
	})
	c.a.cfg.Metrics.RunStarted(c.job.Name)
	c.log.Info("watcher started", "pid", p.Pid())
	c.record(c.watchRun(start, "start", nil))

	exited := make(chan error, 1)
	go func() { exited <- p.Wait() }()
	var werr error
	select {
	case werr = <-exited:
	case <-c.ctx.Done():
		p.Stop()
		select {
		case werr = <-exited:
		case <-c.a.killCtx.Done():
			p.Kill()
			werr = <-exited
		}
		if werr == nil || c.a.killCtx.Err() == nil {
			werr = nil
		}
	}
	c.refreshWatchPoint()
	if werr == nil && c.ctx.Err() == nil {
		werr = errors.New("the watcher exited by itself")
	}
	run := c.watchRun(start, "stop", werr)
	c.finish(run)
	return run.End.Sub(start)
}

// watchRun is an event of a continuous job: its watcher started, or
// stopped (err nil) or died (err set).
func (c *jobCtl) watchRun(start time.Time, action string, err error) *event.Run {
	r := &event.Run{Host: c.host, Job: c.job.Name, Kind: c.job.Kind, Trigger: TriggerContinuous,
		Action: action, Start: start, End: c.a.cfg.Now(), Result: event.ResultSuccess, Attempt: 1}
	if err != nil {
		r.Result, r.Error = event.ResultFailed, err.Error()
	}
	if st := c.readWatchStatus(); st != nil && st.LastSnapshot != "" && action == "stop" {
		r.Snapshot = st.LastSnapshot
	}
	return r
}

// record writes a watcher's start to the state, the journal and the
// event log: it changes no result, failure count or point.
func (c *jobCtl) record(run *event.Run) {
	c.update(func(s *JobState) { s.LastRun = run })
	c.a.logRun(run)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.saveEvent(ctx, run)
}

// readWatchStatus reads the status file the job's watcher writes.
func (c *jobCtl) readWatchStatus() *watch.Status {
	matches, _ := filepath.Glob(filepath.Join(c.a.store.WatchDir(c.job.Name), "rewind", "watch-*.json"))
	var newest *watch.Status
	for _, m := range matches {
		st, err := watch.ReadStatus(m)
		if err != nil {
			continue
		}
		if newest == nil || st.Updated.After(newest.Updated) {
			newest = st
		}
	}
	return newest
}

// refreshWatchPoint takes the newest restorable point of a continuous
// job from its watcher's status: the newest snapshot when nothing is
// pending, else the moment before the oldest pending change.
func (c *jobCtl) refreshWatchPoint() {
	if point, ok := c.watchPoint(); ok {
		c.update(func(s *JobState) { s.LastPoint = point })
		c.a.cfg.Metrics.SetLastPoint(c.job.Name, point)
	}
}

// refreshWatchPointNoSave is refreshWatchPoint for a reader of the state
// (rewind status): it changes the state in memory only.
func (c *jobCtl) refreshWatchPointNoSave() {
	if point, ok := c.watchPoint(); ok {
		c.state.LastPoint = point
	}
}

// watchPoint is the newer restorable point the watcher's status shows.
func (c *jobCtl) watchPoint() (time.Time, bool) {
	if c.job.Schedule != "continuous" {
		return time.Time{}, false
	}
	st := c.readWatchStatus()
	if st == nil {
		return time.Time{}, false
	}
	var point time.Time
	switch {
	case st.State == "running" && st.PendingChanges == 0 && c.isRunning():
		// Every change seen is in a snapshot: now is restorable.
		point = c.a.cfg.Now()
	case st.OldestPending != nil:
		point = *st.OldestPending
	case st.LastSnapshotTime != nil:
		point = *st.LastSnapshotTime
	}
	if point.IsZero() || !point.After(c.snapshot().LastPoint) {
		return time.Time{}, false
	}
	return point, true
}
