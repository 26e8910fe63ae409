package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/plan"
)

// DefaultMarker is the boot marker of a drill whose probes name none: a
// login prompt on the serial console.
const DefaultMarker = "login:"

// mismatchWait is how long a probe whose service answers wrongly (a
// wrong status or body) is retried: long enough for a service that is
// still starting, short of the drill's whole timeout.
var mismatchWait = 30 * time.Second

// agentWait is how long a unit probe waits for the guest agent to
// answer once the guest has booted, before it says qemu-ga is missing.
var agentWait = 60 * time.Second

// tryProbe runs p once against vm.
func tryProbe(ctx context.Context, vm *VM, p plan.Probe) error {
	switch p.Kind {
	case plan.ProbeMarker:
		return vm.seen(p.Text)
	case plan.ProbeTCP:
		return tryTCP(ctx, vm, p.Port)
	case plan.ProbeHTTP:
		return tryHTTP(ctx, vm, p)
	case plan.ProbeUnit:
		a, err := dialAgent(ctx, vm.Agent, 5*time.Second)
		if err != nil {
			return err
		}
		defer a.Close()
		return a.UnitActive(ctx, p.Text)
	}
	return fmt.Errorf("unknown probe kind %q", p.Kind)
}

// seen reports whether text is on the serial console yet.
func (vm *VM) seen(text string) error {
	b, err := os.ReadFile(vm.Serial)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), text) {
		return fmt.Errorf("%q not on the serial console", text)
	}
	return nil
}

func (vm *VM) hostAddr(port int) (string, error) {
	hp, ok := vm.Forwarded[port]
	if !ok {
		return "", &giveUp{fmt.Errorf("guest port %d is not forwarded", port)}
	}
	return fmt.Sprintf("127.0.0.1:%d", hp), nil
}

// tryTCP connects to the guest's port. QEMU's user network accepts a
// forwarded connection before it knows whether the guest does, and
// closes it at once when the guest refuses: a connection that stays open
// (or sends data) for a moment is one the guest took.
func tryTCP(ctx context.Context, vm *VM, port int) error {
	addr, err := vm.hostAddr(port)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to guest port %d: %w", port, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	switch {
	case n > 0, errors.As(err, &ne) && ne.Timeout():
		return nil
	case err != nil:
		return fmt.Errorf("guest port %d closed the connection at once: nothing listens there yet", port)
	}
	return nil
}

// tryHTTP gets p.Path from the guest's p.Port and checks the answer.
func tryHTTP(ctx context.Context, vm *VM, p plan.Probe) error {
	addr, err := vm.hostAddr(p.Port)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.Path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("GET %s on guest port %d: %w", p.Path, p.Port, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case p.Status != 0 && resp.StatusCode != p.Status:
		return &probeMismatch{fmt.Sprintf("GET %s answered %s, want %d", p.Path, resp.Status, p.Status)}
	case p.Status == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299):
		return &probeMismatch{fmt.Sprintf("GET %s answered %s, want a 2xx status", p.Path, resp.Status)}
	case p.Text != "" && !strings.Contains(string(body), p.Text):
		return &probeMismatch{fmt.Sprintf("GET %s answered %s without %q in its body (it began %q)", p.Path, resp.Status, p.Text, excerpt(body, 80))}
	}
	return nil
}

// probeMismatch is an answer that came but was wrong; the probe still
// retries (the service may be starting) and reports it at the end.
type probeMismatch struct{ msg string }

func (e *probeMismatch) Error() string { return e.msg }

func excerpt(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// runProbe retries p until it passes, ctx ends or the guest stops. A
// unit probe gives up after agentWait when no guest agent answers, and
// a probe answered wrongly after mismatchWait of wrong answers.
func runProbe(ctx context.Context, vm *VM, p plan.Probe) error {
	start := time.Now()
	var firstWrong time.Time
	every := 250 * time.Millisecond
	if p.Kind == plan.ProbeUnit {
		every = time.Second
	}
	// Each try waits for an answer for 1 s, then 2, 4, up to 10 s: QEMU's
	// user network accepts a connection while the guest's network is
	// still down, and nothing answers it, so early tries must end soon
	// for the probe to pass close to the moment the service does; a
	// slow service still gets its 10 s later on.
	wait := time.Second
	return vm.waitFor(ctx, every, func(c context.Context) error {
		c, cancel := context.WithTimeout(c, wait)
		defer cancel()
		wait = min(2*wait, 10*time.Second)
		err := tryProbe(c, vm, p)
		if errors.Is(err, ErrNoAgent) && time.Since(start) >= agentWait {
			return &giveUp{err}
		}
		var wrong *probeMismatch
		if errors.As(err, &wrong) {
			if firstWrong.IsZero() {
				firstWrong = time.Now()
			}
			if time.Since(firstWrong) >= mismatchWait {
				return &giveUp{err}
			}
		}
		return err
	})
}

// giveUp ends waitFor's retries with its error.
type giveUp struct{ err error }

func (g *giveUp) Error() string { return g.err.Error() }
func (g *giveUp) Unwrap() error { return g.err }
