package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// watchRun is a `rewind watch --json` that a section drives: the
// snapshot lines it prints are collected as they come.
type watchRun[S any] struct {
	cmd *exec.Cmd
	// LogPath holds its standard error; Launched is when it started.
	LogPath  string
	Launched time.Time
	logf     *os.File
	mu       sync.Mutex
	snaps    []S
	readDone chan struct{}
	stopped  bool
}

// startWatch starts bin with args (a watch with --json) in env, its
// standard error written to logPath; a line of its output that decodes
// into an S that valid accepts is a snapshot. Stop it, or Kill it on the
// way out.
func startWatch[S any](ctx context.Context, bin string, env []string, logPath string, args []string, valid func(S) bool) (*watchRun[S], error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Stderr = env, logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	w := &watchRun[S]{cmd: cmd, LogPath: logPath, logf: logf, readDone: make(chan struct{}), Launched: time.Now()}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		defer close(w.readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var s S
			if json.Unmarshal(sc.Bytes(), &s) == nil && valid(s) {
				w.mu.Lock()
				w.snaps = append(w.snaps, s)
				w.mu.Unlock()
			}
		}
	}()
	return w, nil
}

// Snaps are the snapshots printed so far.
func (w *watchRun[S]) Snaps() []S {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.snaps)
}

// Count is how many snapshots were printed so far.
func (w *watchRun[S]) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.snaps)
}

// Pid is the watch's process ID.
func (w *watchRun[S]) Pid() int { return w.cmd.Process.Pid }

// Exited says whether the watch is gone.
func (w *watchRun[S]) Exited() bool { return w.cmd.ProcessState != nil || !alive(w.Pid()) }

// Stop asks the watch to stop (SIGTERM), reads the rest of its output and
// returns how it exited.
func (w *watchRun[S]) Stop() error {
	w.cmd.Process.Signal(syscall.SIGTERM)
	return w.end()
}

// Kill kills the watch unless it was stopped.
func (w *watchRun[S]) Kill() {
	if !w.stopped {
		w.cmd.Process.Signal(syscall.SIGKILL)
		w.end()
	}
}

func (w *watchRun[S]) end() error {
	<-w.readDone
	err := w.cmd.Wait()
	w.stopped = true
	w.logf.Close()
	return err
}
