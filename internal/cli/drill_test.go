package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/loopdev"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// backupServer builds the test server (mode bios or uefi) with token, backs it up as
// a system that is not running (its root mounted from a loop device)
// into a new repository and returns the repository and the snapshot.
// Loop device and mount are gone when it returns.
func backupServer(t *testing.T, mode, token string) (*env, string) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireQEMU(t)
	d := testutil.BuildServerDisk(t, testutil.ServerOptions{Mode: mode, Token: token})
	ctx := context.Background()
	dev, err := loopdev.Attach(ctx, d.Path)
	if err != nil {
		t.Fatal(err)
	}
	detached := false
	detach := func() {
		if !detached {
			detached = true
			if err := loopdev.Detach(ctx, dev); err != nil {
				t.Error(err)
			}
		}
	}
	defer detach()
	root := filepath.Join(t.TempDir(), "srv")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "ext4", loopdev.PartitionPath(dev, 4), root).CombinedOutput(); err != nil {
		t.Fatalf("mount the server's root: %v: %s", err, out)
	}
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", root).Run()
		}
	}()
	e := newRepo(t, 0)
	lines := jsonLines(t, e.mustRun("backup", "--json", "--system-root", root, "--disks", dev))
	id := lines[len(lines)-1].obj["snapshot_id"].(string)
	if out, err := exec.Command("umount", root).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	mounted = false
	detach()
	return e, id
}

// TestExportVMAndDrill: the test server, backed up as a system that is
// not running, is rebuilt by export --vm as a qcow2 that boots and
// answers HTTP with its token; a drill of it passes its marker and HTTP
// probes, is recorded with its three phases and marks the snapshot
// verified; a drill whose HTTP probe expects another body fails, exits 1
// naming the probe, and drill --report lists both. Three boots in all.
func TestExportVMAndDrill(t *testing.T) {
	const token = "drill-token-5b21"
	e, id := backupServer(t, "bios", token)

	// A VM disk too small for the data: refused, nothing left behind.
	small := e.path("small.qcow2")
	r := e.expectCode(1, "export", "--vm", small, "--size", "64M", id)
	// (recover's plan refuses when the recorded data cannot fit; when it
	// fits by the numbers but not with the new filesystem's overhead,
	// the restore fails: either way the export fails and cleans up.)
	if !strings.Contains(string(r.stderr), "export --vm: ") {
		t.Errorf("export --vm onto a disk too small: %s", r.stderr)
	}
	if ents, _ := filepath.Glob(e.path("small.qcow2*")); len(ents) > 0 {
		t.Errorf("a failed export --vm left %v", ents)
	}
	if out, _ := exec.Command("losetup", "-j", small+".rewind-work.raw").Output(); len(out) > 0 {
		t.Errorf("a failed export --vm left a loop device: %s", out)
	}

	// export --vm: the qcow2 boots and serves the token.
	out := e.path("srv.qcow2")
	var sum jsonExport
	decodeStrict(t, e.mustRun("export", "--json", "--vm", out, id).stdout, &sum)
	if sum.SnapshotID != id || sum.Format != "qcow2" || sum.BootMode != "bios" || sum.Hostname != testutil.ServerHostname || len(sum.Phases) != 2 {
		t.Errorf("export --vm summary %+v", sum)
	}
	if ents, _ := os.ReadDir(e.path()); len(ents) > 0 {
		for _, en := range ents {
			if strings.Contains(en.Name(), "rewind-work") {
				t.Errorf("the work file %s was left", en.Name())
			}
		}
	}
	v := testutil.BootServer(t, out, "bios")
	host, fstabOK := v.WaitReady()
	if body, err := v.HTTPGet("/"); err != nil || body != token || host != testutil.ServerHostname || !fstabOK {
		t.Errorf("the exported VM: host %q, fstab ok %v, GET / = %q, %v", host, fstabOK, body, err)
	}
	v.Kill()
	e.expectCode(1, "export", "--vm", out, id) // OUT exists: never overwritten

	// A drill that passes.
	r = e.mustRun("drill", "--json", "--host", testutil.ServerHostname, "--timeout", "5m",
		"--probe", "marker "+testutil.ServerUp, "--probe", "http / 80 "+token, "--probe", "tcp 80")
	var dr jsonDrill
	decodeStrict(t, r.stdout, &dr)
	if dr.Result != "success" || dr.SnapshotID != id || dr.EventID == "" || len(dr.Probes) != 3 || dr.Recovery == nil {
		t.Fatalf("drill: %s", r.stdout)
	}
	var rto float64
	for i, want := range []string{"restore", "boot", "probes"} {
		if i >= len(dr.Phases) || dr.Phases[i].Name != want || dr.Phases[i].DurationNS <= 0 {
			t.Fatalf("drill phases %+v, want restore, boot, probes, each > 0", dr.Phases)
		}
		rto += float64(dr.Phases[i].DurationNS) / 1e9
	}
	t.Logf("drill of the test server (%s): restore %.1f s, boot %.1f s, probes %.2f s, RTO %.1f s",
		dr.Accel, float64(dr.Phases[0].DurationNS)/1e9, float64(dr.Phases[1].DurationNS)/1e9, float64(dr.Phases[2].DurationNS)/1e9, dr.RTOSeconds)
	if d := dr.RTOSeconds - rto; d > 0.01 || d < -0.01 {
		t.Errorf("rto_seconds %v, phases sum to %v", dr.RTOSeconds, rto)
	}

	// The snapshot is verified by drill; the event holds the report.
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
	if len(sns) != 1 || sns[0].VerifiedByDrill == nil || sns[0].VerifiedByDrill.Before(dr.Start) {
		t.Errorf("snapshots: verified_by_drill %v, want the drill's end", sns[0].VerifiedByDrill)
	}
	if !strings.Contains(string(e.mustRun("snapshots").stdout), "Verified by drill") {
		t.Error("snapshots does not show the drill")
	}

	// A drill whose HTTP probe expects another body fails.
	r = e.expectCode(1, "drill", "--host", testutil.ServerHostname, "--timeout", "5m",
		"--probe", "marker "+testutil.ServerUp, "--probe", "http / 80 not-the-token")
	if !strings.Contains(string(r.stderr), `probe http / 80 not-the-token: GET / answered 200 OK without "not-the-token" in its body`) ||
		!strings.Contains(string(r.stdout), "FAILED  http / 80 not-the-token") {
		t.Errorf("failed drill: %v", r)
	}

	// The report lists both, the failed one without a trend.
	var past []jsonDrillPast
	decodeStrict(t, e.mustRun("drill", "--report", "--json").stdout, &past)
	if len(past) != 2 || past[0].Result != "success" || past[1].Result != "failed" || past[0].SnapshotID != id ||
		past[0].RTOSeconds <= 0 || past[0].BootSeconds <= 0 || past[1].RTOChange != nil {
		b, _ := json.Marshal(past)
		t.Errorf("drill --report: %s", b)
	}
	if txt := string(e.mustRun("drill", "--report").stdout); !strings.Contains(txt, "2 drills, 1 successful") {
		t.Errorf("drill --report:\n%s", txt)
	}
}

