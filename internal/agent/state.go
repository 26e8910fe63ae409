package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// DefaultStateDir is where the agent keeps its state when the plan does
// not say: /var/lib/rewind/agent for root, else
// $XDG_STATE_HOME/rewind/agent (~/.local/state/rewind/agent).
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/rewind/agent"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "rewind", "agent")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "rewind", "agent")
	}
	return filepath.Join(os.TempDir(), "rewind-agent")
}

// StateDirOf is the state folder p asks for, or the default.
func StateDirOf(p *plan.Plan) string {
	if p != nil && p.Agent != nil && p.Agent.StateDir != "" {
		return p.Agent.StateDir
	}
	return DefaultStateDir()
}

// JobState is what the agent remembers of one job across restarts. It is
// a small JSON file per job in the state folder, replaced atomically.
type JobState struct {
	Job string `json:"job"`
	// LastFire is the last schedule time handled: fires up to it have
	// run or were deliberately skipped. Catch-up looks after it.
	LastFire time.Time `json:"last_fire,omitzero"`
	// LastRun is the most recent run, as it ended.
	LastRun *event.Run `json:"last_run,omitempty"`
	// LastSuccess is when the last successful (or warning) run ended.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastPoint is the newest restorable point known: the start of the
	// last successful backup run, or the newest snapshot of the job.
	LastPoint time.Time `json:"last_point,omitzero"`
	// Failures counts failed runs in a row (retries included).
	Failures int `json:"consecutive_failures"`
	// Running is set while a run is under way: a restarted agent that
	// finds it set and the job lock free knows the run was cut short.
	Running *Running `json:"running,omitempty"`
	// NextRun is when the agent plans to run the job next.
	NextRun time.Time `json:"next_run,omitzero"`
	// Known is when an agent first ran the job: the RPO lag of a job
	// without any restorable point runs from it.
	Known time.Time `json:"known_since,omitzero"`
	// Breach is set while the RPO target is exceeded (alerted once).
	Breach bool `json:"rpo_breach,omitempty"`
}

// Running is a run under way.
type Running struct {
	Trigger string    `json:"trigger"`
	Start   time.Time `json:"start"`
	Attempt int       `json:"attempt"`
	PID     int       `json:"pid,omitempty"`
}

// Store is the agent's state folder.
type Store struct{ Dir string }

func fileName(job string) string { return url.PathEscape(job) }

// StatePath, LockPath, ResultPath and WatchDir are the files of one job.
func (s Store) StatePath(job string) string {
	return filepath.Join(s.Dir, "jobs", fileName(job)+".json")
}
func (s Store) LockPath(job string) string {
	return filepath.Join(s.Dir, "locks", fileName(job)+".lock")
}

// ResultPath is where a job's run child leaves the run as it ended, for an
// agent restarted while it ran.
func (s Store) ResultPath(job string) string {
	return filepath.Join(s.Dir, "results", fileName(job)+".json")
}
func (s Store) WatchDir(job string) string {
	return filepath.Join(s.Dir, "watch", fileName(job))
}

// RunningPlan is the copy of the plan the agent runs, for its children.
func (s Store) RunningPlan() string { return filepath.Join(s.Dir, "plan.yaml") }

func (s Store) agentLock() string { return filepath.Join(s.Dir, "agent.lock") }

// Load reads the state of job; a job never seen has a zero state.
func (s Store) Load(job string) (*JobState, error) {
	st := &JobState{Job: job}
	b, err := os.ReadFile(s.StatePath(job))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state of job %s (%s): %w", job, s.StatePath(job), err)
	}
	st.Job = job
	return st, nil
}

// Save replaces the state of its job atomically and durably.
func (s Store) Save(st *JobState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.StatePath(st.Job), append(b, '\n'))
}

// WriteFileAtomic writes b to a new file, fsyncs it, renames it over path
// and fsyncs the folder: a reader sees the old or the new content, also
// after a crash.
func WriteFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrBusy means a lock is held by another process (or open file).
var ErrBusy = errors.New("locked by another process")

// TryLock opens path and takes an exclusive flock on it without waiting.
// The lock lasts while the returned file, or a copy of its descriptor in
// a child process, stays open.
func TryLock(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// Locked reports whether path is locked by someone, without keeping it.
func Locked(path string) bool {
	f, err := TryLock(path)
	if err != nil {
		return errors.Is(err, ErrBusy)
	}
	f.Close()
	return false
}

// waitLock takes the lock at path, waiting for its holder to let go. It
// gives up (nil, ctx error) when ctx ends.
func waitLock(path string, done <-chan struct{}) (*os.File, error) {
	type res struct {
		f   *os.File
		err error
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	ch := make(chan res, 1)
	go func() {
		// A blocking flock sleeps in the kernel until the holder lets go.
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		ch <- res{f, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			f.Close()
			return nil, r.err
		}
		return f, nil
	case <-done:
		// Closing the file does not wake flock; let the goroutine finish
		// when the holder lets go, and drop what it got.
		go func() {
			r := <-ch
			r.f.Close()
		}()
		return nil, errors.New("stopped while waiting for the job lock")
	}
}

// ReadResult reads the run a job's child left behind, or nil.
func (s Store) ReadResult(job string) *event.Run {
	b, err := os.ReadFile(s.ResultPath(job))
	if err != nil {
		return nil
	}
	r, err := event.Decode(b)
	if err != nil {
		return nil
	}
	return r
}

// WriteResult records run as the job's last result (by its child).
func (s Store) WriteResult(run *event.Run) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.ResultPath(run.Job), b)
}
