package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
)

// recorder is a real HTTP server that keeps what it was sent and answers
// with the statuses given, then 200.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []recorded
	statuses []int
}

type recorded struct {
	path, contentType string
	body              []byte
}

func newRecorder(t *testing.T, statuses ...int) *recorder {
	r := &recorder{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.URL.Path, req.Header.Get("Content-Type"), body})
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		if req.Method != http.MethodPost {
			status = http.StatusMethodNotAllowed
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func failedRun() *event.Run {
	start := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	return &event.Run{
		Host: "web1", Job: "www", Kind: "files", Trigger: "schedule",
		Start: start, End: start.Add(90 * time.Second),
		Result: event.ResultFailed, Error: "open repository: connection refused",
		Attempt: 2,
		Steps: []event.Step{
			{Phase: "before", Kind: "stop", Arg: "nginx.service", Result: "success"},
			{Phase: "after", Kind: "start", Arg: "nginx.service", Result: "success"},
		},
	}
}

func goodRun() *event.Run {
	start := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	return &event.Run{
		Host: "web1", Job: "www", Kind: "files", Trigger: "retry",
		Start: start, End: start.Add(time.Minute), Result: event.ResultSuccess,
		Snapshot: "4f2a9c01", Files: 1200, Bytes: 5 << 20, Added: 4096, Attempt: 1,
	}
}

func TestWebhookBody(t *testing.T) {
	srv := newRecorder(t)
	w, err := NewWebhook(srv.URL + "/hook/secret-token")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker("web1")
	e := tr.RunFinished(failedRun())
	if err := w.Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	rpo := tr.CheckRPO("www", goodRun().End, time.Hour, goodRun().End.Add(2*time.Hour))
	if err := w.Send(context.Background(), *rpo); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if reqs[0].path != "/hook/secret-token" || reqs[0].contentType != "application/json" {
		t.Errorf("request to %s as %s", reqs[0].path, reqs[0].contentType)
	}
	var got map[string]any
	if err := json.Unmarshal(reqs[0].body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version":          1.0,
		"kind":             "failure",
		"hostname":         "web1",
		"job":              "www",
		"time":             "2026-03-01T02:01:30Z",
		"result":           "failed",
		"error":            "open repository: connection refused",
		"trigger":          "schedule",
		"start":            "2026-03-01T02:00:00Z",
		"end":              "2026-03-01T02:01:30Z",
		"duration_seconds": 90.0,
		"attempt":          2.0,
		"failures":         1.0,
		"message":          "web1: job www FAILED",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("failure body %s = %#v, want %#v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("failure body has %s = %#v, not expected", k, got[k])
		}
	}

	// The rpo event: lag and target, no run.
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(reqs[1].body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != "rpo" || p.LagSeconds != 7200 || p.TargetSeconds != 3600 || p.Result != "" || p.Snapshot != "" {
		t.Errorf("rpo body: %+v", p)
	}
	if p.Message != "web1: job www RPO exceeded (lag 2h0m0s, target 1h0m0s)" {
		t.Errorf("rpo message %q", p.Message)
	}
}

func TestWebhookSnapshotField(t *testing.T) {
	srv := newRecorder(t)
	w, _ := NewWebhook(srv.URL)
	e := Event{Kind: KindSuccess, Host: "web1", Job: "www", Time: goodRun().End, Run: goodRun()}
	if err := w.Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	var p Payload
	if err := json.Unmarshal(srv.requests()[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Snapshot != "4f2a9c01" || p.Result != "success" || p.Files != 1200 || p.BytesAdded != 4096 || p.Error != "" {
		t.Errorf("success body: %+v", p)
	}
}

func TestWebhookRetriesServerErrors(t *testing.T) {
	srv := newRecorder(t, 500, 503)
	w, _ := NewWebhook(srv.URL)
	w.SetRetry(4, time.Millisecond)
	if err := w.Send(context.Background(), Event{Kind: KindFailure, Host: "h", Job: "j", Run: failedRun()}); err != nil {
		t.Fatalf("send after two 5xx: %v", err)
	}
	if n := len(srv.requests()); n != 3 {
		t.Errorf("%d requests, want 3 (two 5xx, then 200)", n)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	srv := newRecorder(t, 500, 500, 500, 500)
	w, _ := NewWebhook(srv.URL + "/secret")
	w.SetRetry(3, time.Millisecond)
	err := w.Send(context.Background(), Event{Kind: KindFailure, Job: "j"})
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error") || !strings.Contains(err.Error(), "3 tries") {
		t.Fatalf("error %v, want the 500 after 3 tries", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the URL's path", err)
	}
	if n := len(srv.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestWebhookClientErrorNotRetried(t *testing.T) {
	srv := newRecorder(t, 404)
	w, _ := NewWebhook(srv.URL)
	w.SetRetry(4, time.Millisecond)
	err := w.Send(context.Background(), Event{Kind: KindFailure, Job: "j"})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("error %v, want one naming 404", err)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestWebhookConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	w, _ := NewWebhook("http://" + addr + "/x")
	w.SetRetry(2, time.Millisecond)
	err = w.Send(context.Background(), Event{Kind: KindFailure, Job: "j"})
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "2 tries") {
		t.Fatalf("error %v, want connection refused after 2 tries", err)
	}
}

func TestWebhookBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x/y", "hooks.example.com/x", "http://"} {
		if _, err := NewWebhook(u); err == nil {
			t.Errorf("NewWebhook(%q) accepted", u)
		}
	}
}

func decodePayload(t *testing.T, body []byte) Payload {
	t.Helper()
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("webhook body %s: %v", body, err)
	}
	return p
}
