package notify

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
)

func runAt(job, result string, end time.Time) *event.Run {
	return &event.Run{Host: "web1", Job: job, Result: result, Start: end.Add(-time.Minute), End: end}
}

func TestTrackerTransitions(t *testing.T) {
	tr := NewTracker("web1")
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		result string
		kind   string
		n      int
		repeat bool
	}
	steps := []step{
		{event.ResultSuccess, KindSuccess, 0, false},
		{event.ResultSuccess, KindSuccess, 0, false},
		{event.ResultFailed, KindFailure, 1, false},
		{event.ResultFailed, KindFailure, 2, false},
		{event.ResultFailed, KindFailure, 3, true},
		{event.ResultFailed, KindFailure, 4, false},
		{event.ResultFailed, KindFailure, 5, true},
		{event.ResultFailed, KindFailure, 6, true},
		{event.ResultFailed, KindFailure, 7, true},
		{event.ResultFailed, KindFailure, 8, false},
		{event.ResultWarning, KindRecovery, 0, false},
		{event.ResultWarning, KindSuccess, 0, false},
		{event.ResultFailed, KindFailure, 1, false},
		{event.ResultSuccess, KindRecovery, 0, false},
	}
	for i, s := range steps {
		e := tr.RunFinished(runAt("www", s.result, t0.Add(time.Duration(i)*time.Hour)))
		if e.Kind != s.kind || e.Failures != s.n || e.Repeat != s.repeat {
			t.Errorf("run %d (%s): %s failures=%d repeat=%v, want %s %d %v", i, s.result, e.Kind, e.Failures, e.Repeat, s.kind, s.n, s.repeat)
		}
		if e.Host != "web1" || e.Job != "www" || e.Run == nil || !e.Time.Equal(e.Run.End) {
			t.Errorf("run %d: event %+v", i, e)
		}
	}
}

func TestTrackerRepeatEvery(t *testing.T) {
	tr := NewTracker("web1")
	tr.RepeatEvery = 10 * time.Hour
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var told []string
	// A failure every 3 hours for 2 days.
	for i := 0; i < 16; i++ {
		e := tr.RunFinished(runAt("db", event.ResultFailed, t0.Add(time.Duration(3*i)*time.Hour)))
		if !e.Repeat {
			told = append(told, fmt.Sprint(e.Failures))
		}
	}
	// 1, 2, 4 by doubling; 8 by doubling (21h, 9h after 4); 12 at 33h
	// (12h after 8); 16 by doubling.
	if got := strings.Join(told, ","); got != "1,2,4,8,12,16" {
		t.Errorf("told failures %s, want 1,2,4,8,12,16", got)
	}
}

func TestTrackerJobsAreSeparate(t *testing.T) {
	tr := NewTracker("web1")
	t0 := time.Now()
	tr.RunFinished(runAt("a", event.ResultFailed, t0))
	if e := tr.RunFinished(runAt("b", event.ResultSuccess, t0)); e.Kind != KindSuccess {
		t.Errorf("job b after job a failed: %s, want success", e.Kind)
	}
	if e := tr.RunFinished(runAt("a", event.ResultSuccess, t0)); e.Kind != KindRecovery {
		t.Errorf("job a: %s, want recovery", e.Kind)
	}
}

func TestTrackerSeed(t *testing.T) {
	tr := NewTracker("web1")
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tr.Seed(runAt("www", event.ResultFailed, t0))
	e := tr.RunFinished(runAt("www", event.ResultFailed, t0.Add(time.Hour)))
	if e.Kind != KindFailure || e.Failures != 2 || e.Repeat {
		t.Errorf("failure after a seeded failure: %+v", e)
	}
	if e := tr.RunFinished(runAt("www", event.ResultSuccess, t0.Add(2*time.Hour))); e.Kind != KindRecovery {
		t.Errorf("success after failures: %s, want recovery", e.Kind)
	}
	tr.Seed(runAt("web", event.ResultSuccess, t0))
	if e := tr.RunFinished(runAt("web", event.ResultSuccess, t0.Add(time.Hour))); e.Kind != KindSuccess {
		t.Errorf("success after a seeded success: %s", e.Kind)
	}
}

func TestTrackerRPO(t *testing.T) {
	tr := NewTracker("web1")
	point := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	target := 10 * time.Minute
	check := func(at time.Duration) *Event { return tr.CheckRPO("www", point, target, point.Add(at)) }

	if e := check(5 * time.Minute); e != nil {
		t.Fatalf("within target: %+v", e)
	}
	if e := check(10 * time.Minute); e != nil {
		t.Fatalf("at the target exactly: %+v", e)
	}
	e := check(11 * time.Minute)
	if e == nil || e.Kind != KindRPO || e.Lag != 11*time.Minute || e.Target != target || e.Run != nil || e.Host != "web1" {
		t.Fatalf("breach: %+v", e)
	}
	for _, at := range []time.Duration{12 * time.Minute, time.Hour, 5 * time.Hour} {
		if e := check(at); e != nil {
			t.Fatalf("breach raised again at %v: %+v", at, e)
		}
	}
	point = point.Add(5 * time.Hour) // a new snapshot
	e = check(time.Minute)
	if e == nil || e.Kind != KindRecovery || e.Lag != time.Minute || e.Run != nil {
		t.Fatalf("back within target: %+v", e)
	}
	if Summary(*e) != "web1: job www back within its RPO (lag 1m0s, target 10m0s)" {
		t.Errorf("summary %q", Summary(*e))
	}
	if e := check(2 * time.Minute); e != nil {
		t.Fatalf("cleared twice: %+v", e)
	}
	if e := check(20 * time.Minute); e == nil || e.Kind != KindRPO {
		t.Fatalf("second breach: %+v", e)
	}
}

func TestTrackerRPONoPoint(t *testing.T) {
	tr := NewTracker("web1")
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if e := tr.CheckRPO("new", time.Time{}, time.Hour, t0); e != nil {
		t.Fatalf("first check of a job without a point: %+v", e)
	}
	if e := tr.CheckRPO("new", time.Time{}, time.Hour, t0.Add(59*time.Minute)); e != nil {
		t.Fatalf("within the grace of a new job: %+v", e)
	}
	e := tr.CheckRPO("new", time.Time{}, time.Hour, t0.Add(61*time.Minute))
	if e == nil || e.Kind != KindRPO || e.Lag != 0 {
		t.Fatalf("no point for longer than the target: %+v", e)
	}
	if !strings.Contains(Summary(*e), "no restorable point") {
		t.Errorf("summary %q", Summary(*e))
	}
	if e := tr.CheckRPO("new", t0.Add(70*time.Minute), time.Hour, t0.Add(71*time.Minute)); e == nil || e.Kind != KindRecovery {
		t.Fatalf("first point: %+v", e)
	}
	// A target of 0 turns the check off and clears a breach silently.
	tr.CheckRPO("new", t0, time.Hour, t0.Add(3*time.Hour))
	if e := tr.CheckRPO("new", t0, 0, t0.Add(3*time.Hour)); e != nil {
		t.Fatalf("target 0: %+v", e)
	}
}
