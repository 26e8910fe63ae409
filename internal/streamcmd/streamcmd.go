// Package streamcmd runs a user's command whose standard output is a
// stream to back up (`rewind backup --stdin-from-command -- CMD ARGS...`),
// and says clearly how it ended.
//
// The command is run directly, never through a shell, in its own process
// group, which is killed when the context is cancelled. Its standard error
// is kept, its last lines only, so that a failure can be explained.
package streamcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// tailLines is how many lines of standard error are kept.
const tailLines = 20

// tailBytes bounds the kept standard error whatever its lines.
const tailBytes = 8 << 10

// Cmd is a started command.
type Cmd struct {
	argv   []string
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr tail
}

// Start starts argv[0] with the arguments argv[1:].
func Start(ctx context.Context, argv []string) (*Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("no command given: put it after --, as in -- pg_dump mydb")
	}
	c := &Cmd{argv: argv}
	c.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.cmd.Cancel = func() error {
		// The whole group: a shell script's children too.
		return syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdout, err = c.cmd.StdoutPipe(); err != nil {
		return nil, fmt.Errorf("command %s: %w", c.Name(), err)
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start command %s: %w", c.Name(), err)
	}
	return c, nil
}

// Name is the command as a user would have typed it.
func (c *Cmd) Name() string { return strings.Join(c.argv, " ") }

// Stdout is the command's standard output.
func (c *Cmd) Stdout() io.Reader { return c.stdout }

// Stderr returns the last lines the command wrote to standard error.
func (c *Cmd) Stderr() string { return c.stderr.String() }

// Wait waits for the command to exit, after its output has been read to
// the end. A command that did not exit with status 0 gives an *ExitError.
func (c *Cmd) Wait() error {
	err := c.cmd.Wait()
	if err == nil {
		return nil
	}
	e := &ExitError{Command: c.Name(), Stderr: c.stderr.String(), Status: -1}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal().String()
		} else {
			e.Status = ee.ExitCode()
		}
	} else {
		e.Err = err
	}
	return e
}

// ExitError says that the command failed, how, and what it said last.
type ExitError struct {
	Command string
	// Status is the exit status, or -1 when it was killed by Signal or
	// could not be waited for (Err).
	Status int
	Signal string
	Err    error
	// Stderr holds the last lines of its standard error.
	Stderr string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	switch {
	case e.Signal != "":
		fmt.Fprintf(&b, "command %s was killed by signal %s", e.Command, e.Signal)
	case e.Err != nil:
		fmt.Fprintf(&b, "command %s: %v", e.Command, e.Err)
	default:
		fmt.Fprintf(&b, "command %s exited with status %d", e.Command, e.Status)
	}
	if s := strings.TrimRight(e.Stderr, "\n"); s != "" {
		b.WriteString("; the last lines of its standard error:\n  ")
		b.WriteString(strings.ReplaceAll(s, "\n", "\n  "))
	} else {
		b.WriteString(" (it wrote nothing to standard error)")
	}
	return b.String()
}

func (e *ExitError) Unwrap() error { return e.Err }

// tail keeps the last tailLines lines (at most tailBytes) written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4*tailBytes {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
