package testutil

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Console reads a guest's serial console line by line and lets a test
// wait for a line.
type Console struct {
	in   io.Writer
	mu   sync.Mutex
	all  []string
	used map[int]bool
	more chan struct{}
	eof  bool
}

// NewConsole reads lines from out and sends commands to in.
func NewConsole(out io.Reader, in io.Writer) *Console {
	c := &Console{in: in, used: map[int]bool{}, more: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := strings.TrimRight(sc.Text(), "\r")
			c.mu.Lock()
			c.all = append(c.all, l)
			c.mu.Unlock()
			c.wake()
		}
		c.mu.Lock()
		c.eof = true
		c.mu.Unlock()
		c.wake()
	}()
	return c
}

func (c *Console) wake() {
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// Expect waits (at most d) for a line containing s that no earlier
// Expect returned, read before or after the call, and returns it from s
// on; it fails the test with what was read when none comes.
func (c *Console) Expect(t testing.TB, s string, d time.Duration) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c.mu.Lock()
		for i, l := range c.all {
			if j := strings.Index(l, s); j >= 0 && !c.used[i] {
				c.used[i] = true
				c.mu.Unlock()
				return l[j:]
			}
		}
		eof := c.eof
		c.mu.Unlock()
		if eof {
			t.Fatalf("console closed before a line %q; it read:\n%s", s, c.Text())
		}
		select {
		case <-c.more:
		case <-timer.C:
			t.Fatalf("no line %q within %v; the console read:\n%s", s, d, c.Text())
		}
	}
}

// Send writes one command line to the guest.
func (c *Console) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := fmt.Fprintf(c.in, "%s\n", line); err != nil {
		t.Fatalf("console: send %q: %v", line, err)
	}
}

// Text is everything read so far.
func (c *Console) Text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.all, "\n")
}

// BootGuest starts QEMU (TCG) on disk, of format raw or qcow2, with the
// serial console on a Console; the guest is killed when the test ends.
// Wait for it to power off with the returned function.
func BootGuest(t testing.TB, disk, format string) (*Console, func(time.Duration) error) {
	t.Helper()
	q := RequireTool(t, "qemu-system-x86_64")
	cmd := exec.Command(q, "-machine", "accel=tcg", "-m", "256", "-display", "none",
		"-no-reboot", "-serial", "stdio", "-monitor", "none", "-nodefaults",
		"-drive", "file="+disk+",format="+format+",if=virtio")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	c := NewConsole(out, in)
	wait := func(d time.Duration) error {
		select {
		case err := <-done:
			done <- err
			if err != nil {
				return fmt.Errorf("qemu: %v: %s", err, stderr.String())
			}
			return nil
		case <-time.After(d):
			return fmt.Errorf("qemu still runs after %v", d)
		}
	}
	return c, wait
}
