// Package job runs one job of a plan: its before steps, the work itself
// (a backup, check, forget or copy, each a child process of the rewind
// binary), its after and on_failure steps, and the undoing of what the
// before steps did when anything fails. The agent and `rewind plan run`
// both call Runner.Run; docs/STEPS.md describes the order and what fails
// how.
package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/systemd"
)

// Phases of event.Step.
const (
	PhaseBefore    = "before"
	PhaseAfter     = "after"
	PhaseOnFailure = "on_failure"
	// PhaseUndo is an implicit undo: a thaw, a btrfs snapshot removed.
	PhaseUndo = "undo"
	// PhaseJob is the work itself: the backup, check, forget or copy, and
	// the retention and copies after a backup.
	PhaseJob = "job"
)

// Step results.
const (
	StepSuccess = "success"
	StepFailed  = "failed"
	StepSkipped = "skipped"
)

// Runner runs jobs of one plan. Its zero values are usable defaults
// except Plan.
type Runner struct {
	// Bin is the rewind binary the work runs as (default: this
	// executable).
	Bin  string
	Plan *plan.Plan
	Log  *slog.Logger
	// Stdout receives the children's progress lines and Stderr their
	// standard error, for a run in the foreground; nil discards them.
	Stdout, Stderr io.Writer
	// Systemd runs the unit steps.
	Systemd systemd.Manager
	// Btrfs is the btrfs binary ("" = from PATH).
	Btrfs string
	// StateDir is rewind's state folder, never frozen by an fsfreeze step
	// (default: the plan's agent state_dir).
	StateDir string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (r *Runner) bin() string {
	if r.Bin != "" {
		return r.Bin
	}
	if b := os.Getenv("REWIND_BIN"); b != "" {
		return b
	}
	b, err := os.Executable()
	if err != nil {
		return "rewind"
	}
	return b
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// state is one run of one job.
type state struct {
	r    *Runner
	j    *plan.Job
	rec  *event.Run
	log  *slog.Logger
	host string
	repo *plan.Repository

	// done are the before steps that succeeded, in order, with how each
	// is undone.
	done []*doneStep
	// readFrom are the backup's --read-from mappings (btrfs_snapshot).
	readFrom []string
	// failures are the messages of what failed, in order.
	failures []string
	// notes are added to the run's error: what was kept despite it.
	notes []string
	// watchdogs are the fsfreeze watchdog processes started, reaped by
	// their goroutines; wg waits for them.
	wg sync.WaitGroup
}

// doneStep is a before step that succeeded.
type doneStep struct {
	step *plan.Step
	// undo, for fsfreeze and btrfs_snapshot, reverses the step; nil for
	// the others, whose undoing is an after step the user wrote.
	undo   func(ctx context.Context) error
	undone bool
}

// Run runs job j now. It always returns the run's record; the error is
// non-nil when the run failed, and is then the record's Error.
func (r *Runner) Run(ctx context.Context, j *plan.Job, trigger string) (*event.Run, error) {
	rec := &event.Run{Job: j.Name, Kind: j.Kind, Trigger: trigger, Start: r.now().UTC(), Attempt: 1}
	s := &state{r: r, j: j, rec: rec}
	s.log = r.Log
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("job", j.Name)
	s.host = r.Plan.Host
	if s.host == "" {
		s.host, _ = os.Hostname()
	}
	rec.Host = s.host
	if repo, err := r.repository(j.Repository); err != nil {
		s.fail(err.Error())
	} else {
		s.repo = repo
		s.run(ctx)
	}
	s.wg.Wait()
	rec.End = r.now().UTC()
	switch {
	case len(s.failures) > 0:
		rec.Result = event.ResultFailed
		rec.Error = strings.Join(append(s.failures, s.notes...), "; ")
		s.log.Error("job failed", "err", rec.Error)
		return rec, errors.New(rec.Error)
	case rec.Result == event.ResultWarning:
		s.log.Warn("job done with warnings", "snapshot", rec.Snapshot)
	default:
		rec.Result = event.ResultSuccess
		s.log.Info("job done", "snapshot", rec.Snapshot, "files", rec.Files, "bytes", rec.Bytes, "added", rec.Added)
	}
	return rec, nil
}

// repository returns the plan's repository called name, or its only one
// when name is empty.
func (r *Runner) repository(name string) (*plan.Repository, error) {
	if name == "" {
		if len(r.Plan.Repositories) != 1 {
			return nil, fmt.Errorf("the job names no repository, and the plan has %d", len(r.Plan.Repositories))
		}
		for _, repo := range r.Plan.Repositories {
			return repo, nil
		}
	}
	repo, ok := r.Plan.Repositories[name]
	if !ok || repo == nil {
		return nil, fmt.Errorf("repository %q is not in the plan", name)
	}
	return repo, nil
}

func (s *state) fail(msg string) { s.failures = append(s.failures, msg) }

// run carries out the job: before steps, the work, then either the
// after steps (success) or the rollback (failure), then on_failure.
func (s *state) run(ctx context.Context) {
	// Undoing must happen whatever ended ctx: steps after the work get a
	// context that is never cancelled, and their own timeouts.
	cleanup := context.WithoutCancel(ctx)
	work := ctx
	if l := s.j.Limits; l != nil && l.MaxRuntime > 0 {
		var cancel context.CancelFunc
		work, cancel = context.WithTimeoutCause(ctx, l.MaxRuntime.D(),
			fmt.Errorf("stopped after max_runtime %s", shortDuration(l.MaxRuntime.D())))
		defer cancel()
	}

	ok := s.beforeSteps(work, cleanup)
	if ok {
		ok = s.work(work)
	}
	if ok {
		// Thaw and remove snapshots first: the data is read.
		s.undoImplicit(cleanup)
		for _, st := range s.j.After {
			if err := s.step(cleanup, PhaseAfter, st); err != nil {
				s.fail(fmt.Sprintf("after step %s failed: %v", describe(st), err))
			}
		}
		if s.rec.Snapshot != "" {
			s.afterBackup(work)
		}
	} else {
		s.rollback(cleanup)
	}
	if len(s.failures) > 0 {
		for _, st := range s.j.OnFailure {
			if err := s.step(cleanup, PhaseOnFailure, st); err != nil {
				s.fail(fmt.Sprintf("on_failure step %s failed: %v", describe(st), err))
			}
		}
	}
}

// beforeSteps runs the before steps in order and stops at the first that
// fails; the rest are recorded as skipped. A btrfs_snapshot step ends
// the freeze of every fsfreeze step before it: the snapshot is what the
// freeze was for.
func (s *state) beforeSteps(ctx, cleanup context.Context) bool {
	for i, st := range s.j.Before {
		d := &doneStep{step: st}
		err := s.stepWith(ctx, PhaseBefore, st, d)
		if err != nil {
			if st.Kind == plan.StepCheck {
				s.fail(fmt.Sprintf("consistency check failed: %v", err))
			} else {
				s.fail(fmt.Sprintf("before step %s failed: %v", describe(st), err))
			}
			for _, rest := range s.j.Before[i+1:] {
				s.skip(PhaseBefore, rest)
			}
			s.skip(PhaseJob, &plan.Step{Kind: s.j.Kind})
			return false
		}
		s.done = append(s.done, d)
		if st.Kind == plan.StepBtrfsSnapshot {
			s.undoKind(cleanup, plan.StepFsfreeze)
		}
	}
	return true
}

// rollback undoes what the before steps did, after a failure: in the
// reverse order of the steps it undoes, each implicit undo (thaw,
// snapshot removal) and each after step that starts or restarts a unit
// an earlier before step stopped; then the after steps marked always, in
// order. The other after steps are recorded as skipped.
func (s *state) rollback(ctx context.Context) {
	ran := map[*plan.Step]bool{}
	for i := len(s.done) - 1; i >= 0; i-- {
		d := s.done[i]
		if d.undo != nil {
			s.undoOne(ctx, d)
			continue
		}
		if d.step.Kind != plan.StepStop {
			continue
		}
		for _, st := range s.j.After {
			if ran[st] || st.Arg != d.step.Arg || (st.Kind != plan.StepStart && st.Kind != plan.StepRestart) {
				continue
			}
			ran[st] = true
			if err := s.step(ctx, PhaseAfter, st); err != nil {
				s.fail(fmt.Sprintf("after step %s failed: %v", describe(st), err))
			}
		}
	}
	for _, st := range s.j.After {
		if ran[st] {
			continue
		}
		if !st.Always {
			s.skip(PhaseAfter, st)
			continue
		}
		ran[st] = true
		if err := s.step(ctx, PhaseAfter, st); err != nil {
			s.fail(fmt.Sprintf("after step %s failed: %v", describe(st), err))
		}
	}
}

// undoImplicit runs the implicit undos not yet run, newest first.
func (s *state) undoImplicit(ctx context.Context) {
	for i := len(s.done) - 1; i >= 0; i-- {
		if s.done[i].undo != nil {
			s.undoOne(ctx, s.done[i])
		}
	}
}

// undoKind runs the implicit undos of the done steps of one kind.
func (s *state) undoKind(ctx context.Context, kind string) {
	for i := len(s.done) - 1; i >= 0; i-- {
		if s.done[i].step.Kind == kind && s.done[i].undo != nil {
			s.undoOne(ctx, s.done[i])
		}
	}
}

func (s *state) undoOne(ctx context.Context, d *doneStep) {
	if d.undone {
		return
	}
	d.undone = true
	start := time.Now()
	err := d.undo(ctx)
	s.record(PhaseUndo, d.step.Kind, d.step.Arg, err, time.Since(start))
	if err != nil {
		s.fail(err.Error())
	}
}

// work runs the job's own work; it reports whether it succeeded.
func (s *state) work(ctx context.Context) bool {
	j := s.j
	var args []string
	switch j.Kind {
	case plan.KindFiles, plan.KindStdinCommand:
		args = append(append([]string{"backup"}, repoFlags(s.repo, j.Limits)...), s.backupArgs()...)
	case plan.KindCheck:
		args = append([]string{"check"}, repoFlags(s.repo, j.Limits)...)
		if j.ReadDataSubset != "" {
			args = append(args, "--read-data-subset", j.ReadDataSubset)
		}
	case plan.KindForget:
		if j.Retention == nil {
			return s.workFailed("backup", errors.New("a forget job needs a retention"))
		}
		args = append([]string{"forget"}, repoFlags(s.repo, j.Limits)...)
		args = append(args, "--host", s.host)
		for _, t := range j.Tags {
			args = append(args, "--tag", t)
		}
		args = append(args, retentionArgs(j.Retention)...)
	case plan.KindDrill:
		args = append([]string{"drill"}, repoFlags(s.repo, j.Limits)...)
		args = append(args, drillArgs(j, s.host)...)
	case plan.KindCopy:
		ok := true
		for _, to := range j.CopyTo {
			if err := s.copyTo(ctx, to, ""); err != nil {
				ok = false
			}
		}
		return ok
	default:
		return s.workFailed(j.Kind, fmt.Errorf("jobs of kind %q cannot run yet", j.Kind))
	}
	start := time.Now()
	res, err := s.rewind(ctx, args...)
	if err == nil && res.summary != nil && args[0] == "backup" {
		sum := res.summary
		s.rec.Snapshot, s.rec.Files, s.rec.Bytes, s.rec.Added = sum.SnapshotID, sum.TotalFiles, sum.TotalBytes, sum.DataAdded
	}
	if args[0] == "drill" && res != nil {
		s.drillResult(res.raw)
	}
	if err == nil && args[0] == "backup" && s.rec.Snapshot == "" {
		err = errors.New("rewind backup: ended without a summary")
	}
	s.record(PhaseJob, args[0], "", err, time.Since(start))
	if err != nil {
		s.fail(err.Error())
		return false
	}
	if res.partial {
		s.rec.Result = event.ResultWarning
		s.log.Warn("some files could not be read", "snapshot", s.rec.Snapshot)
	}
	return true
}

// workFailed records the work as failed without running it.
func (s *state) workFailed(what string, err error) bool {
	s.record(PhaseJob, what, "", err, 0)
	s.fail(err.Error())
	return false
}

// afterBackup applies the job's retention and copies the new snapshot
// to each copy_to repository. A failure there fails the run but keeps
// the snapshot, and the run's error says so.
func (s *state) afterBackup(ctx context.Context) {
	failed := false
	if ret := s.j.Retention; ret != nil {
		args := append([]string{"forget"}, repoFlags(s.repo, s.j.Limits)...)
		args = append(args, "--tag", JobTag(s.j.Name), "--host", s.host)
		args = append(args, retentionArgs(ret)...)
		start := time.Now()
		_, err := s.rewind(ctx, args...)
		s.record(PhaseJob, "retention", "", err, time.Since(start))
		if err != nil {
			failed = true
			s.fail(fmt.Sprintf("retention failed: %v", err))
		}
	}
	for _, to := range s.j.CopyTo {
		if err := s.copyTo(ctx, to, s.rec.Snapshot); err != nil {
			failed = true
		}
	}
	if failed {
		s.notes = append(s.notes, fmt.Sprintf("snapshot %s was saved in %s and is kept", short(s.rec.Snapshot), s.repo.Location))
	}
}

// copyTo copies snapshot (every snapshot when "") from the job's
// repository to the plan's repository named to.
func (s *state) copyTo(ctx context.Context, to, snapshot string) error {
	start := time.Now()
	dst, err := s.r.repository(to)
	if err == nil && dst == s.repo {
		err = errors.New("a repository cannot be copied to itself")
	}
	if err == nil {
		args := append([]string{"copy"}, repoFlags(dst, s.j.Limits)...)
		args = append(args, "--from-repo", s.repo.Location)
		if s.repo.PasswordFile != "" {
			args = append(args, "--from-password-file", s.repo.PasswordFile)
		}
		if s.repo.PasswordCommand != "" {
			args = append(args, "--from-password-command", s.repo.PasswordCommand)
		}
		if snapshot != "" {
			args = append(args, snapshot)
		}
		_, err = s.rewind(ctx, args...)
	}
	s.record(PhaseJob, "copy", to, err, time.Since(start))
	if err != nil {
		s.fail(fmt.Sprintf("copy to %s failed: %v", to, err))
	}
	return err
}

// record adds a step's outcome to the run.
func (s *state) record(phase, kind, arg string, err error, d time.Duration) {
	st := event.Step{Phase: phase, Kind: kind, Arg: arg, Result: StepSuccess, Duration: d}
	if err != nil {
		st.Result, st.Error = StepFailed, err.Error()
		s.log.Warn("step failed", "phase", phase, "kind", kind, "arg", arg, "err", err)
	} else {
		s.log.Info("step done", "phase", phase, "kind", kind, "arg", arg, "duration", d)
	}
	s.rec.Steps = append(s.rec.Steps, st)
}

func (s *state) skip(phase string, st *plan.Step) {
	s.rec.Steps = append(s.rec.Steps, event.Step{Phase: phase, Kind: st.Kind, Arg: stepArg(st), Result: StepSkipped})
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// shortDuration writes d as "2h", "90m", "1h30m", "45s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
