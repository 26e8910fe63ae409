package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/event"
)

// TestPlanRunRecordsAndLocks runs a job by hand: its snapshot is tagged
// with the job, its run is in the event log like the agent's runs, and
// while the job's lock is held (the agent running it) a second run is
// refused with the lock exit code instead of overlapping it.
func TestPlanRunRecordsAndLocks(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("files", "", ""), "")

	r := a.mustRun("plan", "run", "files", "--config", a.plan, "--json")
	var rec event.Run
	if err := json.Unmarshal(r.stdout, &rec); err != nil {
		t.Fatalf("plan run --json: %v\n%s", err, r)
	}
	if rec.Result != event.ResultSuccess || rec.Snapshot == "" || rec.Host != "testhost" {
		t.Fatalf("run record %+v, want a success with a snapshot on testhost", rec)
	}
	if n := a.snapshotsTagged("job:files"); n != 1 {
		t.Errorf("%d snapshots tagged job:files, want 1", n)
	}
	evs := a.events("--job", "files")
	if len(evs) != 1 || evs[0].Snapshot != rec.Snapshot || evs[0].Trigger != "manual" {
		t.Fatalf("event log %+v, want the one manual run of snapshot %s", evs, rec.Snapshot)
	}

	lock, err := agent.TryLock(agent.Store{Dir: a.state}.LockPath("files"))
	if err != nil {
		t.Fatal(err)
	}
	busy := a.run("plan", "run", "files", "--config", a.plan)
	lock.Close()
	if busy.code != ExitLocked || !strings.Contains(string(busy.stderr), "running now") {
		t.Fatalf("plan run while the job is locked: exit %d, want %d with a message\n%s", busy.code, ExitLocked, busy)
	}
	if n := a.snapshotsTagged("job:files"); n != 1 {
		t.Errorf("a refused run saved a snapshot: %d tagged, want 1", n)
	}
	if evs := a.events("--job", "files"); len(evs) != 1 {
		t.Errorf("a refused run was recorded: %d events, want 1", len(evs))
	}
}
