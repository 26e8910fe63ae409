// Package systemd wraps systemctl(1): the plan's unit steps (stop, start,
// restart, reload), `plan validate`'s "is this unit known", and
// `agent install`. It is the only place rewind runs systemctl.
package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ErrNoSystemd means no systemd service manager is running (systemd is
// not PID 1, as in most containers), so units cannot be managed here.
var ErrNoSystemd = errors.New("no systemd service manager is running on this machine")

// DefaultTimeout bounds one systemctl call when the caller gives none.
const DefaultTimeout = 90 * time.Second

// Manager runs systemctl. The zero Manager uses "systemctl" from PATH and
// the system manager.
type Manager struct {
	// Bin is the systemctl binary ("" = "systemctl").
	Bin string
	// User talks to the user's manager (systemctl --user).
	User bool
	// Timeout bounds each call (0 = DefaultTimeout).
	Timeout time.Duration
}

// Running reports whether a systemd manager runs: /run/systemd/system
// exists only when systemd is PID 1 (sd_booted(3)).
func Running() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// Stop stops unit and waits for it to be stopped.
func (m Manager) Stop(ctx context.Context, unit string) error {
	_, err := m.run(ctx, "stop", unit)
	return err
}

// Start starts unit and waits for it to be up.
func (m Manager) Start(ctx context.Context, unit string) error {
	_, err := m.run(ctx, "start", unit)
	return err
}

// Restart restarts unit.
func (m Manager) Restart(ctx context.Context, unit string) error {
	_, err := m.run(ctx, "restart", unit)
	return err
}

// Reload asks unit to reload its configuration.
func (m Manager) Reload(ctx context.Context, unit string) error {
	_, err := m.run(ctx, "reload", unit)
	return err
}

// DaemonReload makes the manager read changed unit files.
func (m Manager) DaemonReload(ctx context.Context) error {
	_, err := m.run(ctx, "daemon-reload")
	return err
}

// Enable enables unit, and starts it too when now is set.
func (m Manager) Enable(ctx context.Context, unit string, now bool) error {
	args := []string{"enable", unit}
	if now {
		args = []string{"enable", "--now", unit}
	}
	_, err := m.run(ctx, args...)
	return err
}

// Active reports whether unit is active.
func (m Manager) Active(ctx context.Context, unit string) (bool, error) {
	out, err := m.run(ctx, "is-active", unit)
	state := strings.TrimSpace(out)
	if err != nil && state == "" {
		return false, err
	}
	return state == "active" || state == "reloading", nil
}

// Known reports whether the manager knows unit: it has a unit file or is
// loaded. A unit that is "not-found" is unknown.
func (m Manager) Known(ctx context.Context, unit string) (bool, error) {
	out, err := m.run(ctx, "show", "--property=LoadState", "--value", unit)
	if err != nil {
		return false, err
	}
	state := strings.TrimSpace(out)
	return state != "" && state != "not-found", nil
}

// run calls systemctl with args and returns its standard output. A
// failure names the command and carries systemctl's own message.
func (m Manager) run(ctx context.Context, args ...string) (string, error) {
	if !Running() && !m.User && m.Bin == "" {
		return "", fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), ErrNoSystemd)
	}
	bin := m.Bin
	if bin == "" {
		bin = "systemctl"
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := args
	if m.User {
		full = append([]string{"--user"}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return stdout.String(), fmt.Errorf("systemctl %s: no answer within %s", strings.Join(args, " "), timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.String(), fmt.Errorf("systemctl %s: %s", strings.Join(args, " "), msg)
	}
	return stdout.String(), nil
}
