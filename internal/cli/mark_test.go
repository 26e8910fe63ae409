package cli

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

type jsonLabel struct {
	Label string    `json:"label"`
	Time  time.Time `json:"time"`
	Note  string    `json:"note"`
	Host  string    `json:"hostname"`
	User  string    `json:"username"`
}

func init() { schemaTypes["mark.label"] = reflect.TypeFor[jsonLabel]() }

func TestMark(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	f := filepath.Join(src, "nginx.conf")
	writeFiles(t, src, map[string][]byte{"nginx.conf": []byte("worker_processes 1;\n")})
	e.mustRun("backup", src)

	const name = "before nginx upgrade"
	before := time.Now()
	r := e.mustRun("mark", name, "--note", "ticket 42")
	if !strings.Contains(string(r.stdout), `marked "before nginx upgrade" at `) {
		t.Errorf("mark output: %v", r)
	}
	writeFiles(t, src, map[string][]byte{"nginx.conf": []byte("worker_processes auto;\n")})
	e.mustRun("backup", src)

	var one jsonLabel
	checkDoc(t, "mark.label", e.mustRun("mark", "--json", "release-1").stdout, &one)
	if one.Label != "release-1" || one.Note != "" || one.Time.Before(before) {
		t.Errorf("mark --json: %+v", one)
	}
	var all []jsonLabel
	checkDoc(t, "mark.label", e.mustRun("mark", "--list", "--json").stdout, &all)
	if len(all) != 2 || all[0].Label != name || all[0].Note != "ticket 42" || all[1].Label != "release-1" {
		t.Fatalf("mark --list --json: %+v", all)
	}
	if all[0].Time.Before(before) || !all[0].Time.Before(all[1].Time) {
		t.Errorf("label times: %v, %v (marked after %v)", all[0].Time, all[1].Time, before)
	}
	out := string(e.mustRun("mark", "--list").stdout)
	if !strings.Contains(out, `"before nginx upgrade"`) || !strings.Contains(out, ": ticket 42") || strings.Index(out, name) > strings.Index(out, "release-1") {
		t.Errorf("mark --list:\n%s", out)
	}

	// Refused: a name in use, names that read as times or flags, --list
	// with a label.
	for _, args := range [][]string{
		{"mark", name},
		{"mark", "2026-11-22 10:00"},
		{"mark", "now"},
		{"mark", "--", "-15m"},
		{"mark", ""},
		{"mark", "--list", "x"},
		{"mark"},
	} {
		e.expectCode(ExitFatal, args...)
	}
	r = e.expectCode(ExitFatal, "mark", name)
	if !strings.Contains(string(r.stderr), "already exists") || !strings.Contains(string(r.stderr), "unmark") {
		t.Errorf("second mark: %v", r)
	}
	if n := len(repoFiles(t, e, "labels")); n != 2 {
		t.Fatalf("%d label files, want 2", n)
	}

	// The label works as a time.
	target := e.path("then")
	e.mustRun("restore", "--at", name, f, "--target", target)
	if b, err := os.ReadFile(filepath.Join(target, "nginx.conf")); err != nil || string(b) != "worker_processes 1;\n" {
		t.Errorf("restore --at LABEL: %q, %v", b, err)
	}

	r = e.mustRun("unmark", name)
	if !strings.Contains(string(r.stdout), `unmarked "before nginx upgrade"`) {
		t.Errorf("unmark output: %v", r)
	}
	checkDoc(t, "mark.label", e.mustRun("mark", "--list", "--json").stdout, &all)
	if len(all) != 1 || all[0].Label != "release-1" {
		t.Errorf("labels after unmark: %+v", all)
	}
	r = e.expectCode(ExitFatal, "unmark", name)
	if !strings.Contains(string(r.stderr), "no such label") {
		t.Errorf("unmark of a missing label: %v", r)
	}
	r = e.expectCode(ExitFatal, "restore", "--at", name, f, "--target", e.path("gone"))
	if !strings.Contains(string(r.stderr), `no label is called "before nginx upgrade"`) {
		t.Errorf("restore --at an unmarked label: %v", r)
	}
	// The name can be used again.
	e.mustRun("mark", name)
}

// snapshotAt stores a copy of the snapshot base taken at t, as a backup
// at that time would have, and returns its ID.
func snapshotAt(t *testing.T, e *env, base string, at time.Time) string {
	t.Helper()
	ctx := context.Background()
	r := openInProcess(t, e)
	defer r.Close()
	i, err := id.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.Load(ctx, r, i)
	if err != nil {
		t.Fatal(err)
	}
	if sn.Summary != nil {
		// The capture moves with it, as it would have run then.
		shift := at.Sub(sn.Time)
		sn.Summary.BackupStart = sn.Summary.BackupStart.Add(shift)
		sn.Summary.BackupEnd = sn.Summary.BackupEnd.Add(shift)
	}
	sn.Time = at
	if err := snapshot.Save(ctx, r, sn); err != nil {
		t.Fatal(err)
	}
	return sn.ID.String()
}

