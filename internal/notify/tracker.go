package notify

import (
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
)

// DefaultRepeatEvery is how often, at the least, a job that keeps failing
// is reported again.
const DefaultRepeatEvery = 24 * time.Hour

// Tracker turns a job's run results and RPO checks into events, telling
// transitions apart from repeats:
//
//   - a run that fails is a failure event; the first of a series is told,
//     and so is the 2nd, 4th, 8th... (the count doubles), or any one that
//     comes RepeatEvery or more after the last told; the others are marked
//     Repeat, which people's channels skip;
//   - a run that ends well (success or warning) after a failure is a
//     recovery, otherwise a success;
//   - CheckRPO raises one rpo event when the lag goes over the target,
//     and one recovery when it is back under.
//
// The state is in memory: an agent that restarts calls Seed with each
// job's last recorded run. A Tracker is safe for concurrent use.
type Tracker struct {
	// RepeatEvery bounds the silence about a job that keeps failing
	// (DefaultRepeatEvery when 0).
	RepeatEvery time.Duration

	host string
	mu   sync.Mutex
	jobs map[string]*jobState // mu
}

type jobState struct {
	failures int       // failed runs in a row
	told     time.Time // when the last failure told was
	// rpoBreached says an rpo event was raised and not yet cleared.
	rpoBreached bool
	// firstSeen is when CheckRPO first saw the job without a
	// restorable point: the lag of a job that has none counts from it.
	firstSeen time.Time
}

// NewTracker returns a Tracker for the jobs of host (the events' Host
// when a run has none).
func NewTracker(host string) *Tracker {
	return &Tracker{host: host, jobs: map[string]*jobState{}}
}

// job returns job's state; mu must be held.
func (t *Tracker) job(name string) *jobState {
	s := t.jobs[name]
	if s == nil {
		s = &jobState{}
		t.jobs[name] = s
	}
	return s
}

func (t *Tracker) hostOf(r *event.Run) string {
	if r.Host != "" {
		return r.Host
	}
	return t.host
}

// Seed sets a job's state from its last recorded run, without an event:
// a failed run counts as one failure already told.
func (t *Tracker) Seed(r *event.Run) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.job(r.Job)
	if r.Result == event.ResultFailed {
		s.failures, s.told = max(s.failures, 1), r.End
	} else {
		s.failures = 0
	}
}

// Forget drops a job's state (a plan reload removed it).
func (t *Tracker) Forget(job string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.jobs, job)
}

// RunStarted is the start event of r.
func (t *Tracker) RunStarted(r *event.Run) Event {
	return Event{Kind: KindStart, Host: t.hostOf(r), Job: r.Job, Time: r.Start, Run: r}
}

// RunFinished records r's result and returns its event: failure,
// recovery or success.
func (t *Tracker) RunFinished(r *event.Run) Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.job(r.Job)
	e := Event{Host: t.hostOf(r), Job: r.Job, Time: r.End, Run: r}
	if r.Result != event.ResultFailed {
		e.Kind = KindSuccess
		if s.failures > 0 {
			e.Kind = KindRecovery
		}
		s.failures, s.told = 0, time.Time{}
		return e
	}
	s.failures++
	e.Kind, e.Failures = KindFailure, s.failures
	every := t.RepeatEvery
	if every <= 0 {
		every = DefaultRepeatEvery
	}
	doubling := s.failures&(s.failures-1) == 0 // 1, 2, 4, 8...
	if doubling || s.told.IsZero() || !r.End.Before(s.told.Add(every)) {
		s.told = r.End
	} else {
		e.Repeat = true
	}
	return e
}

// CheckRPO compares the age of job's newest restorable point with its
// target at now, and returns an event when that changes the state: rpo
// when the lag goes over target, recovery when it is back within it; nil
// otherwise. A zero lastPoint means the job has no restorable point: its
// lag then counts from the first check that saw it so. A target of 0
// turns the check off.
func (t *Tracker) CheckRPO(job string, lastPoint time.Time, target time.Duration, now time.Time) *Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.job(job)
	if target <= 0 {
		s.rpoBreached, s.firstSeen = false, time.Time{}
		return nil
	}
	var lag time.Duration
	over := false
	if lastPoint.IsZero() {
		if s.firstSeen.IsZero() {
			s.firstSeen = now
		}
		over = now.Sub(s.firstSeen) > target
	} else {
		s.firstSeen = time.Time{}
		lag = now.Sub(lastPoint)
		over = lag > target
	}
	switch {
	case over && !s.rpoBreached:
		s.rpoBreached = true
		return &Event{Kind: KindRPO, Host: t.host, Job: job, Time: now, Lag: lag, Target: target}
	case !over && s.rpoBreached:
		s.rpoBreached = false
		return &Event{Kind: KindRecovery, Host: t.host, Job: job, Time: now, Lag: lag, Target: target}
	}
	return nil
}
