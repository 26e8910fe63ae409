package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/event"
)

// The outbox holds runs that could not be written to the repository's
// event log (the repository unreachable, the very failure a run may be
// reporting). Each waits in the state folder as its own file and is
// written, oldest first, after the next run of the job that reaches the
// repository; so a failure is in the event log once the repository is
// back, not lost with the connection.

// OutboxDir is the folder of job's waiting runs.
func (s Store) OutboxDir(job string) string {
	return filepath.Join(s.Dir, "outbox", fileName(job))
}

// Queue keeps run in job's outbox.
func (s Store) Queue(run *event.Run) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%020d-%d.json", run.Start.UnixNano(), run.Attempt)
	return WriteFileAtomic(filepath.Join(s.OutboxDir(run.Job), name), b)
}

// Queued lists the files of job's outbox, oldest first.
func (s Store) Queued(job string) ([]string, error) {
	ents, err := os.ReadDir(s.OutboxDir(job))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(s.OutboxDir(job), e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// saveEvent writes run to the event log, after the runs waiting in the
// job's outbox; a run that cannot be written waits there in turn.
func (c *jobCtl) saveEvent(ctx context.Context, run *event.Run) {
	store := c.a.store
	if err := c.flushOutbox(ctx); err == nil {
		err = c.a.cfg.Events.Save(ctx, c.job, run)
		if err == nil {
			return
		}
		c.log.Error("cannot record the run in the repository's event log; it waits in the outbox", "err", err)
	}
	if err := store.Queue(run); err != nil {
		c.log.Error("cannot keep the run in the outbox either", "err", err)
	}
}

// flushOutbox writes the job's waiting runs, oldest first, and stops at
// the first that cannot be written.
func (c *jobCtl) flushOutbox(ctx context.Context) error {
	files, err := c.a.store.Queued(c.job.Name)
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var run event.Run
		if err := json.Unmarshal(b, &run); err != nil {
			// Not a run (a damaged file): keep it aside, never block the log.
			c.log.Error("outbox file is not a run; set aside", "file", f, "err", err)
			if err := os.Rename(f, f+".bad"); err != nil {
				return err
			}
			continue
		}
		if err := c.a.cfg.Events.Save(ctx, c.job, &run); err != nil {
			return err
		}
		if err := os.Remove(f); err != nil {
			return err
		}
		c.log.Info("recorded a run that waited in the outbox", "start", run.Start)
	}
	return nil
}
