package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/event"
)

// The agent tests run `rewind agent` as a real child process on plans
// whose jobs fire every few seconds, and look at what it leaves: the
// snapshots, the event log, the state folder, its log. They wait
// generously and assert only what happened and in which order.

const agentWait = 90 * time.Second

// agentEnv is a sandbox with a repository, a password file and a plan.
type agentEnv struct {
	*env
	plan, repo, pwfile, state string
}

func newAgentEnv(t *testing.T) *agentEnv {
	t.Helper()
	e := newEnv(t)
	a := &agentEnv{env: e, plan: e.path("plan.yaml"), repo: e.path("repo"), pwfile: e.path("pw"), state: e.path("state")}
	initRepo(t, a.repo, testPassword, 0)
	if err := os.WriteFile(a.pwfile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.path("data"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, e.path("data"), map[string][]byte{"a": []byte("alpha")})
	return a
}

// writePlan writes the plan: the repository and state folder, then jobs
// (YAML under "jobs:") and extra top-level YAML.
func (a *agentEnv) writePlan(jobs, extra string) {
	a.t.Helper()
	p := fmt.Sprintf("host: testhost\nrepositories:\n  local:\n    location: %s\n    password_file: %s\njobs:\n%s\nagent:\n  state_dir: %s\n  rpo_check: 1s\n%s",
		a.repo, a.pwfile, jobs, a.state, extra)
	if err := os.WriteFile(a.plan, []byte(p), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agentEnv) filesJob(name, schedule, more string) string {
	return fmt.Sprintf("  %s:\n    kind: files\n    paths: [%s]\n    schedule: %q\n%s", name, a.path("data"), schedule, more)
}

// agentProc is a running `rewind agent`.
type agentProc struct {
	t   *testing.T
	cmd *exec.Cmd
	log *logFile
	mu  sync.Mutex
	err error
	end chan struct{}
}

// logFile is the agent's standard error: a file, not a pipe, so that
// waiting for the agent does not wait for children that outlive it.
type logFile struct{ path string }

func (l *logFile) String() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

func (a *agentEnv) start() *agentProc {
	a.t.Helper()
	c := a.cmd("agent", "--config", a.plan, "--grace", "60s")
	f, err := os.CreateTemp(a.dir, "agent-*.log")
	if err != nil {
		a.t.Fatal(err)
	}
	defer f.Close()
	p := &agentProc{t: a.t, cmd: c, log: &logFile{f.Name()}, end: make(chan struct{})}
	c.Stderr, c.Stdout = f, f
	if err := c.Start(); err != nil {
		a.t.Fatal(err)
	}
	go func() {
		err := c.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.end)
	}()
	a.t.Cleanup(func() {
		select {
		case <-p.end:
		default:
			c.Process.Kill()
			<-p.end
		}
	})
	a.waitFor("the agent to start", func() bool { return strings.Contains(p.log.String(), "agent started") })
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *agentProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.end:
	case <-time.After(agentWait):
		p.t.Fatalf("the agent did not stop on SIGTERM; log:\n%s", p.log)
	}
	if p.err != nil {
		p.t.Fatalf("agent exit: %v; log:\n%s", p.err, p.log)
	}
}

