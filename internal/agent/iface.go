package agent

import (
	"context"
	"os"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// Schedule says when a scheduled job fires next.
type Schedule interface {
	// Next returns the first fire time strictly after after, or the zero
	// time when there is none.
	Next(after time.Time) time.Time
}

// ParseSchedule turns a job's schedule expression into a Schedule.
type ParseSchedule func(expr string) (Schedule, error)

// LoadPlan reads and checks the plan at path: everything that can be
// checked without touching the machine (the agent refuses a plan it
// fails). It returns the bytes it read too: the agent keeps them as the
// running plan (Store.RunningPlan), which its children read, so that an
// edited plan file changes nothing until it is reloaded.
type LoadPlan func(path string) (*plan.Plan, []byte, error)

// Launcher runs one run of a scheduled job to its end. lock is the job's
// locked lock file: the launcher must keep it open in any process that
// outlives the call's caller (pass it to the child), so that a restarted
// agent sees the run is still going. A launcher returns the run as it
// ended; err is only for a run that could not be started or whose outcome
// is unknown.
type Launcher interface {
	Launch(ctx context.Context, j *plan.Job, trigger string, attempt int, lock *os.File) (*event.Run, error)
}

// Watcher starts the `rewind watch` process of a continuous job. The
// process must get lock (passed as an extra file) and write its status
// under statusDir.
type Watcher interface {
	StartWatch(j *plan.Job, lock *os.File, statusDir string) (Process, error)
}

// Process is a started child process.
type Process interface {
	// Wait waits for it to end.
	Wait() error
	// Stop asks it to finish (SIGTERM).
	Stop()
	// Kill ends it now.
	Kill()
	// Pid is its process id.
	Pid() int
}

// Events stores runs in a job's repository and finds its newest point.
type Events interface {
	// Save records run in the repository of job j and applies the event
	// retention (event.Expire) to the job.
	Save(ctx context.Context, j *plan.Job, run *event.Run) error
	// NewestPoint returns when the newest snapshot of j (tag job:NAME)
	// was taken, or the zero time when there is none.
	NewestPoint(ctx context.Context, j *plan.Job) (time.Time, error)
}

// Alert kinds, as the plan's notify.on names them (and "plan" for a plan
// that failed to reload).
const (
	AlertStart    = "start"
	AlertFailure  = "failure"
	AlertRecovery = "recovery"
	AlertRPO      = "rpo"
	AlertSuccess  = "success"
	AlertPlan     = "plan"
)

// Alert is something to tell the administrator.
type Alert struct {
	Kind    string
	Host    string
	Job     string
	Message string
	// Run is the run that caused it, for start, failure, recovery and
	// success; nil for a recovery of the RPO (Lag and Target set).
	Run *event.Run
	// Lag and Target are set for an RPO alert.
	Lag, Target time.Duration
	// Point is the newest restorable point, for an RPO alert.
	Point time.Time
}

// Notifier sends alerts. It must not block for long: the agent calls it
// from the job's own goroutine.
type Notifier interface {
	Notify(ctx context.Context, a Alert)
}

// Seeder is a Notifier that keeps state across runs (failures in a row):
// at start the agent gives it each job's last recorded run.
type Seeder interface {
	Seed(run *event.Run)
}

// Metrics records what the agent sees, for a Prometheus endpoint or a
// textfile.
type Metrics interface {
	SetTarget(job string, rpo time.Duration)
	RunStarted(job string)
	RunFinished(run *event.Run)
	SetLastPoint(job string, t time.Time)
	RemoveJob(job string)
}

type nopNotifier struct{}

func (nopNotifier) Notify(context.Context, Alert) {}

type nopMetrics struct{}

func (nopMetrics) SetTarget(string, time.Duration) {}
func (nopMetrics) RunStarted(string)               {}
func (nopMetrics) RunFinished(*event.Run)          {}
func (nopMetrics) SetLastPoint(string, time.Time)  {}
func (nopMetrics) RemoveJob(string)                {}
