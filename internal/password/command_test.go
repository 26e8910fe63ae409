package password

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func command(cmd string) Setting {
	return Setting{Name: "--password-command", Kind: Command, Flag: true, Value: cmd}
}

func TestRunCommand(t *testing.T) {
	ctx := context.Background()
	var stderr bytes.Buffer
	pw, err := RunCommand(ctx, command(`printf 'hunter2\nsecond line\n'; echo 'token unlocked' >&2`), Options{Timeout: time.Minute, Stderr: &stderr})
	if err != nil || string(pw) != "hunter2" {
		t.Fatalf("got %q, %v", pw, err)
	}
	if !strings.Contains(stderr.String(), "token unlocked") {
		t.Errorf("a succeeding command's standard error was not passed on: %q", stderr.String())
	}
}

// TestRunCommandFails: a command that exits non-zero is named, with its
// exit status and its standard error.
func TestRunCommandFails(t *testing.T) {
	cmd := `echo 'vault is sealed' >&2; exit 7`
	_, err := RunCommand(context.Background(), command(cmd), Options{Timeout: time.Minute})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{cmd, "--password-command", "exit status 7", "vault is sealed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not contain %q", err, want)
		}
	}
	// Killed by a signal of its own.
	_, err = RunCommand(context.Background(), command(`kill -TERM $$`), Options{Timeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "signal") {
		t.Errorf("a command killed by a signal: %v", err)
	}
}

// TestRunCommandPrintsNothing: no output, or only blank output, is no
// password, said as such, not a wrong password.
func TestRunCommandPrintsNothing(t *testing.T) {
	for _, cmd := range []string{`true`, `printf '   \n\n'`, `echo; echo late-password`, `echo 'no secret here' >&2`} {
		_, err := RunCommand(context.Background(), command(cmd), Options{Timeout: time.Minute})
		if !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), cmd) {
			t.Errorf("%s: got %v, want ErrEmpty naming the command", cmd, err)
		}
	}
	_, err := RunCommand(context.Background(), command(`echo 'no secret here' >&2`), Options{Timeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "no secret here") {
		t.Errorf("the standard error of a command that printed nothing is not quoted: %v", err)
	}
}

// TestRunCommandTimeout runs commands that hang, one of them with a
// child in the background, and checks that each is killed at the
// timeout with its whole process group, and that the error names it.
func TestRunCommandTimeout(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	cases := []string{
		`sleep 600`,
		// A child that holds no pipe of ours: only killing the group
		// ends it.
		`sleep 700 </dev/null >/dev/null 2>&1 & echo $! > ` + pidFile + `; wait`,
		// A command that prints a partial line and then hangs.
		`printf 'almost'; sleep 800`,
	}
	for _, cmd := range cases {
		_ = os.Remove(pidFile)
		timeout := 300 * time.Millisecond
		_, err := RunCommand(context.Background(), command(cmd), Options{Timeout: timeout})
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("%s: got %v, want ErrTimeout", cmd, err)
			continue
		}
		for _, want := range []string{cmd, "--password-command", timeout.String(), "--password-timeout", "REWIND_PASSWORD_TIMEOUT"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not contain %q", err, want)
			}
		}
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
		}
	}
}

// TestRunCommandCanceled: an interrupted rewind (its context ends) kills
// the command too.
func TestRunCommandCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	_, err := RunCommand(ctx, command(`sleep 900`), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// waitGone waits until process pid has exited (it may stay a zombie
// until its new parent reaps it), and fails the test if it does not
// within a generous bound.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return // gone
		}
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("child process %d of the password command still runs after the timeout", pid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
