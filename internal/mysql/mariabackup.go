package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
)

// The mariabackup wrapper: every run of the program goes through here,
// with an argv (never a shell) and the password in MYSQL_PWD (ConnOptions.ClientEnv),
// never on the command line.

// MariaBackupPackage is the Debian package that holds mariabackup.
const MariaBackupPackage = "mariadb-backup"

// FindMariaBackup returns the mariabackup program: path when given, else
// mariabackup or mariadb-backup in PATH or /usr/bin.
func FindMariaBackup(path string) (string, error) {
	if path != "" {
		fi, err := os.Stat(path)
		if err != nil || fi.IsDir() {
			return "", fmt.Errorf("mariabackup: %s is not a program (--mariabackup)", path)
		}
		return path, nil
	}
	for _, name := range []string{"mariabackup", "mariadb-backup"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("mariabackup not found in PATH: install it (Debian and Ubuntu: apt-get install %s), or give its path with --mariabackup", MariaBackupPackage)
}

var mariaBackupVersion = regexp.MustCompile(`(?:based on MariaDB server|Ver)\s+([0-9][0-9A-Za-z.\-]*)`)

// MariaBackupVersion runs `mariabackup --version` and returns
// "mariabackup 10.11.6-MariaDB" (or the first line it printed when it
// cannot be read).
func MariaBackupVersion(ctx context.Context, bin string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "--version")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w: %s", bin, err, strings.TrimSpace(string(out)))
	}
	if m := mariaBackupVersion.FindSubmatch(out); m != nil {
		return "mariabackup " + string(m[1]), nil
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}

// toolRun is a started mariabackup (or mariadb-dump): its standard output
// to read, the end of its standard error kept for messages.
type toolRun struct {
	name   string
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr *tailBuffer
	once   sync.Once
	waited bool
	err    error
}

// startTool starts bin with args and env added to the environment, in its
// own process group (killed with the context).
func startTool(ctx context.Context, bin string, args, env []string) (*toolRun, error) {
	t := &toolRun{name: filepath.Base(bin), stderr: &tailBuffer{max: 16 << 10}}
	t.cmd = exec.CommandContext(ctx, bin, args...)
	t.cmd.Env = append(os.Environ(), env...)
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.cmd.Cancel = func() error { return syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL) }
	t.cmd.Stderr = t.stderr
	var err error
	if t.stdout, err = t.cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if err := t.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.name, err)
	}
	return t, nil
}

// wait reaps the program (once) and says how it ended.
func (t *toolRun) wait() error {
	t.once.Do(func() {
		err := t.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = &ToolError{Tool: t.name, Code: ee.ExitCode(), Stderr: t.stderr.lastLines(15)}
		}
		t.err, t.waited = err, true
	})
	return t.err
}

// stop kills the program (its process group) and reaps it.
func (t *toolRun) stop() {
	if t.cmd.Process != nil && !t.waited {
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
	}
	_ = t.wait()
}

// ToolError is a program that exited with a status other than 0.
type ToolError struct {
	Tool   string
	Code   int
	Stderr string
}

func (e *ToolError) Error() string {
	if e.Code < 0 {
		return fmt.Sprintf("%s was killed: %s", e.Tool, e.Stderr)
	}
	return fmt.Sprintf("%s exited with status %d: %s", e.Tool, e.Code, e.Stderr)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// lastLines are the last n lines written, trimmed.
func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := bytes.Split(bytes.TrimSpace(t.b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// backupStreamArgs are mariabackup's arguments for a backup streamed to
// standard output: --parallel=1, so that each file's chunks come
// together (the stream is read file by file, xbstream.Files), the
// server's data directory, and tmp, a private folder where mariabackup
// keeps its few small files (and the redo log it copies during the
// backup, until it streams it at the end).
func backupStreamArgs(o ConnOptions, dataDir, tmp string) []string {
	args := o.ClientArgs() // --defaults-file, when set, must come first
	return append(args, "--backup", "--stream=xbstream", "--parallel=1",
		"--datadir="+dataDir, "--target-dir="+tmp, "--tmpdir="+tmp)
}

// Prepare runs `mariabackup --prepare` on the restored backup in dir:
// it applies the redo log copied during the backup, so that the data
// files are consistent at the backup's consistent point. useMemory, when
// set, is its --use-memory (the buffer pool it applies the log with,
// e.g. "1G"; mariabackup's default is 100M).
func Prepare(ctx context.Context, bin, dir, useMemory string) error {
	args := []string{"--prepare", "--target-dir=" + dir}
	if useMemory != "" {
		args = append(args, "--use-memory="+useMemory)
	}
	t, err := startTool(ctx, bin, args, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, t.stdout)
	if err := t.wait(); err != nil {
		return fmt.Errorf("mariabackup --prepare of %s: %w", dir, err)
	}
	return nil
}
