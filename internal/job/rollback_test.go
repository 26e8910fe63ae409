package job

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/fsfreeze"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/systemd"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// The test machine has no systemd as PID 1, so the stop/start pairs of a
// real plan are stood for by run steps that write to an order log: "stop"
// before, and an always after step "restart" (docs/STEPS.md).

// TestRollbackWhenBeforeStepFails: a before step fails after a "stop" and
// an fsfreeze of a real ext4: no snapshot is saved, the later before step
// and the plain after step are skipped, the restart, the thaw and the
// on_failure step still run, in that order, and the filesystem is
// writable again.
func TestRollbackWhenBeforeStepFails(t *testing.T) {
	mnt := testutil.Ext4(t)
	t.Cleanup(func() { _ = fsfreeze.Thaw(mnt) })
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := testRepo(t, "", "local")
	log := newOrderLog(t)
	restart := log.step("restart")
	restart.Always = true
	j := &plan.Job{
		Name: "web", Kind: plan.KindFiles, Paths: []string{src},
		Before: []*plan.Step{
			log.step("stop"),
			{Kind: plan.StepFsfreeze, Arg: mnt},
			sh(`echo "site check: broken" ; exit 4`),
			log.step("never"),
		},
		After:     []*plan.Step{log.step("not-on-failure"), restart},
		OnFailure: []*plan.Step{log.step("on_failure")},
	}
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err == nil || rec.Result != event.ResultFailed {
		t.Fatalf("run: result %q, err %v; want failed", rec.Result, err)
	}
	if !strings.Contains(rec.Error, "before step run sh -c") || !strings.Contains(rec.Error, "site check: broken") {
		t.Errorf("error %q should name the failed step and its output", rec.Error)
	}
	if got, want := log.lines(t), []string{"stop", "restart", "on_failure"}; !slices.Equal(got, want) {
		t.Errorf("steps ran %q, want %q", got, want)
	}
	want := []string{
		"before run success", "before fsfreeze success", "before run failed", "before run skipped", "job files skipped",
		"undo fsfreeze success", "after run skipped", "after run success", "on_failure run success",
	}
	if got := stepResults(rec); !slices.Equal(got, want) {
		t.Errorf("record steps\n %q\nwant\n %q", got, want)
	}
	if sns := snapshots(t, repo); len(sns) != 0 {
		t.Errorf("a snapshot was saved: %+v", sns)
	}
	writeWithin(t, mnt, 10*time.Second)
}

