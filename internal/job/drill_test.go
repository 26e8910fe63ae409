package job

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/drill"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// TestDrillJobNoInventory: a drill job runs `rewind drill` for its host;
// with no snapshot of it to rebuild, the run fails saying so.
func TestDrillJobNoInventory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("drill needs root")
	}
	repo := testRepo(t, "", "r")
	j := &plan.Job{Name: "weekly-drill", Kind: plan.KindDrill, DrillHost: "nosuchhost", Probes: []string{"marker login:"}, Timeout: plan.Duration(time.Minute)}
	rec, err := newRunner(t, j, repo).Run(t.Context(), j, "manual")
	if err == nil || rec.Result != event.ResultFailed || rec.Kind != plan.KindDrill {
		t.Fatalf("run %+v, err %v", rec, err)
	}
	if !strings.Contains(rec.Error, `no snapshot of host "nosuchhost"`) {
		t.Errorf("error %q does not say which host has no snapshot", rec.Error)
	}
}

// TestDrillJobRecordsReport: the drill's summary line becomes the run's
// snapshot, phases and report (read from a stand-in for rewind that
// checks its arguments).
func TestDrillJobRecordsReport(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "rewind")
	line := `{"message_type":"summary","hostname":"web1","snapshot_id":"abc","result":"success","boot_mode":"bios","phases":[{"name":"restore","duration_ns":2000000000},{"name":"boot","duration_ns":3000000000},{"name":"probes","duration_ns":1000000000}],"rto_seconds":6,"probes":[]}`
	script := "#!/bin/sh\ncase \"$*\" in *'drill '*'--no-event --job d --host web1 --timeout 5m0s --probe tcp 22'*) echo '" + line + "';; *) echo \"bad args: $*\" >&2; exit 1;; esac\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	repo := testRepo(t, "", "r")
	j := &plan.Job{Name: "d", Kind: plan.KindDrill, DrillHost: "web1", Probes: []string{"tcp 22"}, Timeout: plan.Duration(5 * time.Minute)}
	r := newRunner(t, j, repo)
	r.Bin = bin
	rec, err := r.Run(t.Context(), j, "schedule")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Snapshot != "abc" || len(rec.Phases) != 3 || drill.PhaseSeconds(rec.Phases, drill.PhaseBoot) != 3 || !strings.Contains(string(rec.Report), `"rto_seconds":6`) {
		t.Errorf("run %+v, report %s", rec, rec.Report)
	}
}
