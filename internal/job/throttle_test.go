package job

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/fsfreeze"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestMaxRuntimeStopsStep: a before step that outlasts the job's
// max_runtime is killed, the run fails with "stopped after max_runtime",
// and the always after step still runs.
func TestMaxRuntimeStopsStep(t *testing.T) {
	repo := testRepo(t, "", "local")
	log := newOrderLog(t)
	restart := log.step("restart")
	restart.Always = true
	j := &plan.Job{Name: "x", Kind: plan.KindFiles, Paths: []string{t.TempDir()},
		Before: []*plan.Step{sh("sleep 600")}, After: []*plan.Step{restart},
		Limits: &plan.Limits{MaxRuntime: plan.Duration(time.Second)}}
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err == nil || !strings.Contains(rec.Error, "stopped after max_runtime 1s") {
		t.Fatalf("error %q", rec.Error)
	}
	if got := log.lines(t); !slices.Equal(got, []string{"restart"}) {
		t.Errorf("after steps ran %q, want the restart", got)
	}
}

// TestMaxRuntimeStopsBackup: a backup (of a command's output) that
// outlasts max_runtime is stopped with its whole process group: the
// command it runs is gone too, and no snapshot is saved.
func TestMaxRuntimeStopsBackup(t *testing.T) {
	repo := testRepo(t, "", "local")
	pidFile := filepath.Join(t.TempDir(), "pid")
	j := &plan.Job{Name: "dump", Kind: plan.KindStdinCommand, StdinFilename: "/db.sql",
		Command: plan.Command{"sh", "-c", `echo $$ > "$1"; exec sleep 600`, "sh", pidFile},
		Limits:  &plan.Limits{MaxRuntime: plan.Duration(2 * time.Second)}}
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err == nil || !strings.Contains(rec.Error, "rewind backup: stopped after max_runtime 2s") || rec.Result != event.ResultFailed {
		t.Fatalf("result %q, error %q", rec.Result, rec.Error)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		t.Fatalf("pid file holds %q", b)
	}
	if running(pid) {
		t.Errorf("the backup's command (pid %d) still runs", pid)
	}
	if sns := snapshots(t, repo); len(sns) != 0 {
		t.Errorf("a snapshot was saved: %+v", sns)
	}
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestNiceAndIONice: the job's nice and ionice reach a run step and the
// rewind backup child (and the command it runs): both report their own
// niceness and I/O class, and the runner keeps its own.
func TestNiceAndIONice(t *testing.T) {
	repo := testRepo(t, "", "local")
	report := filepath.Join(t.TempDir(), "report")
	nice := 7
	limits := &plan.Limits{Nice: &nice, IONice: "idle"}
	j := &plan.Job{Name: "dump", Kind: plan.KindStdinCommand, StdinFilename: "/prio",
		Command: plan.Command{"sh", "-c", `nice; ionice`},
		Before:  []*plan.Step{{Kind: plan.StepRun, Command: plan.Command{"sh", "-c", `{ nice; ionice; } > "$1"`, "sh", report}}},
		Limits:  limits}
	before, _ := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	rec, err := newRunner(t, j, repo).Run(context.Background(), j, "manual")
	if err != nil {
		t.Fatal(err)
	}
	want := "7\nidle\n"
	if b, err := os.ReadFile(report); err != nil || string(b) != want {
		t.Errorf("the run step reported %q (%v), want %q", b, err, want)
	}
	if got := string(rewind(t, repo, "dump", rec.Snapshot+":/prio")); got != want {
		t.Errorf("the backup's command reported %q, want %q", got, want)
	}
	if after, _ := syscall.Getpriority(syscall.PRIO_PROCESS, 0); after != before {
		t.Errorf("the runner's own priority changed from %d to %d", before, after)
	}
}

// TestParseIONice covers the ionice forms.
func TestParseIONice(t *testing.T) {
	for in, want := range map[string]int{"": -1, "idle": 3 << 13, "best-effort": 2<<13 | 4, "best-effort:7": 2<<13 | 7, "realtime:0": 1 << 13} {
		if got, err := parseIONice(in); err != nil || got != want {
			t.Errorf("parseIONice(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"idle:3", "best-effort:8", "fast"} {
		if _, err := parseIONice(in); err == nil {
			t.Errorf("parseIONice(%q) accepted", in)
		}
	}
}

// TestRepoFlags: the job's upload limit wins over the repository's.
func TestRepoFlags(t *testing.T) {
	repo := &plan.Repository{Location: "/r", PasswordFile: "/pw", LimitUpload: 100, LimitDownload: 50}
	got := strings.Join(repoFlags(repo, &plan.Limits{UploadKiB: 20}), " ")
	if want := "--repo /r --password-file /pw --limit-upload 20 --limit-download 50"; got != want {
		t.Errorf("flags %q, want %q", got, want)
	}
}

// TestWatchdogThawsWhenRunnerDies: the watchdog (rewind internal-thaw)
// thaws a frozen ext4 as soon as the process that froze it is gone, long
// before its window ends.
func TestWatchdogThawsWhenRunnerDies(t *testing.T) {
	mnt := testutil.Ext4(t)
	t.Cleanup(func() { _ = fsfreeze.Thaw(mnt) })
	runner := startProcess(t, "sleep", "600")
	if err := fsfreeze.Freeze(mnt); err != nil {
		t.Fatal(err)
	}
	wd := startProcess(t, rewindBin, "internal-thaw", "--after", "1h", "--pid", strconv.Itoa(runner.Pid), mnt)
	if err := runner.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = runner.Wait()
	if st, err := wd.Wait(); err != nil || !st.Success() {
		t.Fatalf("watchdog: %v %v", st, err)
	}
	writeWithin(t, mnt, 10*time.Second)
}

func startProcess(t *testing.T, name string, args ...string) *os.Process {
	t.Helper()
	p, err := os.StartProcess(mustLook(t, name), append([]string{name}, args...), &os.ProcAttr{Files: []*os.File{nil, os.Stderr, os.Stderr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p
}