// TestRollbackWhenBackupFails: the repository becomes unreachable after
// the plan was checked (its folder is replaced by a file): the backup
// fails, the restart still runs, and the record says failed with the
// backup's error.
func TestRollbackWhenBackupFails(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := testRepo(t, "", "local")
	log := newOrderLog(t)
	restart := log.step("restart")
	restart.Always = true
	j := &plan.Job{
		Name: "web", Kind: plan.KindFiles, Paths: []string{src},
		Before:    []*plan.Step{log.step("stop")},
		After:     []*plan.Step{restart},
		OnFailure: []*plan.Step{log.step("on_failure")},
	}
	if err := os.RemoveAll(repo.Location); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(repo.Location, []byte("the disk was swapped"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err == nil || rec.Result != event.ResultFailed {
		t.Fatalf("run: result %q, err %v; want failed", rec.Result, err)
	}
	if !strings.HasPrefix(rec.Error, "rewind backup: ") || rec.Snapshot != "" {
		t.Errorf("record: error %q, snapshot %q; want the backup's error and no snapshot", rec.Error, rec.Snapshot)
	}
	t.Logf("error: %s", rec.Error)
	if got, want := log.lines(t), []string{"stop", "restart", "on_failure"}; !slices.Equal(got, want) {
		t.Errorf("steps ran %q, want %q", got, want)
	}
	if got, want := stepResults(rec), []string{"before run success", "job backup failed", "after run success", "on_failure run success"}; !slices.Equal(got, want) {
		t.Errorf("record steps %q, want %q", got, want)
	}
}

// TestSuccessRunsAfterStepsInOrder: when all goes well, the thaw comes
// right after the backup, then every after step in order, and no
// on_failure step; the record has the snapshot and its counts.
func TestSuccessRunsAfterStepsInOrder(t *testing.T) {
	mnt := testutil.Ext4(t)
	t.Cleanup(func() { _ = fsfreeze.Thaw(mnt) })
	if err := os.WriteFile(filepath.Join(mnt, "db"), []byte("consistent"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := testRepo(t, "", "local")
	log := newOrderLog(t)
	j := &plan.Job{
		Name: "db", Kind: plan.KindFiles, Paths: []string{mnt}, Tags: []string{"nightly"},
		Before:    []*plan.Step{log.step("stop"), {Kind: plan.StepCheck, Command: plan.Command{"true"}}, {Kind: plan.StepFsfreeze, Arg: mnt}},
		After:     []*plan.Step{log.step("start"), log.step("notify")},
		OnFailure: []*plan.Step{log.step("on_failure")},
		Retention: &plan.Retention{KeepLast: 1},
	}
	r := newRunner(t, j, repo)
	rec, err := r.Run(context.Background(), j, "manual")
	if err != nil || rec.Result != event.ResultSuccess {
		t.Fatalf("run: result %q, err %v", rec.Result, err)
	}
	if got, want := log.lines(t), []string{"stop", "start", "notify"}; !slices.Equal(got, want) {
		t.Errorf("steps ran %q, want %q", got, want)
	}
	want := []string{"before run success", "before check success", "before fsfreeze success", "job backup success",
		"undo fsfreeze success", "after run success", "after run success", "job retention success"}
	if got := stepResults(rec); !slices.Equal(got, want) {
		t.Errorf("record steps\n %q\nwant\n %q", got, want)
	}
	if rec.Snapshot == "" || rec.Files != 1 || rec.Bytes != int64(len("consistent")) || rec.Host != "testhost" {
		t.Errorf("record: %+v", rec)
	}
	sns := snapshots(t, repo)
	if len(sns) != 1 || sns[0].ID != rec.Snapshot || !slices.Contains(sns[0].Tags, "job:db") || !slices.Contains(sns[0].Tags, "nightly") {
		t.Errorf("snapshots %+v, want one tagged job:db and nightly", sns)
	}
	writeWithin(t, mnt, 10*time.Second)
}

// TestConsistencyCheckFails: a failing check step stops the job, with the
// message "consistency check failed".
func TestConsistencyCheckFails(t *testing.T) {
	repo := testRepo(t, "", "local")
	j := &plan.Job{Name: "db", Kind: plan.KindFiles, Paths: []string{t.TempDir()},
		Before: []*plan.Step{{Kind: plan.StepCheck, Command: plan.Command{"sh", "-c", "echo 'table users: corrupt index'; exit 2"}}}}
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err == nil || !strings.HasPrefix(rec.Error, "consistency check failed: sh: exit status 2: table users: corrupt index") {
		t.Fatalf("error %q", rec.Error)
	}
	if sns := snapshots(t, repo); len(sns) != 0 {
		t.Errorf("a snapshot was saved: %+v", sns)
	}
}

// TestFreezeRefusesRepositoryFilesystem: the filesystem that holds the
// repository is never frozen.
func TestFreezeRefusesRepositoryFilesystem(t *testing.T) {
	mnt := testutil.Ext4(t)
	t.Cleanup(func() { _ = fsfreeze.Thaw(mnt) })
	repo := testRepo(t, mnt, "local")
	j := &plan.Job{Name: "x", Kind: plan.KindFiles, Paths: []string{t.TempDir()}, Before: []*plan.Step{{Kind: plan.StepFsfreeze, Arg: mnt}}}
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err == nil || !strings.Contains(rec.Error, "refusing to freeze "+mnt+": it holds the repository") {
		t.Fatalf("error %q", rec.Error)
	}
	writeWithin(t, mnt, 10*time.Second)
}

// TestFreezeWindowExpires: a freeze that outlasts its max is thawed by
// the runner at the end of the window, and the run fails saying so.
func TestFreezeWindowExpires(t *testing.T) {
	mnt := testutil.Ext4(t)
	t.Cleanup(func() { _ = fsfreeze.Thaw(mnt) })
	repo := testRepo(t, "", "local")
	j := &plan.Job{Name: "x", Kind: plan.KindFiles, Paths: []string{t.TempDir()},
		Before: []*plan.Step{{Kind: plan.StepFsfreeze, Arg: mnt, Max: plan.Duration(time.Second)}, sh("sleep 3")}}
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err == nil || !strings.Contains(rec.Error, "thawed at the end of its freeze window (max 1s)") {
		t.Fatalf("error %q", rec.Error)
	}
	writeWithin(t, mnt, 10*time.Second)
}

// TestCopyFailureKeepsSnapshot: a copy_to repository that cannot be
// opened fails the run, and the error says the snapshot is kept.
func TestCopyFailureKeepsSnapshot(t *testing.T) {
	repo := testRepo(t, "", "local")
	offsite := testRepo(t, "", "offsite")
	if err := os.RemoveAll(offsite.Location); err != nil {
		t.Fatal(err)
	}
	j := &plan.Job{Name: "www", Kind: plan.KindFiles, Paths: []string{t.TempDir()}, CopyTo: []string{"offsite"}}
	rec, err := newRunner(t, j, repo, offsite).Run(context.Background(), j, "schedule")
	if err == nil || rec.Snapshot == "" {
		t.Fatalf("run: err %v, snapshot %q; want a failure with a snapshot", err, rec.Snapshot)
	}
	if !strings.Contains(rec.Error, "copy to offsite failed") || !strings.Contains(rec.Error, "snapshot "+short(rec.Snapshot)+" was saved in "+repo.Location+" and is kept") {
		t.Errorf("error %q", rec.Error)
	}
	if sns := snapshots(t, repo); len(sns) != 1 {
		t.Errorf("%d snapshots in the job's repository, want 1", len(sns))
	}
}

// TestCopyToOffsite: a backup is copied to its copy_to repository.
func TestCopyToOffsite(t *testing.T) {
	repo := testRepo(t, "", "local")
	offsite := testRepo(t, "", "offsite")
	j := &plan.Job{Name: "www", Kind: plan.KindFiles, Paths: []string{t.TempDir()}, CopyTo: []string{"offsite"}}
	rec, err := newRunner(t, j, repo, offsite).Run(context.Background(), j, "schedule")
	if err != nil {
		t.Fatal(err)
	}
	if sns := snapshots(t, offsite); len(sns) != 1 || !slices.Contains(sns[0].Tags, "job:www") {
		t.Errorf("offsite holds %+v, want the copy of %s", sns, rec.Snapshot)
	}
}

// TestUnitStepWithoutSystemd: on a machine without systemd as PID 1 a
// unit step fails with systemd.ErrNoSystemd's message.
func TestUnitStepWithoutSystemd(t *testing.T) {
	if systemd.Running() {
		t.Skip("systemd runs here")
	}
	repo := testRepo(t, "", "local")
	j := &plan.Job{Name: "x", Kind: plan.KindFiles, Paths: []string{t.TempDir()}, Before: []*plan.Step{{Kind: plan.StepStop, Arg: "nginx.service"}}}
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err == nil || !strings.Contains(rec.Error, systemd.ErrNoSystemd.Error()) {
		t.Fatalf("error %q, want %q", rec.Error, systemd.ErrNoSystemd)
	}
}

// TestUnitRollbackPairing checks which after steps undo which unit
// steps, with a stand-in systemctl that logs its arguments (a fake: the
// real pairing with systemd cannot run here): on failure, the start of
// each unit stopped before runs, newest stop first; a start of a unit
// that was not stopped, and a reload, do not.
func TestUnitRollbackPairing(t *testing.T) {
	repo := testRepo(t, "", "local")
	log := newOrderLog(t)
	fake := filepath.Join(t.TempDir(), "systemctl")
	script := "#!/bin/sh\necho \"$1:$2\" >> " + string(log) + "\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	j := &plan.Job{Name: "x", Kind: plan.KindFiles, Paths: []string{t.TempDir()},
		Before: []*plan.Step{{Kind: plan.StepStop, Arg: "a.service"}, {Kind: plan.StepStop, Arg: "b.service"}, sh("exit 1")},
		After: []*plan.Step{{Kind: plan.StepStart, Arg: "a.service"}, {Kind: plan.StepReload, Arg: "a.service"},
			{Kind: plan.StepRestart, Arg: "b.service"}, {Kind: plan.StepStart, Arg: "c.service"}},
	}
	r := newRunner(t, j, repo)
	r.Systemd = systemd.Manager{Bin: fake}
	if _, err := r.Run(context.Background(), j, "manual"); err == nil {
		t.Fatal("the run did not fail")
	}
	if got, want := log.lines(t), []string{"stop:a.service", "stop:b.service", "restart:b.service", "start:a.service"}; !slices.Equal(got, want) {
		t.Errorf("systemctl calls %q, want %q", got, want)
	}
}
