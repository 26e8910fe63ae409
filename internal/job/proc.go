package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/plan"
)

// killGrace is how long a process group gets between SIGTERM and
// SIGKILL when its time is up: enough for a rewind child to release its
// lock.
const killGrace = 10 * time.Second

// errTimedOut marks a process stopped because its context ended.
var errTimedOut = errors.New("stopped")

// stoppedError is the error of a process stopped because its context
// ended: it reads as the context's cause ("stopped after max_runtime 2h",
// "timed out after 5m") and matches errTimedOut.
type stoppedError struct{ cause error }

func (e *stoppedError) Error() string   { return e.cause.Error() }
func (e *stoppedError) Unwrap() []error { return []error{e.cause, errTimedOut} }

// runProc runs cmd (not started yet) in a process group of its own,
// throttled by l. When ctx ends first, the whole group gets SIGTERM, then
// SIGKILL after grace, and the error wraps errTimedOut and ctx's error.
func runProc(ctx context.Context, cmd *exec.Cmd, l *plan.Limits, grace time.Duration) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild that keeps the output pipes open must not hold the
	// step past its process's end.
	cmd.WaitDelay = 2 * time.Second
	if err := startThrottled(cmd, l); err != nil {
		return err
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}()
	err := cmd.Wait()
	close(done)
	wg.Wait()
	if ctx.Err() != nil {
		// What is left of the group goes too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return &stoppedError{context.Cause(ctx)}
	}
	return err
}

// startThrottled starts cmd with the niceness and I/O priority of l.
// They are set on a thread of this process that is used only to start
// cmd and then ends, so that cmd inherits them from its very first
// instruction (every thread it makes too), and rewind itself keeps its
// own: niceness and I/O priority belong to threads on Linux, and setting
// them on a running Go child would miss the threads it already has.
func startThrottled(cmd *exec.Cmd, l *plan.Limits) error {
	if l == nil || (l.Nice == nil && l.IONice == "") {
		return cmd.Start()
	}
	ioprio, err := parseIONice(l.IONice)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and its
		// priorities with it.
		runtime.LockOSThread()
		tid := unix.Gettid()
		if l.Nice != nil {
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, *l.Nice); err != nil {
				errc <- fmt.Errorf("nice %d: %w", *l.Nice, err)
				return
			}
		}
		if ioprio >= 0 {
			if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(ioprio)); e != 0 {
				errc <- fmt.Errorf("ionice %s: %w", l.IONice, e)
				return
			}
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// ioprio_set(2) values (linux/ioprio.h).
const (
	ioprioWhoProcess = 1
	ioprioClassShift = 13
	ioprioClassRT    = 1
	ioprioClassBE    = 2
	ioprioClassIdle  = 3
)

// parseIONice reads Limits.IONice ("idle", "best-effort[:0-7]",
// "realtime[:0-7]"; the level defaults to 4) into an ioprio value; ""
// gives -1, meaning unchanged.
func parseIONice(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	class, level, hasLevel := strings.Cut(s, ":")
	n := 4
	if hasLevel {
		var err error
		if n, err = strconv.Atoi(level); err != nil || n < 0 || n > 7 {
			return 0, fmt.Errorf("ionice %q: the level is 0 to 7", s)
		}
	}
	switch class {
	case "idle":
		if hasLevel {
			return 0, fmt.Errorf("ionice %q: idle takes no level", s)
		}
		return ioprioClassIdle << ioprioClassShift, nil
	case "best-effort":
		return ioprioClassBE<<ioprioClassShift | n, nil
	case "realtime":
		return ioprioClassRT<<ioprioClassShift | n, nil
	}
	return 0, fmt.Errorf("ionice %q: use idle, best-effort[:0-7] or realtime[:0-7]", s)
}

// tail keeps the last max lines written to it, and the first ones.
type lines struct {
	mu    sync.Mutex
	head  []string
	tail  []string
	part  string
	max   int
	count int
	each  func(line string)
}

func newLines(max int, each func(string)) *lines { return &lines{max: max, each: each} }

func (t *lines) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.part + string(p)
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		t.add(s[:i])
		s = s[i+1:]
	}
	t.part = s
	return len(p), nil
}

// add records one line; t.mu must be held.
func (t *lines) add(line string) {
	line = strings.TrimRight(line, "\r")
	t.count++
	if len(t.head) < t.max {
		t.head = append(t.head, line)
	}
	t.tail = append(t.tail, line)
	if len(t.tail) > t.max {
		t.tail = t.tail[1:]
	}
	if t.each != nil {
		t.each(line)
	}
}

// flush ends an unterminated last line.
func (t *lines) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.part != "" {
		t.add(t.part)
		t.part = ""
	}
}

// First returns up to max first lines, joined.
func (t *lines) First() string {
	t.flush()
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(nonEmpty(t.head), "\n")
}

// Last returns up to max last lines, joined.
func (t *lines) Last() string {
	t.flush()
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(nonEmpty(t.tail), "\n")
}

func nonEmpty(ls []string) []string {
	var out []string
	for _, l := range ls {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// teeTo returns w, or io.Discard for nil.
func teeTo(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
