package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/btrfs"
	"github.com/rewind-backup/rewind/internal/fsfreeze"
	"github.com/rewind-backup/rewind/internal/plan"
)

// Default bounds of steps (docs/PLAN.md).
const (
	DefaultCommandTimeout = 5 * time.Minute
	DefaultUnitTimeout    = 90 * time.Second
	DefaultFreezeMax      = 30 * time.Second
	// SnapshotPrefix starts the name of the read-only snapshot a
	// btrfs_snapshot step takes inside its subvolume:
	// .rewind-snap-JOB-TIME.
	SnapshotPrefix = ".rewind-snap-"
)

// outputLines is how many first lines of a command step's output its
// error carries.
const outputLines = 5

// step runs one step that needs no undo record (after, on_failure).
func (s *state) step(ctx context.Context, phase string, st *plan.Step) error {
	return s.stepWith(ctx, phase, st, &doneStep{step: st})
}

// stepWith runs st and records it; d receives the undo of a step that
// has one.
func (s *state) stepWith(ctx context.Context, phase string, st *plan.Step, d *doneStep) error {
	start := time.Now()
	err := s.do(ctx, st, d)
	s.record(phase, st.Kind, stepArg(st), err, time.Since(start))
	return err
}

func (s *state) do(ctx context.Context, st *plan.Step, d *doneStep) error {
	switch st.Kind {
	case plan.StepStop, plan.StepStart, plan.StepRestart, plan.StepReload:
		m := s.r.Systemd
		m.Timeout = orDefault(st.Timeout, DefaultUnitTimeout)
		switch st.Kind {
		case plan.StepStop:
			return m.Stop(ctx, st.Arg)
		case plan.StepStart:
			return m.Start(ctx, st.Arg)
		case plan.StepRestart:
			return m.Restart(ctx, st.Arg)
		}
		return m.Reload(ctx, st.Arg)
	case plan.StepRun, plan.StepCheck:
		return s.command(ctx, st)
	case plan.StepFsfreeze:
		return s.freeze(ctx, st, d)
	case plan.StepBtrfsSnapshot:
		return s.btrfsSnapshot(ctx, st, d)
	}
	return fmt.Errorf("unknown step kind %q", st.Kind)
}

