package inventory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/progpath"
)

// ErrNoTool: the program is not installed.
var ErrNoTool = errors.New("program not found")

// Runner runs one external program with an argument list and returns its
// standard output. A program that is not installed gives an error
// wrapping ErrNoTool; one that exits non-zero an *ExitError.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExitError is a program that ran and failed.
type ExitError struct {
	Name   string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("%s exited with status %d", e.Name, e.Code)
	}
	return fmt.Sprintf("%s exited with status %d: %s", e.Name, e.Code, msg)
}

// ExecRunner runs programs found in PATH or in the sbin directories (a
// user's PATH may not lead to sfdisk), each killed after Timeout.
type ExecRunner struct {
	Timeout time.Duration // 0: 30s
}

// lookPath finds name in PATH, then in /usr/sbin and /sbin.
func lookPath(name string) (string, error) {
	if p := progpath.Find(name, slices.Concat(progpath.Sbin, []string{"/usr/bin", "/bin"})); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%s: %w", name, ErrNoTool)
}

// Run runs name with args, with the C locale so that the output parsed is
// the same everywhere.
func (x ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	p, err := lookPath(name)
	if err != nil {
		return nil, err
	}
	timeout := x.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("%s: killed after %s", name, timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.Bytes(), &ExitError{Name: name, Code: ee.ExitCode(), Stderr: stderr.String()}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out.Bytes(), nil
}

// exitCode is the status of a program that ran and failed, or -1.
func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}
