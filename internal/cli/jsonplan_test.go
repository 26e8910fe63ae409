package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/rewind-backup/rewind/internal/inventory"
)

// The --json output of the plan, agent and inventory commands (issue 11)
// against docs/JSON.md and the strict structs of jsonschema_test.go.

// TestJSONPlanValidateAndShow: validate prints its problems, show its
// jobs with every kind of step field a plan can give.
func TestJSONPlanValidateAndShow(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("files", "", "")+a.filesJob("gone", "", "")+
		fmt.Sprintf("    before:\n      - run: [true]\n  broken:\n    kind: files\n    paths: [%s]\n", a.path("nosuchdir")), "")
	r := a.run("plan", "validate", "--json", "--config", a.plan)
	if r.code != ExitFatal {
		t.Fatalf("validate of a plan with a missing path: exit %d, want %d\n%s", r.code, ExitFatal, r)
	}
	var probs []jsonPlanProblem
	checkDoc(t, "plan.problem", r.stdout, &probs)
	if len(probs) == 0 || probs[0].Severity != "error" || probs[0].Pos.Line == 0 || probs[0].File != a.plan {
		t.Errorf("problems %+v, want an error with its place in %s", probs, a.plan)
	}
	a.writePlan(a.filesJob("files", "", ""), "")
	r = a.mustRun("plan", "validate", "--json", "--config", a.plan)
	checkDoc(t, "plan.problem", r.stdout, &probs)
	if len(probs) != 0 {
		t.Errorf("a good plan: problems %+v", probs)
	}

	plan := fmt.Sprintf(`repositories:
  local: {location: %[1]s, password_file: %[2]s}
  offsite: {location: %[1]s-2, password_file: %[2]s}
jobs:
  nightly:
    kind: files
    paths: [/srv]
    schedule: "*-*-* 02:00:00"
    rpo: 25h
    copy_to: [offsite]
    retention: {keep_last: 3, keep_daily: 7, keep_within: 2d, prune: false}
    before:
      - stop: nginx.service
      - fsfreeze: /srv
        max: 20s
      - run: [sh, -c, "sync"]
        timeout: 2m
    after:
      - run: /usr/local/bin/done
        always: true
  manual:
    kind: check
    repository: local
`, a.repo, a.pwfile)
	if err := os.WriteFile(a.path("show.yaml"), []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	var jobs []jsonPlanJob
	checkDoc(t, "plan.job", a.mustRun("plan", "show", "--json", "--config", a.path("show.yaml")).stdout, &jobs)
	if len(jobs) != 2 || jobs[1].Name != "nightly" || len(jobs[1].NextRuns) != 3 || jobs[1].Retention == nil ||
		jobs[1].Retention.KeepWithin != "2d" || jobs[1].RPO != "25h" || len(jobs[0].NextRuns) != 0 {
		t.Errorf("plan show --json: %+v", jobs)
	}
}

// TestJSONPlanRunEventsStatus: a run by hand prints its record; events
// lists it with its ID; status shows the job before the agent ran it,
// and with its last run while the agent runs.
func TestJSONPlanRunEventsStatus(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("files", "*:*:0/2", "    rpo: 25h\n    before:\n      - run: [true]\n    after:\n      - run: [sh, -c, 'exit 0']\n        always: true\n"), "")

	var rec jsonRun
	checkDoc(t, "event.run", a.mustRun("plan", "run", "files", "--config", a.plan, "--json").stdout, &rec)
	if rec.Result != "success" || rec.SnapshotID == "" || len(rec.Steps) != 3 || rec.Hostname != "testhost" {
		t.Fatalf("plan run --json: %+v", rec)
	}

	var evs []jsonStoredRun
	checkDoc(t, "event.stored", a.mustRun("events", "--json", "--config", a.plan).stdout, &evs)
	if len(evs) != 1 || evs[0].SnapshotID != rec.SnapshotID || evs[0].ID == "" {
		t.Fatalf("events --json: %+v, want the run of snapshot %s", evs, rec.SnapshotID)
	}

	var rep jsonStatusReport
	checkDoc(t, "status.report", a.mustRun("status", "--json", "--config", a.plan).stdout, &rep)
	if rep.AgentRunning || len(rep.Jobs) != 1 || rep.Jobs[0].NextRun == nil || rep.Jobs[0].RPOSeconds != 25*3600 {
		t.Fatalf("status --json without an agent: %+v", rep)
	}

	p := a.start()
	defer p.stop()
	a.waitFor("a run of the agent", func() bool {
		r := a.status()
		return len(r.Jobs) == 1 && r.Jobs[0].LastRun != nil && !r.Jobs[0].LastRun.End.IsZero()
	})
	rep = jsonStatusReport{}
	checkDoc(t, "status.report", a.mustRun("status", "--json", "--config", a.plan).stdout, &rep)
	j := rep.Jobs[0]
	if !rep.AgentRunning || rep.AgentPID == 0 || rep.AgentStarted == nil || j.LastRun == nil || len(j.LastRun.Steps) != 3 ||
		j.LastSuccess == nil || j.LastPoint == nil || j.RPOState != "OK" {
		t.Fatalf("status --json while the agent runs: %+v", rep)
	}
}

// TestJSONInventory: show prints the document, diff the changes; a diff
// with changes of every field is made from the real document through the
// command's own type.
func TestJSONInventory(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("a")})
	id1 := backupID(t, e, "--host", "inv-a", src)
	id2 := backupID(t, e, "--host", "inv-a", src)

	raw := e.mustRun("inventory", "show", "--json", id1).stdout
	var doc jsonInventory
	checkDoc(t, "inventory.document", raw, &doc)
	if doc.Hostname != "inv-a" || doc.Version == 0 {
		t.Errorf("inventory show --json: host %q version %d", doc.Hostname, doc.Version)
	}

	var d jsonInventoryDiff
	checkDoc(t, "inventory.diff", e.mustRun("inventory", "diff", "--json", id1, id2).stdout, &d)
	if d.From != id1 || d.To != id2 {
		t.Errorf("inventory diff --json: from %s to %s, want %s to %s", d.From, d.To, id1, id2)
	}

	var a, b inventory.Document
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	a.Packages.List = append(a.Packages.List, inventory.Package{Name: "zz-test", Version: "1.0", Arch: "all"})
	b.Packages.List = append(b.Packages.List, inventory.Package{Name: "zz-test", Version: "2.0", Arch: "all"},
		inventory.Package{Name: "zz-new", Version: "1", Arch: "all"})
	out, err := json.Marshal(InventoryDiffJSON{From: id1, To: id2, Changes: inventory.Diff(&a, &b)})
	if err != nil {
		t.Fatal(err)
	}
	checkDoc(t, "inventory.diff", out, &d)
	if len(d.Changes) != 2 {
		t.Errorf("diff of two package changes: %s", out)
	}
}
