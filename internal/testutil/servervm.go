package testutil

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/qemu/uefi"
)

// ServerBootTimeout is how long ServerVM.WaitReady waits: a TCG boot of
// the server takes 10-20 s on an idle machine, much longer on a busy one.
const ServerBootTimeout = 4 * time.Minute

// ServerVM is a server booted under QEMU: its serial console, and its
// port 80 forwarded to 127.0.0.1:Port. It is killed when the test ends.
type ServerVM struct {
	Port    int
	Console *Console
	t       testing.TB
	cmd     *exec.Cmd
	done    chan error
	stderr  *bytes.Buffer
}

// RequireOVMF skips the test unless OVMF is installed (scripts/recovery.sh),
// or fails it under CI=true.
func RequireOVMF(t testing.TB) {
	t.Helper()
	for _, p := range []string{uefi.Code, uefi.Vars} {
		if _, err := os.Stat(p); err != nil {
			unavailable(t, "OVMF: %v (run scripts/recovery.sh as root: ovmf)", err)
		}
	}
}

// BootServer boots disk (raw or qcow2, found from its first bytes) under
// QEMU with 512 MiB (GRUB runs out of memory under OVMF with 256), the disk on virtio, a virtio NIC on QEMU's user
// network (restrict=on: no way out, only the forwarded port in) and the
// serial console on stdio. mode "uefi" boots through OVMF with a private
// copy of its variable store, "bios" through SeaBIOS. KVM is used when
// /dev/kvm opens, TCG otherwise. more are further disks (the data disk,
// raw or qcow2), each on its own virtio-blk without a boot index.
func BootServer(t testing.TB, disk, mode string, more ...string) *ServerVM {
	t.Helper()
	RequireQEMU(t)
	format, err := diskFormat(disk)
	if err != nil {
		t.Fatal(err)
	}
	port, err := freeTCPPort()
	if err != nil {
		t.Fatalf("a free port for the server's HTTP: %v", err)
	}
	args := []string{"-m", "512", "-display", "none", "-no-reboot", "-nodefaults",
		"-serial", "stdio", "-monitor", "none",
		// SeaBIOS prints only on VGA: with nothing to boot it resets
		// after a second, and -no-reboot makes QEMU exit.
		"-boot", "strict=on,reboot-timeout=1000",
		"-drive", "file=" + disk + ",format=" + format + ",if=none,id=disk0",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0"}
	for i, d := range more {
		f, err := diskFormat(d)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("disk%d", i+1)
		args = append(args, "-drive", "file="+d+",format="+f+",if=none,id="+id, "-device", "virtio-blk-pci,drive="+id)
	}
	args = append(args,
		"-netdev", fmt.Sprintf("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:80", port),
		"-device", "virtio-net-pci,netdev=net0,romfile=")
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		args = append(args, "-accel", "kvm")
	} else {
		args = append(args, "-accel", "tcg")
	}
	switch mode {
	case "bios":
	case "uefi":
		RequireOVMF(t)
		fw, err := uefi.Args(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, fw...)
	default:
		t.Fatalf("BootServer: mode %q, want bios or uefi", mode)
	}
	v := &ServerVM{Port: port, t: t, done: make(chan error, 1), stderr: &bytes.Buffer{}}
	v.cmd = exec.Command("qemu-system-x86_64", args...)
	in, err := v.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	v.cmd.Stderr = v.stderr
	if err := v.cmd.Start(); err != nil {
		unavailable(t, "QEMU: %v", err)
	}
	go func() { v.done <- v.cmd.Wait() }()
	v.Console = NewConsole(out, in)
	t.Cleanup(func() {
		v.Kill()
		if t.Failed() {
			t.Logf("server console (%s):\n%s\nQEMU: %s", mode, v.Console.Text(), v.stderr.String())
		}
	})
	return v
}

// WaitFor waits (at most d) for a console line containing marker that no
// earlier wait returned, and returns it from marker on; it fails the test
// with the console's text when none comes.
func (v *ServerVM) WaitFor(marker string, d time.Duration) string {
	v.t.Helper()
	return v.Console.Expect(v.t, marker, d)
}

// serverBootFailures are console lines that mean the boot will not
// reach ServerReady: the firmware found nothing to boot, GRUB failed,
// the kernel panicked or an init script gave up.
var serverBootFailures = []string{
	"No bootable option or device", // OVMF
	"EFI Internal Shell",           // OVMF fell back to its shell
	"Entering rescue mode",         // GRUB found no prefix or module
	"Failed to boot",               // GRUB: every menu entry failed
	"you need to load the kernel first",
	"Kernel panic",
	"REWIND-ERROR",
}

