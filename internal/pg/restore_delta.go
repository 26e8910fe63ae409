package pg

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrClusterRunning: a delta restore found the cluster in its target
// running.
var ErrClusterRunning = errors.New("the cluster in the target is running")

// CheckDeltaTarget accepts, for a delta restore (rewind pg restore
// --delta), a data directory that exists and is stopped: it holds
// PG_VERSION, and its postmaster.pid, if any, names no live process. A
// stale postmaster.pid (a crashed server) is accepted: the restore
// removes it, as every file the base backup does not list.
func CheckDeltaTarget(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore --delta: %s does not exist; --delta restores over an existing data directory (without it, a new folder is made)", dir)
	}
	if err != nil {
		return fmt.Errorf("restore --delta: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("restore --delta: %s is not a folder", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		return fmt.Errorf("restore --delta: %s holds no PG_VERSION, so it is not a PostgreSQL data directory; --delta only rewrites one (give a new or empty folder without --delta)", dir)
	}
	pid, err := postmasterPID(filepath.Join(dir, "postmaster.pid"))
	if err != nil || pid == 0 {
		return err
	}
	if processAlive(pid) {
		return fmt.Errorf("%w: %s names process %d, which is alive; stop the cluster first (pg_ctl stop -D %s), then restore over it", ErrClusterRunning, filepath.Join(dir, "postmaster.pid"), pid, dir)
	}
	return nil
}

// postmasterPID reads the process ID on the first line of a
// postmaster.pid; 0 when the file does not exist.
func postmasterPID(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("restore --delta: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, nil // empty: a server that died while starting
	}
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	// Linux PIDs are at most 2^22: a larger number is not one (and would
	// wrap in kill(2)).
	if err != nil || pid <= 0 || pid > 1<<22 {
		return 0, fmt.Errorf("restore --delta: %s does not start with a process ID (%q); if no server runs on this data directory, remove the file", path, sc.Text())
	}
	return pid, nil
}

// processAlive reports whether process pid exists (a signal 0 reaches it,
// or it exists under another user).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
