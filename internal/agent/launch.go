package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// Runner runs one job in the current process (the job runner, which
// itself runs rewind's commands as children).
type Runner interface {
	Run(ctx context.Context, j *plan.Job, trigger string) (*event.Run, error)
}

// ChildStopDelay is how long a child asked to stop (SIGTERM) may take
// before it is killed.
const ChildStopDelay = 30 * time.Second

// ProcessLauncher runs each run in a child process,
// `rewind agent run-job`, which inherits the job lock as file descriptor
// 3 and passes it on to its own children. It is the agent's Launcher.
type ProcessLauncher struct {
	// Bin is the rewind binary.
	Bin string
	// Config is the plan file, and StateDir the agent's state folder.
	Config, StateDir string
	// Log receives the child's output: the agent's standard error (the
	// journal). A file, not a pipe, so that it outlives the agent.
	Log *os.File
}

// Launch runs `rewind agent run-job` for j and reads the run it leaves
// in the state folder. The child gets no pipe from the agent: its output
// goes to the agent's own standard error (the journal) and its result to
// a file, so that it can finish and be heard of even if the agent dies.
func (l ProcessLauncher) Launch(ctx context.Context, j *plan.Job, trigger string, attempt int, lock *os.File) (*event.Run, error) {
	store := Store{Dir: l.StateDir}
	os.Remove(store.ResultPath(j.Name))
	cmd := exec.CommandContext(ctx, l.Bin, "agent", "run-job", "--quiet", "--config", l.Config, "--state-dir", l.StateDir,
		"--trigger", trigger, "--attempt", strconv.Itoa(attempt), "--", j.Name)
	if l.Log != nil {
		cmd.Stdout, cmd.Stderr = l.Log, l.Log
	}
	cmd.ExtraFiles = []*os.File{lock}
	// Its own process group: a Ctrl-C meant for the agent does not cut
	// the run short; the agent decides when to stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = ChildStopDelay
	err := cmd.Run()
	if run := store.ReadResult(j.Name); run != nil {
		return run, nil
	}
	if err == nil {
		err = errors.New("the job's process left no result")
	}
	return nil, fmt.Errorf("the job's process: %w", err)
}

// RunJob is the child's side of ProcessLauncher: it runs j with runner,
// leaves the run in the state folder (for an agent that restarted
// meanwhile) and writes it as one JSON line to out. The job lock is
// inherited as file descriptor 3 and stays open until the process ends.
func RunJob(ctx context.Context, runner Runner, store Store, host string, j *plan.Job, trigger string, attempt int, out io.Writer) error {
	start := time.Now()
	run, err := runner.Run(ctx, j, trigger)
	if err != nil && run == nil {
		run = &event.Run{Start: start, End: time.Now(), Result: event.ResultFailed, Error: err.Error()}
	}
	if run.Job == "" {
		run.Job = j.Name
	}
	if run.Kind == "" {
		run.Kind = j.Kind
	}
	if run.Host == "" {
		run.Host = host
	}
	if run.Start.IsZero() {
		run.Start = start
	}
	if run.End.IsZero() {
		run.End = time.Now()
	}
	if run.Result == "" {
		run.Result = event.ResultFailed
	}
	run.Trigger, run.Attempt = trigger, attempt
	if werr := store.WriteResult(run); werr != nil {
		fmt.Fprintf(os.Stderr, "rewind agent run-job: %v\n", werr)
	}
	b, merr := json.Marshal(run)
	if merr != nil {
		return merr
	}
	_, werr := fmt.Fprintf(out, "%s\n", b)
	return werr
}

// ExecWatcher starts `rewind watch` for a continuous job.
type ExecWatcher struct {
	Bin string
	// Args returns the arguments of `rewind watch` for j (after "watch").
	Args func(j *plan.Job) ([]string, error)
	Log  *os.File
}

// StartWatch starts the watcher with the lock as file descriptor 3 and
// its status file under statusDir (as its XDG_STATE_HOME).
func (w ExecWatcher) StartWatch(j *plan.Job, lock *os.File, statusDir string) (Process, error) {
	args, err := w.Args(j)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(statusDir, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(w.Bin, append([]string{"watch"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+statusDir)
	if w.Log != nil {
		cmd.Stdout, cmd.Stderr = w.Log, w.Log
	}
	cmd.ExtraFiles = []*os.File{lock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return execProcess{cmd}, nil
}

type execProcess struct{ cmd *exec.Cmd }

func (p execProcess) Wait() error { return p.cmd.Wait() }
func (p execProcess) Stop()       { p.cmd.Process.Signal(syscall.SIGTERM) }
func (p execProcess) Kill()       { p.cmd.Process.Kill() }
func (p execProcess) Pid() int    { return p.cmd.Process.Pid }