// WaitReady waits for ServerUp, ServerFstab and ServerReady and returns
// the hostname the server printed and whether its fstab mounted. It
// fails the test as soon as the console shows a failed boot.
func (v *ServerVM) WaitReady() (hostname string, fstabOK bool) {
	v.t.Helper()
	up := v.waitUnlessFailed(ServerUp, ServerBootTimeout)
	hostname = strings.TrimSpace(strings.TrimPrefix(up, ServerUp))
	fstab := v.waitUnlessFailed(ServerFstab, time.Minute)
	fstabOK = strings.TrimSpace(strings.TrimPrefix(fstab, ServerFstab)) == "ok"
	v.waitUnlessFailed(ServerReady, time.Minute)
	return hostname, fstabOK
}

// waitUnlessFailed is WaitFor, failing early on a serverBootFailures line.
func (v *ServerVM) waitUnlessFailed(marker string, d time.Duration) string {
	v.t.Helper()
	c := v.Console
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i, l := range c.all {
			if c.used[i] {
				continue
			}
			if j := strings.Index(l, marker); j >= 0 {
				c.used[i] = true
				c.mu.Unlock()
				return l[j:]
			}
			for _, f := range serverBootFailures {
				if strings.Contains(l, f) {
					c.mu.Unlock()
					v.t.Fatalf("the server's boot failed (%q) before %q; the console read:\n%s", f, marker, c.Text())
				}
			}
		}
		eof := c.eof
		c.mu.Unlock()
		if eof {
			v.t.Fatalf("QEMU exited before a line %q; the console read:\n%s", marker, c.Text())
		}
		select {
		case <-c.more:
		case <-deadline.C:
			v.t.Fatalf("no line %q within %v; the console read:\n%s", marker, d, c.Text())
		}
	}
}

// HTTPGet fetches path (such as "/") from the server's port 80 through
// the forwarded port and returns the body of a 200 answer. A refused or
// reset connection is tried again for a few seconds.
func (v *ServerVM) HTTPGet(path string) (string, error) {
	c := &http.Client{Timeout: 20 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", v.Port, path)
	resp, err := c.Get(url)
	for i := 0; err != nil && i < 10; i++ {
		time.Sleep(500 * time.Millisecond)
		resp, err = c.Get(url)
	}
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(body), nil
}

// Run runs a shell command line on the server (after ServerReady) and
// returns the lines it printed and its exit status.
func (v *ServerVM) Run(command string, d time.Duration) (lines []string, status string) {
	v.t.Helper()
	c := v.Console
	c.mu.Lock()
	from := len(c.all)
	c.mu.Unlock()
	c.Send(v.t, "run "+command)
	done := v.WaitFor("REWIND-SERVER-DONE ", d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.all[from:] {
		if strings.HasPrefix(l, "REWIND-SERVER-DONE ") {
			break
		}
		lines = append(lines, l)
	}
	return lines, strings.TrimPrefix(done, "REWIND-SERVER-DONE ")
}

// Log is everything the console printed so far.
func (v *ServerVM) Log() string { return v.Console.Text() }

// Poweroff asks the server to unmount and power off, and waits (at most
// d) for QEMU to exit.
func (v *ServerVM) Poweroff(d time.Duration) error {
	if _, err := fmt.Fprintln(v.Console.in, "poweroff"); err != nil {
		return fmt.Errorf("console: %v", err)
	}
	select {
	case err := <-v.done:
		v.done <- err
		if err != nil {
			return fmt.Errorf("qemu: %v: %s", err, v.stderr.String())
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("the server still runs %v after poweroff", d)
	}
}

// Kill stops QEMU at once and waits for it.
func (v *ServerVM) Kill() {
	if v.cmd.Process != nil {
		_ = v.cmd.Process.Kill()
	}
	err := <-v.done
	v.done <- err
}

// diskFormat is "qcow2" for a file starting with qcow2's magic, else "raw".
func diskFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b := make([]byte, 4)
	if _, err := io.ReadFull(f, b); err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	if string(b) == "QFI\xfb" {
		return "qcow2", nil
	}
	return "raw", nil
}

// freeTCPPort is a TCP port on 127.0.0.1 free at the time of the call.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