func (a *agentEnv) waitFor(what string, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(agentWait)
	for !cond() {
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// events returns the event log through `rewind events --json`.
func (a *agentEnv) events(args ...string) []event.Stored {
	a.t.Helper()
	r := a.mustRun(append([]string{"events", "--json", "--config", a.plan}, args...)...)
	var out []event.Stored
	if err := json.Unmarshal(r.stdout, &out); err != nil {
		a.t.Fatalf("events --json: %v\n%s", err, r)
	}
	return out
}

func (a *agentEnv) status() *agent.Report {
	a.t.Helper()
	r := a.mustRun("status", "--json", "--config", a.plan)
	var rep agent.Report
	if err := json.Unmarshal(r.stdout, &rep); err != nil {
		a.t.Fatalf("status --json: %v\n%s", err, r)
	}
	return &rep
}

func (a *agentEnv) snapshotsTagged(tag string) int {
	a.t.Helper()
	r := a.mustRun("snapshots", "--json", "-r", a.repo, "--password-file", a.pwfile, "--tag", tag)
	var sns []json.RawMessage
	if err := json.Unmarshal(r.stdout, &sns); err != nil {
		a.t.Fatalf("snapshots --json: %v\n%s", err, r)
	}
	return len(sns)
}

func count(rs []event.Stored, f func(event.Stored) bool) int {
	n := 0
	for _, r := range rs {
		if f(r) {
			n++
		}
	}
	return n
}

// Scheduled jobs fire, save snapshots tagged job:NAME, and every run is in
// the event log and in status.
func TestAgentRunsSchedule(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("fast", "*:*:0/2", "    rpo: 1h\n"), "")
	p := a.start()
	a.waitFor("two runs", func() bool { return a.snapshotsTagged("job:fast") >= 2 })
	a.waitFor("two events", func() bool { return len(a.events("--job", "fast")) >= 2 })
	rep := a.status()
	if !rep.AgentRunning || len(rep.Jobs) != 1 || rep.Jobs[0].LastRun == nil || rep.Jobs[0].NextRun == nil || rep.Jobs[0].RPOState != "OK" {
		t.Fatalf("status while running: %+v", rep)
	}
	p.stop()
	evs := a.events()
	for _, e := range evs {
		if e.Job != "fast" || e.Host != "testhost" || e.Trigger != agent.TriggerSchedule || e.Result != event.ResultSuccess || e.Snapshot == "" {
			t.Fatalf("unexpected event %+v", e)
		}
	}
	if n := a.snapshotsTagged("job:fast"); n != len(evs) {
		t.Fatalf("%d snapshots but %d events", n, len(evs))
	}
	// The same log read from the repository alone, and filtered by time.
	r := a.mustRun("events", "--json", "-r", a.repo, "--password-file", a.pwfile, "--since", "1h")
	var fromRepo []event.Stored
	decodeStrict(t, r.stdout, &fromRepo)
	if len(fromRepo) != len(evs) {
		t.Fatalf("--repo --since 1h: %d events, want %d", len(fromRepo), len(evs))
	}
	if later := a.events("--since", time.Now().Add(time.Hour).Format(time.RFC3339)); len(later) != 0 {
		t.Fatalf("events from the future: %+v", later)
	}
	if rep := a.status(); rep.AgentRunning || rep.Jobs[0].LastRun == nil {
		t.Fatalf("status after stop: %+v", rep)
	}
	txt := a.mustRun("status", "--config", a.plan)
	if !strings.Contains(string(txt.stdout), "NOT RUNNING") {
		t.Fatalf("status does not say the agent is down:\n%s", txt)
	}
	if !strings.Contains(p.log.String(), "job run") {
		t.Fatalf("no run in the journal:\n%s", p.log)
	}
}

// A fire missed while the agent was down is run once when it starts
// again, however many fires were missed.
func TestAgentCatchUp(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("c", "*:*:0/3", ""), "")
	p := a.start()
	a.waitFor("a first run", func() bool { return len(a.events()) >= 1 })
	p.stop()
	st, err := agent.Store{Dir: a.state}.Load("c")
	if err != nil {
		t.Fatal(err)
	}
	// Stay down across at least two fire times.
	a.waitFor("two missed fire times", func() bool { return time.Now().After(st.LastFire.Add(7 * time.Second)) })
	p = a.start()
	a.waitFor("a catch-up run", func() bool {
		return count(a.events(), func(e event.Stored) bool { return e.Trigger == agent.TriggerCatchUp }) >= 1
	})
	// And the schedule goes on after it.
	a.waitFor("a scheduled run after the catch-up", func() bool {
		evs := a.events()
		return len(evs) > 0 && evs[len(evs)-1].Trigger == agent.TriggerSchedule && count(evs, func(e event.Stored) bool { return e.Trigger == agent.TriggerCatchUp }) == 1
	})
	p.stop()
	if n := count(a.events(), func(e event.Stored) bool { return e.Trigger == agent.TriggerCatchUp }); n != 1 {
		t.Fatalf("%d catch-up runs, want 1", n)
	}
}

// An agent killed with SIGKILL in the middle of a run leaves its child
// running; the restarted agent does not start the job again until that
// child ends, records its run, and goes on. No two runs overlap and no
// run is lost.
func TestAgentKilledMidJob(t *testing.T) {
	a := newAgentEnv(t)
	runs := a.path("runs.log")
	script := a.path("slow.sh")
	body := fmt.Sprintf("#!/bin/sh\necho \"start $$\" >> %s\nsleep 3\necho \"end $$\" >> %s\n", runs, runs)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	a.writePlan(a.filesJob("slow", "*:*:0/2", "    before:\n      - run: "+script+"\n"), "")
	p := a.start()
	a.waitFor("the job to start", func() bool { b, _ := os.ReadFile(runs); return bytes.Contains(b, []byte("start")) })
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.end
	if !agent.Locked(agent.Store{Dir: a.state}.LockPath("slow")) {
		t.Fatal("the job lock was not held by the orphaned run")
	}
	p = a.start()
	a.waitFor("two more runs", func() bool {
		b, _ := os.ReadFile(runs)
		return strings.Count(string(b), "start") >= 3
	})
	p.stop() // lets the run under way finish
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	var want string = "start"
	ends := 0
	for i := 0; i+1 < len(lines); i += 2 {
		if lines[i] != want {
			t.Fatalf("runs overlap:\n%s", b)
		}
		if want == "end" {
			ends++
		}
		if want == "start" {
			want = "end"
		} else {
			want = "start"
		}
	}
	if want != "start" {
		t.Fatalf("a run was left unfinished:\n%s", b)
	}
	evs := a.events()
	ok := count(evs, func(e event.Stored) bool { return e.Result == event.ResultSuccess && e.Snapshot != "" })
	if sn := a.snapshotsTagged("job:slow"); sn != ok || ok != ends {
		t.Fatalf("%d runs ended, %d snapshots, %d successful events:\n%s\n%+v", ends, sn, ok, b, evs)
	}
}

