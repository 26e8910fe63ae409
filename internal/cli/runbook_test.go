package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/repository"
)

// jsonRunbook is the strict copy of the runbook schema of docs/JSON.md.
type jsonRunbook struct {
	ID         string    `json:"id"`
	Hostname   string    `json:"hostname"`
	SnapshotID string    `json:"snapshot_id"`
	Time       time.Time `json:"time"`
	BootMode   string    `json:"boot_mode"`
	RTONs      int64     `json:"rto_ns"`
	New        bool      `json:"new"`
	Format     string    `json:"format"`
	Out        string    `json:"out"`
	Content    string    `json:"content"`
}

// saveDrillEvent stores a drill of host in the repository, as `rewind
// drill` records one.
func saveDrillEvent(t *testing.T, repoDir, host, snap string) {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	_, err = event.Save(ctx, r, &event.Run{Host: host, Job: "drill", Kind: "drill", Trigger: "manual", Start: start, End: start.Add(time.Minute),
		Result: event.ResultSuccess, Snapshot: snap, Attempt: 1,
		Phases: []event.Phase{{Name: "restore", Duration: 40 * time.Second}, {Name: "boot", Duration: 15 * time.Second}, {Name: "probes", Duration: 2 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunbookStoredAndRead: on a real repository with a backup (and its
// inventory) and a drill, rewind runbook prints the host's runbook with
// the snapshot, the drill's times and the password's source (never the
// password), stores it, stores nothing new when nothing changed, writes
// HTML to --out, and --stored reads it back after the snapshots are
// gone; --json follows its schema.
func TestRunbookStoredAndRead(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("a")})
	snap := backupID(t, e, "--host", "rb-host", src)

	pwFile := e.path("pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ef := e.without("REWIND_PASSWORD").with("REWIND_PASSWORD_FILE", pwFile)

	r := ef.mustRun("runbook", "--host", "rb-host")
	md := string(r.stdout)
	for _, want := range []string{
		"# Recovery runbook of `rb-host`",
		"Snapshot to restore: `" + snap + "`",
		"no drill yet: run `rewind drill --host rb-host`",
		"Its password is kept in: `REWIND_PASSWORD_FILE " + pwFile + "`",
		"export REWIND_PASSWORD_FILE=" + pwFile,
		"rewind recover --snapshot " + snap[:8] + " --disk /dev/NEW1 --dry-run",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("runbook lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, testPassword) {
		t.Error("the runbook shows the password")
	}
	if !strings.Contains(string(r.stderr), "stored as runbooks/") {
		t.Errorf("no stored message: %s", r.stderr)
	}
	files, _ := os.ReadDir(e.path("repo", "runbooks"))
	if len(files) != 1 {
		t.Fatalf("%d runbook files, want 1", len(files))
	}

	// Unchanged facts: nothing new is stored.
	r = ef.mustRun("runbook", "--host", "rb-host")
	if !strings.Contains(string(r.stderr), "unchanged since runbooks/"+files[0].Name()[:8]) {
		t.Errorf("second run: %s", r.stderr)
	}
	if files, _ := os.ReadDir(e.path("repo", "runbooks")); len(files) != 1 {
		t.Errorf("%d runbook files after an unchanged run, want 1", len(files))
	}

	// A drill changes the runbook: a new one is stored, in HTML to --out.
	saveDrillEvent(t, e.path("repo"), "rb-host", snap)
	out := e.path("rb.html")
	var doc jsonRunbook
	checkDoc(t, "runbook", ef.mustRun("runbook", "--host", "rb-host", "--format", "html", "--out", out, "--json").stdout, &doc)
	if !doc.New || doc.SnapshotID != snap || doc.RTONs != int64(57*time.Second) || doc.Format != "html" || doc.Out != out || doc.Content != "" || len(doc.ID) != 64 {
		t.Errorf("runbook --json: %+v", doc)
	}
	h, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(h), "<td>total</td><td>57s</td>") {
		t.Errorf("HTML runbook (%v) lacks the drill's total:\n%s", err, h)
	}

	// The runbook survives the snapshots and inventory: --stored.
	e.mustRun("forget", snap, "--prune")
	if files, _ := os.ReadDir(e.path("repo", "inventory")); len(files) != 0 {
		t.Errorf("inventory files left after the prune: %d", len(files))
	}
	if files, _ := os.ReadDir(e.path("repo", "runbooks")); len(files) != 2 {
		t.Errorf("the prune left %d runbook files, want 2", len(files))
	}
	e.expectCode(1, "runbook", "--host", "rb-host")
	r = e.mustRun("runbook", "--host", "rb-host", "--stored")
	if !strings.Contains(string(r.stdout), "| total | 57s |") || !strings.Contains(string(r.stdout), snap) {
		t.Errorf("--stored:\n%s", r.stdout)
	}
	var st jsonRunbook
	checkDoc(t, "runbook", e.mustRun("runbook", "--host", "rb-host", "--stored", "--json").stdout, &st)
	if st.ID != doc.ID || st.New || !strings.HasPrefix(st.Content, "# Recovery runbook") {
		t.Errorf("--stored --json: %+v", st)
	}
}

// TestRunbookBadInput: no snapshot of the host, a snapshot without an
// inventory, no stored runbook and a bad format each fail with exit 1
// and a message that says what to do, storing nothing.
func TestRunbookBadInput(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("a")})
	backupID(t, e, "--host", "has-inv", src)
	noInv := backupID(t, e, "--host", "no-inv", "--no-inventory", src)

	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--host", "ghost"}, []string{`no snapshot of host "ghost" has one`, "Hosts with an inventory: has-inv"}},
		{[]string{"--host", "no-inv"}, []string{`no snapshot of host "no-inv" has one`}},
		{[]string{"--snapshot", noInv[:8]}, []string{"snapshot " + noInv[:8] + " has none"}},
		{[]string{"--host", "ghost", "--stored"}, []string{`no runbook stored for host "ghost"`, "rewind runbook --host ghost"}},
		{[]string{"--host", "has-inv", "--format", "pdf"}, []string{`--format "pdf": give md or html`}},
		{[]string{"--host", "has-inv", "--stored", "--snapshot", "x"}, []string{"--stored prints the stored runbook as it is"}},
	} {
		r := e.expectCode(1, append([]string{"runbook"}, c.args...)...)
		for _, w := range c.want {
			if !strings.Contains(string(r.stderr), w) {
				t.Errorf("runbook %v: stderr lacks %q:\n%s", c.args, w, r.stderr)
			}
		}
	}
	if files, _ := os.ReadDir(filepath.Join(e.path("repo"), "runbooks")); len(files) != 0 {
		t.Errorf("bad input stored %d runbooks", len(files))
	}
}

// TestRunbookAfterPlanRun: a files job run as the agent runs it (plan
// run) leaves the host's runbook in the repository, naming the plan, the
// job and the plan repository's password file; the next run's snapshot
// makes a new runbook that names it.
func TestRunbookAfterPlanRun(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("files", "daily", ""), "")
	a.mustRun("plan", "run", "files", "--config", a.plan)
	e := a.with("REWIND_REPOSITORY", a.repo, "REWIND_PASSWORD", testPassword)
	r := e.mustRun("runbook", "--host", "testhost", "--stored")
	md := string(r.stdout)
	for _, want := range []string{"# Recovery runbook of `testhost`", "The plan of the host's jobs is `" + a.plan + "`",
		"| `files` | files | daily |", "Its password is kept in: `--password-file " + a.pwfile + "`"} {
		if !strings.Contains(md, want) {
			t.Errorf("stored runbook lacks %q:\n%s", want, md)
		}
	}
	var rec event.Run
	decodeStrict(t, a.mustRun("plan", "run", "files", "--config", a.plan, "--json").stdout, &rec)
	files, _ := os.ReadDir(filepath.Join(a.repo, "runbooks"))
	var st jsonRunbook
	checkDoc(t, "runbook", e.mustRun("runbook", "--host", "testhost", "--stored", "--json").stdout, &st)
	if len(files) != 2 || st.SnapshotID != rec.Snapshot {
		t.Errorf("after the second run: %d runbook files, the newest restores %s; want 2 and %s", len(files), st.SnapshotID, rec.Snapshot)
	}
}
