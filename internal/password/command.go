package password

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stderrTail is how much of a failing command's standard error goes into
// the error.
const stderrTail = 2048

// waitAfterKill bounds the wait for the command's output to close after
// its process group was killed, in case a descendant left the group.
const waitAfterKill = 2 * time.Second

// RunCommand runs the command that s names with sh -c, in a process group
// of its own, and returns the first line of its standard output. If it
// does not finish within opt.Timeout, or ctx ends, the whole group is
// killed (SIGKILL): a command that forks a helper leaves nothing behind.
// A command that fails, times out or prints no password is an error that
// names it; a failing command's standard error is quoted in the error.
func RunCommand(ctx context.Context, s Setting, opt Options) ([]byte, error) {
	if opt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opt.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", s.Value)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's ID is the shell's PID (Setpgid with Pgid 0).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitAfterKill
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	what := fmt.Sprintf("password command `%s` (from %s)", s.Value, s.Name)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("%w: %s did not finish within %v and was killed with its child processes; make it print the password sooner, or allow it longer with --password-timeout or REWIND_PASSWORD_TIMEOUT", ErrTimeout, what, opt.Timeout)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%s: %w", what, ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("%s failed: %w%s", what, err, quoteStderr(stderr.Bytes()))
	}
	if opt.Stderr != nil && stderr.Len() > 0 {
		_, _ = opt.Stderr.Write(stderr.Bytes())
	}
	if blank(stdout.Bytes()) {
		return nil, fmt.Errorf("%w: %s printed no password: it must print the password on the first line of its standard output%s", ErrEmpty, what, quoteStderr(stderr.Bytes()))
	}
	pw := firstLine(stdout.Bytes())
	if blank(pw) {
		return nil, fmt.Errorf("%w: the first line that %s printed is blank: the password must be on the first line", ErrEmpty, what)
	}
	return pw, nil
}

// quoteStderr returns ": its standard error: ..." with the end of b, or
// nothing for an empty b.
func quoteStderr(b []byte) string {
	text := strings.TrimSpace(string(b))
	if text == "" {
		return ""
	}
	if len(text) > stderrTail {
		text = "…" + text[len(text)-stderrTail:]
	}
	return "; its standard error: " + text
}
