package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// The unit steps against a real systemd: testutil.SystemdPID1 boots one
// as PID 1 of private namespaces, and `rewind plan run` runs inside them,
// so internal/systemd's Manager finds /run/systemd/system and talks to it
// with systemctl. The unit, the repository, the plan and the rewind
// binary are in the namespace's Shared directory (the same path inside
// and out). The unit and the plan's run steps append to one log there,
// so its lines give the order in which they ran.

// webUnit is a service that logs its start, stop and reload.
func webUnit(log string) string {
	return fmt.Sprintf(`[Unit]
Description=rewind test web server
DefaultDependencies=no

[Service]
ExecStartPre=/usr/bin/sh -c 'echo unit-start >> %[1]s'
ExecStart=/usr/bin/sleep infinity
ExecStop=/usr/bin/sh -c 'echo unit-stop >> %[1]s'
ExecReload=/usr/bin/sh -c 'echo unit-reload >> %[1]s'
`, log)
}

// unitHarness is a booted systemd with rwtest-web.service running, a
// repository, a copy of rewind and a log in its Shared directory.
type unitHarness struct {
	ns   *testutil.SystemdNS
	bin  string
	repo *plan.Repository
	log  orderLog
	data string
}

const webService = "rwtest-web.service"

func newUnitHarness(t *testing.T) *unitHarness {
	t.Helper()
	ns := testutil.SystemdPID1(t)
	h := &unitHarness{ns: ns, bin: filepath.Join(ns.Shared, "rewind"), log: orderLog(filepath.Join(ns.Shared, "order.log")),
		data: filepath.Join(ns.Shared, "data")}
	b, err := os.ReadFile(rewindBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(h.data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.data, "index.html"), []byte("<h1>site</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.repo = testRepo(t, ns.Shared, "repo")
	pw := filepath.Join(ns.Shared, "password")
	if err := os.WriteFile(pw, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.repo.PasswordFile = pw
	ns.InstallUnit(t, webService, webUnit(string(h.log)))
	ns.Exec(t, "systemctl", "start", webService)
	return h
}

// runJob writes a plan with one job "web" whose steps are given as YAML
// and runs `rewind plan run web --json` inside the namespace.
func (h *unitHarness) runJob(t *testing.T, steps string) (*event.Run, error) {
	t.Helper()
	cfg := filepath.Join(h.ns.Shared, "rewind.yaml")
	yaml := fmt.Sprintf(`host: testhost
repositories:
  local:
    location: %s
    password_file: %s
jobs:
  web:
    kind: files
    repository: local
    paths: [%s]
%s`, h.repo.Location, h.repo.PasswordFile, h.data, steps)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := h.ns.Run(context.Background(), h.bin, "plan", "run", "web", "--config", cfg, "--json")
	t.Logf("rewind plan run inside the namespace: %v\n%s", err, stderr)
	var rec event.Run
	if jerr := json.Unmarshal([]byte(stdout), &rec); jerr != nil {
		t.Fatalf("plan run printed no record (%v, %v):\n%s\n%s", jerr, err, stdout, stderr)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return &rec, err
}

// state returns the unit's ActiveState and MainPID, read inside.
func (h *unitHarness) state(t *testing.T) (active, pid string) {
	t.Helper()
	out := h.ns.Exec(t, "systemctl", "show", "--property=ActiveState,MainPID", webService)
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "ActiveState":
			active = v
		case "MainPID":
			pid = v
		}
	}
	return active, pid
}

// TestUnitStepsRollbackWithSystemd: a before step fails after `stop` of a
// running unit: the run fails, no snapshot is saved, and the after step
// `start` of that unit still runs, so the unit is active again, with a
// new main process; the unit's own ExecStop and ExecStartPre show the
// order: stop, the failing step, start.
func TestUnitStepsRollbackWithSystemd(t *testing.T) {
	h := newUnitHarness(t)
	active, pidBefore := h.state(t)
	if active != "active" {
		t.Fatalf("%s is %q before the run", webService, active)
	}
	rec, err := h.runJob(t, `    before:
      - stop: `+webService+`
      - run: [sh, -c, 'echo step-fails >> `+string(h.log)+`; exit 1']
    after:
      - start: `+webService+`
`)
	if err == nil || rec.Result != event.ResultFailed {
		t.Fatalf("run: result %q, err %v; want failed", rec.Result, err)
	}
	if got, want := stepResults(rec), []string{"before stop success", "before run failed", "job files skipped", "after start success"}; !slices.Equal(got, want) {
		t.Errorf("record steps %q, want %q", got, want)
	}
	if got, want := h.log.lines(t), []string{"unit-start", "unit-stop", "step-fails", "unit-start"}; !slices.Equal(got, want) {
		t.Errorf("the log says %q, want %q", got, want)
	}
	if sns := snapshots(t, h.repo); len(sns) != 0 {
		t.Errorf("a snapshot was saved: %+v", sns)
	}
	active, pidAfter := h.state(t)
	if active != "active" || pidAfter == pidBefore || pidAfter == "0" {
		t.Errorf("after the run %s is %q with main PID %s (before: %s); want active with a new process", webService, active, pidAfter, pidBefore)
	}
	if got := strings.TrimSpace(h.ns.Exec(t, "systemctl", "is-active", webService)); got != "active" {
		t.Errorf("systemctl is-active says %q", got)
	}
}

// TestUnitStepsSuccessWithSystemd: stop, the backup, start and reload of
// a real unit, in that order; the snapshot is saved while the unit is
// stopped (the run steps around the backup see it inactive), and the
// reload runs the unit's ExecReload.
func TestUnitStepsSuccessWithSystemd(t *testing.T) {
	h := newUnitHarness(t)
	state := `[sh, -c, 'echo "$1-$(systemctl is-active ` + webService + `)" >> "$2"', sh, %s, ` + string(h.log) + `]`
	rec, err := h.runJob(t, `    before:
      - stop: `+webService+`
      - run: `+fmt.Sprintf(state, "before-backup")+`
    after:
      - run: `+fmt.Sprintf(state, "after-backup")+`
      - start: `+webService+`
      - reload: `+webService+`
`)
	if err != nil || rec.Result != event.ResultSuccess {
		t.Fatalf("run: result %q, err %v, error %q", rec.Result, err, rec.Error)
	}
	want := []string{"before stop success", "before run success", "job backup success", "after run success", "after start success", "after reload success"}
	if got := stepResults(rec); !slices.Equal(got, want) {
		t.Errorf("record steps %q, want %q", got, want)
	}
	if got, want := h.log.lines(t), []string{"unit-start", "unit-stop", "before-backup-inactive", "after-backup-inactive", "unit-start", "unit-reload"}; !slices.Equal(got, want) {
		t.Errorf("the log says %q, want %q", got, want)
	}
	sns := snapshots(t, h.repo)
	if len(sns) != 1 || sns[0].ID != rec.Snapshot || !slices.Contains(sns[0].Tags, "job:web") {
		t.Errorf("snapshots %+v, want one, %s, tagged job:web", sns, rec.Snapshot)
	}
	if active, _ := h.state(t); active != "active" {
		t.Errorf("after the run %s is %q", webService, active)
	}
}
