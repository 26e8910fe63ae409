package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// FindBin finds the PostgreSQL program name for server major version
// major: in binDir when given, else in Debian's /usr/lib/postgresql/MAJOR/bin
// (where pg_ctl lives, outside PATH), else in PATH.
func FindBin(name string, major int, binDir string) (string, error) {
	if binDir != "" {
		p := filepath.Join(binDir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: not in --pg-bindir %s: %w", name, binDir, err)
		}
		return p, nil
	}
	if major > 0 {
		p := filepath.Join("/usr/lib/postgresql", strconv.Itoa(major), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s: not found in /usr/lib/postgresql/%d/bin nor in PATH; install the PostgreSQL server programs or give --pg-bindir", name, major)
	}
	return p, nil
}

// runAs runs bin in the folder dir ("": the current one) as the OS user
// cred (nil: the current user), and returns its standard output;
// its standard error goes into the error.
func runAs(ctx context.Context, cred *syscall.Credential, dir, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = lastLines(stdout.String(), 20)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return stdout.String(), &ToolError{Tool: filepath.Base(bin), Code: ee.ExitCode(), Stderr: msg}
		}
		return stdout.String(), fmt.Errorf("run %s: %w", filepath.Base(bin), err)
	}
	return stdout.String(), nil
}

// ToolError is a PostgreSQL program that exited with a status other
// than 0.
type ToolError struct {
	Tool   string
	Code   int
	Stderr string
}

func (e *ToolError) Error() string {
	return fmt.Sprintf("%s exited with status %d: %s", e.Tool, e.Code, e.Stderr)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Amcheck is the result of pg_amcheck, recorded in a base backup.
type Amcheck struct {
	// OK is true when pg_amcheck found nothing wrong.
	OK bool `json:"ok"`
	// Output is the end of what it reported (its findings), at most
	// 4 KiB.
	Output string `json:"output,omitempty"`
}

// RunAmcheck runs pg_amcheck on every database of the server reached by
// dsn (empty: the PG* environment), installing the amcheck extension
// where it is missing, and checking tables and B-tree indexes with their
// parents. A corruption found is an Amcheck with OK false; an error is
// returned only when pg_amcheck could not run or connect.
func RunAmcheck(ctx context.Context, bin, dsn string) (*Amcheck, error) {
	args := []string{"--all", "--install-missing", "--heapallindexed", "--parent-check"} // progress is off unless --progress (PostgreSQL 15 has no --no-progress)
	if dsn != "" {
		args = append(args, "--maintenance-db="+dsn)
	}
	out, err := runAs(ctx, nil, "", bin, args...)
	var te *ToolError
	switch {
	case err == nil:
		return &Amcheck{OK: true, Output: tail(out, 4096)}, nil
	case errors.As(err, &te) && te.Code == 2:
		// pg_amcheck's status 2: it ran and found corruption.
		return &Amcheck{OK: false, Output: tail(out+te.Stderr, 4096)}, nil
	}
	return nil, fmt.Errorf("pg_amcheck: %w", err)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// StartServer runs pg_ctl start -w on the data directory as the OS user
// cred (nil: the current user), logging to logFile, and waits until the
// server accepts connections. settings ("-c name=value") are given to
// the server for this start only.
func StartServer(ctx context.Context, pgctl, dataDir, logFile string, cred *syscall.Credential, settings ...string) error {
	args := []string{"start", "-w", "-t", "600", "-D", dataDir, "-l", logFile}
	if len(settings) > 0 {
		args = append(args, "-o", strings.Join(settings, " "))
	}
	// In the data directory: the cluster's user may not enter ours.
	_, err := runAs(ctx, cred, dataDir, pgctl, args...)
	if err != nil {
		b, _ := os.ReadFile(logFile)
		return fmt.Errorf("start the restored cluster: %w\nlast lines of its log (%s):\n%s", err, logFile, lastLines(string(b), 15))
	}
	return nil
}