// TestDrillRefusals: a snapshot without an inventory, a bad probe, flags
// that do not go together: each is named, nothing is booted.
func TestDrillRefusals(t *testing.T) {
	testutil.RequireRoot(t)
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a": []byte("a")})
	lines := jsonLines(t, e.mustRun("backup", "--json", "--no-inventory", "--host", "plain", src))
	id := lines[len(lines)-1].obj["snapshot_id"].(string)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"drill", "--snapshot", id}, "has none"},
		{[]string{"drill", "--host", "plain"}, `no snapshot of host "plain" has one`},
		{[]string{"export", "--vm", e.path("x.qcow2"), id}, "has none"},
		{[]string{"drill", "--probe", "ping 10.0.0.1"}, `unknown kind "ping"`},
		{[]string{"drill", "--probe", "http health"}, "must start with /"},
		{[]string{"drill", "--report", "--probe", "tcp 22"}, "--report lists past drills"},
		{[]string{"export", "--vm", e.path("x.qcow2"), "--qcow2", e.path("y.qcow2"), id}, "not both"},
		{[]string{"export", "--vm", e.path("x.qcow2"), "--size", "lots", id}, `--size "lots"`},
	} {
		r := e.expectCode(1, c.args...)
		if !strings.Contains(string(r.stderr), c.want) {
			t.Errorf("%q: stderr %q, want %q", c.args, r.stderr, c.want)
		}
	}
	if _, err := os.Stat(e.path("x.qcow2")); err == nil {
		t.Error("a refused export --vm left its output")
	}
	if r := e.mustRun("drill", "--report"); !strings.Contains(string(r.stdout), "no drills recorded") {
		t.Errorf("drill --report of no drills: %s", r.stdout)
	}
}
