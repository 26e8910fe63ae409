package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RequireQEMU skips the test unless qemu-system-x86_64 and qemu-img are
// here (scripts/qemu.sh installs them), or fails it under CI=true.
func RequireQEMU(t testing.TB) {
	t.Helper()
	for prog, pkg := range map[string]string{"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils"} {
		if _, err := exec.LookPath(prog); err != nil {
			unavailable(t, "%s not found (install %s: scripts/qemu.sh)", prog, pkg)
		}
	}
}

// QEMU is an emulator a test started, with its QMP socket and, when
// asked for, its first serial port written to a file. It is killed when
// the test ends.
type QEMU struct {
	Dir       string // private directory of the sockets and logs
	QMPSocket string
	SerialLog string // empty unless QEMUOptions.Serial
	cmd       *exec.Cmd
	exited    chan struct{}
	stderr    string
}

// QEMUOptions say how to start QEMU.
type QEMUOptions struct {
	// Args are added after rewind's own: -nodefaults -display none and
	// the QMP socket, e.g. "-machine", "none", "-blockdev", "...".
	Args []string
	// Serial writes the first serial port to SerialLog.
	Serial bool
}

// StartQEMU starts qemu-system-x86_64 (TCG unless KVM is usable) and
// waits until its QMP socket accepts connections.
func StartQEMU(t testing.TB, opt QEMUOptions) *QEMU {
	t.Helper()
	RequireQEMU(t)
	dir, err := os.MkdirTemp("", "rw-qemu-") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	q := &QEMU{Dir: dir, QMPSocket: filepath.Join(dir, "qmp.sock"), exited: make(chan struct{})}
	args := []string{"-nodefaults", "-display", "none", "-qmp", "unix:" + q.QMPSocket + ",server=on,wait=off"}
	if opt.Serial {
		q.SerialLog = filepath.Join(dir, "serial.log")
		args = append(args, "-serial", "file:"+q.SerialLog)
	}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		args = append(args, "-accel", "kvm")
	} else {
		args = append(args, "-accel", "tcg")
	}
	args = append(args, opt.Args...)
	errLog := filepath.Join(dir, "stderr.log")
	ef, err := os.Create(errLog)
	if err != nil {
		t.Fatal(err)
	}
	q.cmd = exec.Command("qemu-system-x86_64", args...)
	q.cmd.Stderr = ef
	q.cmd.Stdout = ef
	if err := q.cmd.Start(); err != nil {
		ef.Close()
		unavailable(t, "QEMU: start qemu-system-x86_64: %v", err)
	}
	go func() {
		_ = q.cmd.Wait()
		ef.Close()
		b, _ := os.ReadFile(errLog)
		q.stderr = strings.TrimSpace(string(b))
		close(q.exited)
	}()
	t.Cleanup(func() {
		q.Kill()
		if t.Failed() && q.stderr != "" {
			t.Logf("QEMU's output:\n%s", q.stderr)
		}
		_ = os.RemoveAll(dir)
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(q.QMPSocket); err == nil {
			return q
		}
		select {
		case <-q.exited:
			unavailable(t, "QEMU exited at start: %s", q.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU's QMP socket %s did not appear within 30s", q.QMPSocket)
		}
	}
}

// Kill kills QEMU at once (SIGKILL) and waits for it.
func (q *QEMU) Kill() {
	if q.cmd.Process != nil {
		_ = q.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-q.exited
}

// Exited is closed when QEMU has exited.
func (q *QEMU) Exited() <-chan struct{} { return q.exited }

// Output is what QEMU printed on standard output and error, once it
// has exited.
func (q *QEMU) Output() string { return q.stderr }

// Serial is what the guest has written to its first serial port so far.
func (q *QEMU) Serial() string {
	if q.SerialLog == "" {
		return ""
	}
	b, _ := os.ReadFile(q.SerialLog)
	return string(b)
}

// WaitSocket waits up to 30 seconds for the unix socket path to appear
// (a second -qmp socket QEMU creates after the first).
func WaitSocket(t testing.TB, path string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
	}
	t.Fatalf("socket %s did not appear within 30s", path)
}
