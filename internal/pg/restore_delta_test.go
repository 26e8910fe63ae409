package pg

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCheckDeltaTarget: only a stopped data directory is accepted.
func TestCheckDeltaTarget(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDeltaTarget(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing: %v", err)
	}
	if err := CheckDeltaTarget(dir); err == nil || !strings.Contains(err.Error(), "not a PostgreSQL data directory") {
		t.Errorf("no PG_VERSION: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckDeltaTarget(dir); err != nil {
		t.Errorf("stopped: %v", err)
	}
	pid := filepath.Join(dir, "postmaster.pid")
	os.WriteFile(pid, []byte(strconv.Itoa(os.Getpid())+"\n/data\n"), 0o600)
	if err := CheckDeltaTarget(dir); !errors.Is(err, ErrClusterRunning) {
		t.Errorf("live postmaster.pid: %v", err)
	}
	// A process that has ended: its PID is free.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pid, []byte(strconv.Itoa(c.Process.Pid)+"\n"), 0o600)
	if err := CheckDeltaTarget(dir); err != nil {
		t.Errorf("stale postmaster.pid: %v", err)
	}
	os.WriteFile(pid, []byte("garbage\n"), 0o600)
	if err := CheckDeltaTarget(dir); err == nil || !strings.Contains(err.Error(), "does not start with a process ID") {
		t.Errorf("garbage postmaster.pid: %v", err)
	}
}

// FuzzPostmasterPID: any postmaster.pid gives a PID, 0 or an error,
// never a panic or a negative PID.
func FuzzPostmasterPID(f *testing.F) {
	f.Add([]byte("1234\n/var/lib/postgresql\n"))
	f.Add([]byte(""))
	f.Add([]byte("-1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "postmaster.pid")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		pid, err := postmasterPID(p)
		if pid < 0 || (err != nil && pid != 0) {
			t.Fatalf("pid %d err %v", pid, err)
		}
	})
}
