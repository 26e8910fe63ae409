package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/schedule"
)

func TestLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "locks", "j.lock")
	f, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if !Locked(p) {
		t.Fatal("a held lock reads as free")
	}
	if _, err := TryLock(p); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v", err)
	}
	got := make(chan *os.File)
	go func() {
		g, _ := waitLock(p, nil)
		got <- g
	}()
	f.Close()
	g := <-got
	if g == nil {
		t.Fatal("waitLock did not get the freed lock")
	}
	g.Close()
	if Locked(p) {
		t.Fatal("a freed lock reads as held")
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	st, err := s.Load("a/b")
	if err != nil || st.Job != "a/b" || !st.LastFire.IsZero() {
		t.Fatalf("new state: %+v %v", st, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	st.LastFire, st.Failures = now, 2
	st.Running = &Running{Trigger: TriggerSchedule, Start: now, Attempt: 1}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	back, err := s.Load("a/b")
	if err != nil || !back.LastFire.Equal(now) || back.Failures != 2 || back.Running == nil {
		t.Fatalf("state back: %+v %v", back, err)
	}
	if err := os.WriteFile(s.StatePath("x"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("x"); err == nil {
		t.Fatal("a broken state file loaded")
	}
}

func TestUnitQuotes(t *testing.T) {
	u := Unit("/usr/local/bin/rewind", "/etc/rewind/my plan%.yaml")
	for _, want := range []string{
		`ExecStart=/usr/local/bin/rewind agent --config "/etc/rewind/my plan%%.yaml"`,
		"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "KillMode=mixed", "WantedBy=multi-user.target",
	} {
		if !strings.Contains(u, want) {
			t.Fatalf("unit lacks %q:\n%s", want, u)
		}
	}
}

// fakes for the scheduling logic, without processes.

type fakeLauncher struct {
	mu   sync.Mutex
	runs map[string][]string // job -> triggers
	fail map[string]bool
	slow map[string]chan struct{}
}

func (f *fakeLauncher) Launch(ctx context.Context, j *plan.Job, trigger string, attempt int, lock *os.File) (*event.Run, error) {
	f.mu.Lock()
	f.runs[j.Name] = append(f.runs[j.Name], trigger)
	block := f.slow[j.Name]
	fail := f.fail[j.Name]
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
		}
	}
	if fail {
		return &event.Run{Result: event.ResultFailed, Error: "boom"}, nil
	}
	return &event.Run{Result: event.ResultSuccess}, nil
}

func (f *fakeLauncher) count(job string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs[job])
}

type fakeEvents struct {
	mu   sync.Mutex
	runs []*event.Run
}

func (f *fakeEvents) Save(_ context.Context, _ *plan.Job, r *event.Run) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, r)
	return nil
}
func (f *fakeEvents) NewestPoint(context.Context, *plan.Job) (time.Time, error) {
	return time.Time{}, nil
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A job stuck in a run and a job that always fails delay no other job;
// failures are retried up to the job's attempts.
func TestJobsIndependent(t *testing.T) {
	every := &plan.Job{Kind: plan.KindFiles, Schedule: "*:*:*"}
	p := &plan.Plan{Host: "h", Jobs: map[string]*plan.Job{
		"stuck": {Name: "stuck", Kind: plan.KindFiles, Schedule: every.Schedule},
		"bad":   {Name: "bad", Kind: plan.KindFiles, Schedule: every.Schedule, Retry: &plan.Retry{Attempts: 2, Backoff: plan.Duration(10 * time.Millisecond)}},
		"good":  {Name: "good", Kind: plan.KindFiles, Schedule: every.Schedule, RPO: plan.Duration(time.Hour)},
	}, Agent: &plan.AgentSettings{RPOCheck: plan.Duration(50 * time.Millisecond)}}
	p.Jobs["bad"].RPO = plan.Duration(300 * time.Millisecond)
	n := &fakeNotifier{}
	l := &fakeLauncher{runs: map[string][]string{}, fail: map[string]bool{"bad": true}, slow: map[string]chan struct{}{"stuck": make(chan struct{})}}
	ev := &fakeEvents{}
	a, err := New(Config{
		Load:     func(string) (*plan.Plan, []byte, error) { return p, []byte("{}"), nil },
		Parse:    func(e string) (Schedule, error) { return schedule.Parse(e) },
		Launcher: l, Events: ev, StateDir: t.TempDir(), Grace: time.Second, Notifier: n,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx, nil) }()
	waitUntil(t, "good to run while stuck hangs", func() bool { return l.count("stuck") == 1 && l.count("good") >= 3 })
	waitUntil(t, "bad to be retried", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.runs["bad"]) >= 2 && l.runs["bad"][1] == TriggerRetry
	})
	waitUntil(t, "an RPO alert for bad", func() bool { return n.has(AlertRPO, "bad") })
	cancel() // stuck is killed after the grace period
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l.count("stuck") != 1 {
		t.Fatalf("the stuck job ran %d times", l.count("stuck"))
	}
	st, _ := a.store.Load("bad")
	if n.has(AlertRPO, "good") {
		t.Fatal("an RPO alert for a job within its target")
	}
	if st.Failures < 2 || st.LastRun == nil || st.LastRun.Result != event.ResultFailed {
		t.Fatalf("state of the failing job: %+v", st)
	}
}

type fakeNotifier struct {
	mu     sync.Mutex
	alerts []Alert
}

func (f *fakeNotifier) Notify(_ context.Context, a Alert) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alerts = append(f.alerts, a)
}

func (f *fakeNotifier) has(kind, job string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.alerts {
		if a.Kind == kind && a.Job == job {
			return true
		}
	}
	return false
}
