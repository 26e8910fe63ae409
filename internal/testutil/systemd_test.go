package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdPID1 boots a systemd as PID 1 of a private namespace, starts
// a service there, and checks what it may touch of the host: only cgroup
// v2 is mounted inside (its own cgroup), /usr and /sys are read-only, no
// /run/systemd/system appears on the host, and a file written inside is
// seen in Shared.
func TestSystemdPID1(t *testing.T) {
	hostHadSystemd := dirExists("/run/systemd/system")
	ns := SystemdPID1(t)
	if got := strings.TrimSpace(ns.Exec(t, "cat", "/proc/1/comm")); got != "systemd" {
		t.Errorf("PID 1 inside is %q, want systemd", got)
	}
	ns.InstallUnit(t, "rwtest-sleep.service", "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/usr/bin/sleep infinity\n")
	ns.Exec(t, "systemctl", "start", "rwtest-sleep.service")
	if got := strings.TrimSpace(ns.Exec(t, "systemctl", "is-active", "rwtest-sleep.service")); got != "active" {
		t.Errorf("is-active says %q", got)
	}
	// The kernel lists the v1 hierarchies too; systemd works in v2 only,
	// rooted at its own cgroup.
	if cg := ns.Exec(t, "cat", "/proc/1/cgroup"); !strings.Contains(cg, "\n0::/init.scope\n") {
		t.Errorf("PID 1's cgroups inside:\n%s\nwant 0::/init.scope", cg)
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", ns.PID))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		target, opts := f[4], f[5]
		if strings.Contains(line, " - cgroup ") {
			t.Errorf("a cgroup v1 hierarchy is mounted inside: %s", line)
		}
		if (target == "/usr" || target == "/sys") && !strings.HasPrefix(opts, "ro") {
			t.Errorf("%s is writable inside: %s", target, line)
		}
	}
	ns.Exec(t, "sh", "-c", "echo inside > "+filepath.Join(ns.Shared, "marker"))
	if b, err := os.ReadFile(filepath.Join(ns.Shared, "marker")); err != nil || string(b) != "inside\n" {
		t.Errorf("marker: %q, %v", b, err)
	}
	if !hostHadSystemd && dirExists("/run/systemd/system") {
		t.Errorf("/run/systemd/system appeared on the host")
	}
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