// command runs a run or check step: its argv, never through a shell, in
// a process group of its own that is killed when the step's timeout
// ends. Its output goes to the log; its first lines are in the error.
func (s *state) command(ctx context.Context, st *plan.Step) error {
	if len(st.Command) == 0 {
		return errors.New("no command given")
	}
	timeout := orDefault(st.Timeout, DefaultCommandTimeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %s", shortDuration(timeout)))
	defer cancel()
	cmd := exec.Command(st.Command[0], st.Command[1:]...)
	out := newLines(outputLines, func(line string) {
		s.log.Info("step output", "step", describe(st), "line", line)
	})
	var w io.Writer = out
	if s.r.Stderr != nil {
		w = io.MultiWriter(out, s.r.Stderr)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err := runProc(ctx, cmd, s.j.Limits, 5*time.Second)
	if err == nil {
		return nil
	}
	if first := out.First(); first != "" {
		return fmt.Errorf("%s: %w: %s", st.Command[0], err, first)
	}
	return fmt.Errorf("%s: %w", st.Command[0], err)
}

// freeze runs an fsfreeze step: it checks that the filesystem holds
// nothing rewind writes to during the backup, starts the watchdog, and
// freezes. The undo thaws and stops the watchdog; it fails when the
// window ended first (the runner's own timer thawed).
func (s *state) freeze(ctx context.Context, st *plan.Step, d *doneStep) error {
	mnt := filepath.Clean(st.Arg)
	max := orDefault(st.Max, DefaultFreezeMax)
	if err := s.checkFreezable(mnt); err != nil {
		return err
	}
	// The watchdog starts before the freeze, so that it is loaded and
	// running whatever the freeze blocks. It has a session of its own:
	// killing this process or its group leaves it running.
	wd := exec.Command(s.r.bin(), "internal-thaw", "--after", max.String(), "--pid", fmt.Sprint(os.Getpid()), mnt)
	wd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := wd.Start(); err != nil {
		return fmt.Errorf("start the thaw watchdog: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = wd.Wait()
	}()
	stopWatchdog := func() { _ = wd.Process.Signal(syscall.SIGTERM) }
	if err := fsfreeze.Freeze(mnt); err != nil {
		stopWatchdog()
		return err
	}
	frozen := time.Now()
	var expired atomic.Bool
	timer := time.AfterFunc(max, func() {
		expired.Store(true)
		if err := fsfreeze.Thaw(mnt); err != nil {
			s.log.Error("thaw at the end of the freeze window", "mount", mnt, "err", err)
		}
	})
	s.log.Info("frozen", "mount", mnt, "max", max)
	d.undo = func(context.Context) error {
		timer.Stop()
		err := fsfreeze.Thaw(mnt)
		stopWatchdog()
		if err != nil {
			return err
		}
		s.log.Info("thawed", "mount", mnt, "frozen_for", time.Since(frozen).Round(time.Millisecond))
		if expired.Load() {
			return fmt.Errorf("%s was thawed at the end of its freeze window (max %s) before the backup was taken: what was read after that may be inconsistent", mnt, shortDuration(max))
		}
		return nil
	}
	return nil
}

// checkFreezable refuses to freeze "/", or a filesystem holding the
// repositories, rewind's cache, state or temporary folder: the backup
// would block on its own writes.
func (s *state) checkFreezable(mnt string) error {
	if mnt == "/" {
		return errors.New("refusing to freeze /: rewind, its logs and the system write there")
	}
	dev, err := fsfreeze.Device(mnt)
	if err != nil {
		return err
	}
	type place struct{ what, path string }
	var places []place
	repos := []string{s.j.Repository}
	repos = append(repos, s.j.CopyTo...)
	for _, name := range repos {
		repo, err := s.r.repository(name)
		if err != nil {
			continue
		}
		if loc, err := location.Parse(repo.Location); err == nil && loc.Scheme == location.Local {
			places = append(places, place{"the repository " + repo.Location, loc.Path})
		}
	}
	if cache, err := os.UserCacheDir(); err == nil {
		places = append(places, place{"rewind's cache", filepath.Join(cache, "rewind")})
	}
	places = append(places, place{"the temporary folder (TMPDIR)", os.TempDir()})
	state := s.r.StateDir
	if state == "" && s.r.Plan.Agent != nil {
		state = s.r.Plan.Agent.StateDir
	}
	if state != "" {
		places = append(places, place{"rewind's state", state})
	}
	for _, p := range places {
		if pd, err := fsfreeze.Device(p.path); err == nil && pd == dev {
			return fmt.Errorf("refusing to freeze %s: it holds %s (%s), which the backup writes to", mnt, p.what, p.path)
		}
	}
	return nil
}

// btrfsSnapshot runs a btrfs_snapshot step: it deletes snapshots a killed
// run left, takes a read-only snapshot of the subvolume inside it, and
// maps the subvolume to it for the backup. The undo deletes it.
func (s *state) btrfsSnapshot(ctx context.Context, st *plan.Step, d *doneStep) error {
	subvol := filepath.Clean(st.Arg)
	for _, d := range s.done {
		if m := filepath.Clean(d.step.Arg); d.step.Kind == plan.StepFsfreeze && !d.undone && (subvol == m || strings.HasPrefix(subvol, m+"/") || m == "/") {
			return fmt.Errorf("%s is on %s, which an earlier fsfreeze step froze: a btrfs snapshot cannot be taken on a frozen filesystem, and needs no freeze (it is atomic)", subvol, m)
		}
	}
	tool := btrfs.Tool{Bin: s.r.Btrfs}
	prefix := SnapshotPrefix + s.j.Name + "-"
	stale, _ := filepath.Glob(filepath.Join(subvol, prefix+"*"))
	for _, old := range stale {
		if err := tool.Delete(ctx, old); err != nil {
			return fmt.Errorf("delete the snapshot %s left by an earlier run: %w", old, err)
		}
		s.log.Warn("deleted a snapshot left by an earlier run", "snapshot", old)
	}
	snap := filepath.Join(subvol, prefix+s.r.now().UTC().Format("20060102T150405Z"))
	if err := tool.Snapshot(ctx, subvol, snap); err != nil {
		return err
	}
	s.readFrom = append(s.readFrom, subvol+"="+snap)
	d.undo = func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, DefaultUnitTimeout)
		defer cancel()
		return tool.Delete(ctx, snap)
	}
	return nil
}

// describe names a step for messages: "stop nginx.service",
// "run /usr/local/bin/check-site --quick".
func describe(st *plan.Step) string {
	if a := stepArg(st); a != "" {
		return st.Kind + " " + a
	}
	return st.Kind
}

// stepArg is what a step acts on: its Arg, or its command line.
func stepArg(st *plan.Step) string {
	if st.Arg != "" {
		return st.Arg
	}
	return strings.Join(st.Command, " ")
}

func orDefault(d plan.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return d.D()
	}
	return def
}
