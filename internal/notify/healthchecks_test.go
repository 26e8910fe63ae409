package notify

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestHealthchecksPings(t *testing.T) {
	srv := newRecorder(t)
	h, err := NewHealthchecks(srv.URL + "/ping/uuid-1/")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker("web1")
	ok := goodRun()
	events := []Event{
		tr.RunStarted(ok),
		tr.RunFinished(ok),
		tr.RunFinished(failedRun()),
		tr.RunFinished(ok), // recovery
		*tr.CheckRPO("www", ok.End, time.Hour, ok.End.Add(3*time.Hour)),
		*tr.CheckRPO("www", ok.End, time.Hour, ok.End), // back within: a recovery without a run
	}
	for _, e := range events {
		if err := h.Send(context.Background(), e); err != nil {
			t.Fatalf("%s: %v", e.Kind, err)
		}
	}
	var paths []string
	for _, r := range srv.requests() {
		paths = append(paths, r.path)
	}
	want := []string{"/ping/uuid-1/start", "/ping/uuid-1", "/ping/uuid-1/fail", "/ping/uuid-1"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Fatalf("pinged %q, want %q", paths, want)
	}
	fail := srv.requests()[2]
	if !strings.HasPrefix(string(fail.body), "open repository: connection refused\n") {
		t.Errorf("fail body does not start with the error:\n%s", fail.body)
	}
	if !strings.Contains(string(fail.body), "web1: job www FAILED") {
		t.Errorf("fail body lacks the summary:\n%s", fail.body)
	}
}