// markAt stores a label for a moment in the past.
func markAt(t *testing.T, e *env, name string, at time.Time) {
	t.Helper()
	r := openInProcess(t, e)
	defer r.Close()
	if _, err := label.Mark(context.Background(), r, &label.Set{}, label.Label{Name: name, Time: at}); err != nil {
		t.Fatal(err)
	}
}

// TestForgetContinuous: forget --continuous on backdated snapshots keeps
// what the default policy says, and the snapshot of each label.
func TestForgetContinuous(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("data")})
	e.mustRun("backup", src)
	base := listSnapshotsJSON(t, e)[0].ID

	// In UTC (the binary's TZ): three recent snapshots, two in one hour
	// 30 hours back, and two in one hour 50 hours back with a label
	// between them.
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	recent := []string{
		snapshotAt(t, e, base, now.Add(-5*time.Minute)),
		snapshotAt(t, e, base, now.Add(-35*time.Minute)),
		snapshotAt(t, e, base, now.Add(-65*time.Minute)),
	}
	b1 := snapshotAt(t, e, base, hour.Add(-30*time.Hour+10*time.Minute))
	b2 := snapshotAt(t, e, base, hour.Add(-30*time.Hour+20*time.Minute))
	c1 := snapshotAt(t, e, base, hour.Add(-50*time.Hour+10*time.Minute))
	c2 := snapshotAt(t, e, base, hour.Add(-50*time.Hour+20*time.Minute))
	markAt(t, e, "before upgrade", hour.Add(-50*time.Hour+15*time.Minute))

	// Every snapshot of the last 24 hours; older, the newest of each
	// hour (the hours, days and weeks with a snapshot are far fewer
	// than 168, 30 and 52); and the one that shows the label.
	g := forgetDryRun(t, e, "--continuous")
	why := keptReasons(g)
	if got := removedIDs(g); !slices.Equal(got, []string{b1}) {
		t.Errorf("forget --continuous removes %q, want only %s", got, b1)
	}
	for _, i := range append(recent, base) {
		if !slices.Contains(why[i], "within 1d") {
			t.Errorf("recent snapshot %s kept for %q", i[:8], why[i])
		}
	}
	if !slices.Contains(why[b2], "hourly snapshot "+b2Hour(hour)) {
		t.Errorf("%s kept for %q", b2[:8], why[b2])
	}
	if !slices.Equal(why[c1], []string{"label before upgrade"}) {
		t.Errorf("labelled snapshot kept for %q, want only the label", why[c1])
	}
	if slices.Contains(why[c2], "label before upgrade") || len(why[c2]) == 0 {
		t.Errorf("%s kept for %q", c2[:8], why[c2])
	}

	// --keep-* options replace parts of the policy; the label still
	// keeps its snapshot.
	g = forgetDryRun(t, e, "--continuous", "--keep-within", "2h", "--keep-hourly", "0", "--keep-daily", "1", "--keep-weekly", "0")
	if got, want := removedIDs(g), []string{c2, b1, b2}; !slices.Equal(got, want) {
		t.Errorf("with overrides, forget removes %q, want %q", got, want)
	}
	why = keptReasons(g)
	if !slices.Equal(why[c1], []string{"label before upgrade"}) || len(why) != 5 {
		t.Errorf("with overrides, keeps %v", why)
	}
	if r := why[base]; len(r) != 2 || !strings.HasPrefix(r[0], "daily snapshot ") || !strings.HasPrefix(r[1], "within 2h") {
		t.Errorf("newest kept for %q", r)
	}

	// For real, then without the label.
	before := len(snapshotFiles(t, e))
	e.mustRun("forget", "--continuous")
	if got := snapshotFiles(t, e); len(got) != before-1 || slices.Contains(got, b1) {
		t.Errorf("after forget --continuous: %d snapshot files, want %d without %s", len(got), before-1, b1[:8])
	}
	e.mustRun("unmark", "before upgrade")
	g = forgetDryRun(t, e, "--continuous")
	if got := removedIDs(g); !slices.Equal(got, []string{c1}) {
		t.Errorf("once unmarked, forget removes %q, want %s", got, c1)
	}

	// A label file that cannot be read might keep any snapshot: forget
	// by policy removes nothing, naming it. Named snapshots still go.
	bad := e.path("repo", "labels", strings.Repeat("ab", 32))
	if err := os.WriteFile(bad, []byte("garbage"), 0o400); err != nil {
		t.Fatal(err)
	}
	r := e.expectCode(ExitFatal, "forget", "--continuous")
	if !strings.Contains(string(r.stderr), "labels/"+strings.Repeat("ab", 32)) {
		t.Errorf("forget with an unreadable label: %v", r)
	}
	if n := len(snapshotFiles(t, e)); n != before-1 {
		t.Errorf("forget removed snapshots while a label file was unreadable: %d left", n)
	}
	e.mustRun("forget", c1)
	e.mustRun("check")
}

// b2Hour is the hourly bucket of the snapshots 30 hours back.
func b2Hour(hour time.Time) string {
	return hour.Add(-30 * time.Hour).Format("2006-01-02 15:00")
}
