package watch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Status is what a running watcher tells others about itself, through a
// small JSON file it rewrites as things change (`rewind watch --status`).
type Status struct {
	Paths      []string `json:"paths"`
	Repository string   `json:"repository"`
	Host       string   `json:"host"`
	PID        int      `json:"pid"`
	Backend    string   `json:"backend"`
	// State is "running" or "stopped".
	State   string    `json:"state"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// LastSnapshot is the newest snapshot this watcher saved, and
	// LastSnapshotTime when it was committed.
	LastSnapshot     string     `json:"last_snapshot,omitempty"`
	LastSnapshotTime *time.Time `json:"last_snapshot_time,omitempty"`
	// LastLagSeconds is how long the oldest change of the last snapshot
	// waited, from its event to the commit.
	LastLagSeconds float64 `json:"last_lag_seconds"`
	// PendingChanges counts the paths (and directories to walk whole)
	// seen changed and not yet in a snapshot; OldestPending is when the
	// oldest of them was seen.
	PendingChanges int        `json:"pending_changes"`
	OldestPending  *time.Time `json:"oldest_pending,omitempty"`
	Snapshots      int64      `json:"snapshots"`
	FullScans      int64      `json:"full_scans"`
	Overflows      int64      `json:"overflows"`
	LastError      string     `json:"last_error,omitempty"`
}

// Lag is how far behind the watcher is at now: the age of the oldest
// change not yet in a snapshot, or zero.
func (s *Status) Lag(now time.Time) time.Duration {
	if s.OldestPending == nil || s.PendingChanges == 0 {
		return 0
	}
	return max(0, now.Sub(*s.OldestPending))
}

// WriteStatus replaces the status file atomically (a new file renamed
// over the old one), so that readers never see half of it.
func WriteStatus(path string, s *Status) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("status folder: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".status-*")
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// ReadStatus reads a status file.
func ReadStatus(path string) (*Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("status file %s: %w", path, err)
	}
	return &s, nil
}