// SIGHUP with an invalid plan keeps the running plan and says why; with a
// valid changed plan, the new job runs.
func TestAgentReload(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("one", "*:*:0/2", ""), "")
	p := a.start()
	a.waitFor("a run of one", func() bool { return a.snapshotsTagged("job:one") >= 1 })

	if err := os.WriteFile(a.plan, []byte("jobs:\n  one:\n    kind: files\n    schedul: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	a.waitFor("the refusal in the log", func() bool { return strings.Contains(p.log.String(), "plan reload refused") })
	if !strings.Contains(p.log.String(), "schedul") {
		t.Fatalf("the log does not say what is wrong:\n%s", p.log)
	}
	before := a.snapshotsTagged("job:one")
	a.waitFor("the old plan to keep running", func() bool { return a.snapshotsTagged("job:one") > before })

	// The valid plan adds a job and a webhook: both take effect.
	var mu sync.Mutex
	var jobs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if json.NewDecoder(r.Body).Decode(&m) == nil {
			mu.Lock()
			jobs = append(jobs, fmt.Sprint(m["job"]))
			mu.Unlock()
		}
	}))
	defer srv.Close()
	a.writePlan(a.filesJob("one", "*:*:0/2", "")+a.filesJob("two", "*:*:0/2", ""),
		"notify:\n  webhook: "+srv.URL+"\n  on: [success]\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	a.waitFor("the reload", func() bool { return strings.Contains(p.log.String(), "plan reloaded") })
	a.waitFor("a run of the new job", func() bool { return a.snapshotsTagged("job:two") >= 1 })
	a.waitFor("a notification through the webhook the reload added", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(jobs) > 0
	})
	p.stop()
}

// A job that keeps failing is retried with backoff, and once its newest
// restorable point is older than its RPO an alert goes to the webhook;
// status and the metrics endpoint show it.
func TestAgentRetryAndRPOAlert(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			mu.Lock()
			bodies = append(bodies, m)
			mu.Unlock()
		}
	}))
	defer srv.Close()
	got := func(kind string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bodies {
			if b["kind"] == kind && b["job"] == "late" {
				return true
			}
		}
		return false
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("late", "*:*:0/2", "    rpo: 5s\n    retry: {attempts: 2, backoff: 1s}\n    before:\n      - run: /bin/false\n")+a.filesJob("ok", "*:*:0/2", ""),
		"notify:\n  webhook: "+srv.URL+"\nmetrics:\n  listen: "+addr+"\n")
	p := a.start()
	a.waitFor("a failure alert", func() bool { return got("failure") })
	a.waitFor("a retry", func() bool {
		return count(a.events(), func(e event.Stored) bool { return e.Trigger == agent.TriggerRetry && e.Attempt == 2 }) > 0
	})
	a.waitFor("an RPO alert", func() bool { return got("rpo") })
	// The failing job delays no other.
	a.waitFor("runs of the other job", func() bool { return a.snapshotsTagged("job:ok") >= 2 })
	rep := a.status()
	if j := rep.Jobs[0]; j.Job != "late" || j.RPOState != "BREACH" || j.Lag <= j.RPO || j.Failures == 0 {
		t.Fatalf("status does not show the breach: %+v", j)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`rewind_job_rpo_target_seconds{host="testhost",job="late"} 5`, `rewind_job_last_run_success{host="testhost",job="late"} 0`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("metrics lack %s:\n%s", want, b)
		}
	}
	p.stop()
}

// A continuous job's watcher is kept running: its snapshots carry the
// job's tag, a watcher that dies is restarted, and its starts and stops
// are in the event log.
func TestAgentContinuous(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan("  live:\n    kind: files\n    paths: ["+a.path("data")+"]\n    schedule: continuous\n    rpo: 30s\n", "")
	p := a.start()
	a.waitFor("the first snapshot of the watcher", func() bool { return a.snapshotsTagged("job:live") >= 1 })
	writeFiles(t, a.path("data"), map[string][]byte{"b": []byte("beta")})
	a.waitFor("a snapshot of the change", func() bool { return a.snapshotsTagged("job:live") >= 2 })
	rep := a.status()
	if j := rep.Jobs[0]; !j.Running || j.RPOState != "OK" || j.LastPoint == nil {
		t.Fatalf("status of a running watcher: %+v", j)
	}
	st, err := agent.Store{Dir: a.state}.Load("live")
	if err != nil || st.Running == nil || st.Running.PID == 0 {
		t.Fatalf("no watcher pid in the state: %+v %v", st, err)
	}
	if err := syscall.Kill(st.Running.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.waitFor("the watcher to be restarted", func() bool {
		return count(a.events(), func(e event.Stored) bool { return e.Action == "start" }) >= 2
	})
	p.stop()
	// Events sort by start, and a stop starts when its watcher did: look
	// at the counts, and at the died watcher's end before the restart.
	evs := a.events()
	n := map[string]int{}
	var died, restarted time.Time
	for _, e := range evs {
		n[e.Action+":"+e.Result]++
		if e.Action == "stop" && e.Result == event.ResultFailed {
			died = e.End
		}
		if e.Action == "start" {
			restarted = e.Start
		}
	}
	if n["start:success"] != 2 || n["stop:failed"] != 1 || n["stop:success"] != 1 || len(evs) != 4 || restarted.Before(died) {
		t.Fatalf("events of the watchers: %v\n%+v", n, evs)
	}
}

// agent install prints the unit, and writes it with --no-start; without
// systemd it refuses to go further and says so.
func TestAgentInstall(t *testing.T) {
	a := newAgentEnv(t)
	a.writePlan(a.filesJob("n", "daily", ""), "")
	r := a.mustRun("agent", "install", "--print", "--config", a.plan)
	for _, want := range []string{"ExecStart=" + rewindBin + " agent --config " + a.plan, "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure"} {
		if !strings.Contains(string(r.stdout), want) {
			t.Fatalf("unit lacks %q:\n%s", want, r)
		}
	}
	unit := a.path("rewind-agent.service")
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		r := a.expectCode(1, "agent", "install", "--config", a.plan, "--unit-path", unit)
		if !strings.Contains(string(r.stderr), "no systemd") {
			t.Fatalf("no word of systemd missing:\n%s", r)
		}
		if _, err := os.Stat(unit); err == nil {
			t.Fatal("the unit was written without --no-start")
		}
	}
	a.mustRun("agent", "install", "--no-start", "--config", a.plan, "--unit-path", unit)
	b, err := os.ReadFile(unit)
	if err != nil || !bytes.Contains(b, []byte("agent --config "+a.plan)) {
		t.Fatalf("unit file: %v\n%s", err, b)
	}
	// An invalid plan is not installed.
	if err := os.WriteFile(a.plan, []byte("jobs: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.expectCode(1, "agent", "install", "--no-start", "--config", a.plan, "--unit-path", unit)
}

// When the agent and its run's process are both killed, the restarted
// agent records the run as interrupted and runs the job again.
func TestAgentInterruptedRun(t *testing.T) {
	a := newAgentEnv(t)
	runs := a.path("runs.log")
	script := a.path("slow.sh")
	body := fmt.Sprintf("#!/bin/sh\necho start >> %s\nsleep 3\necho end >> %s\n", runs, runs)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	a.writePlan(a.filesJob("slow", "*-*-01 00:00:00", "    before:\n      - run: "+script+"\n"), "")
	// Pretend an earlier agent handled today's fires, and run the job by
	// a catch-up: the state says a fire was missed.
	if err := (agent.Store{Dir: a.state}).Save(&agent.JobState{Job: "slow", LastFire: time.Now().AddDate(0, -2, 0)}); err != nil {
		t.Fatal(err)
	}
	p := a.start()
	a.waitFor("the job to start", func() bool { b, _ := os.ReadFile(runs); return bytes.Contains(b, []byte("start")) })
	// The run's process, a child of one of the agent's threads.
	var children []byte
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p.cmd.Process.Pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		children = append(children, b...)
	}
	if len(strings.Fields(string(children))) == 0 {
		t.Fatalf("the run's process not found under %d", p.cmd.Process.Pid)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.end
	for _, f := range strings.Fields(string(children)) {
		var pid int
		fmt.Sscan(f, &pid)
		syscall.Kill(-pid, syscall.SIGKILL) // its process group
	}
	p = a.start()
	a.waitFor("the job to run again", func() bool {
		evs := a.events()
		return len(evs) >= 2 && evs[0].Trigger == agent.TriggerInterrupted && evs[0].Result == event.ResultFailed &&
			evs[1].Trigger == agent.TriggerRetry && evs[1].Result == event.ResultSuccess
	})
	p.stop()
}
